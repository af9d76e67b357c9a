package scheduler

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// fuzzInput hands out small numbers from the fuzzer's bytes, zeros once they run out.
type fuzzInput []byte

func (in *fuzzInput) intn(n int) int {
	if len(*in) == 0 {
		return 0
	}
	b := (*in)[0]
	*in = (*in)[1:]
	return int(b) % n
}

func (in *fuzzInput) pick(choices ...string) string { return choices[in.intn(len(choices))] }

// decodeCase builds a node set and a request from data. dupNames reports whether two
// nodes share a name, which Place may reject.
func decodeCase(data []byte, seed uint64) (nodes []*Node, req Request, dupNames bool) {
	in := fuzzInput(data)
	n := in.intn(40)
	seen := map[string]bool{}
	for i := range n {
		name := fmt.Sprintf("n%02d", i)
		if in.intn(16) == 0 {
			name = fmt.Sprintf("n%02d", in.intn(n)) // now and then a repeated name
		}
		dupNames = dupNames || seen[name]
		seen[name] = true
		nd := &Node{
			Name:           name,
			Labels:         map[string]string{"region": in.pick("eu", "us"), "cost_tier": in.pick("low", "high")},
			Capacity:       Resources{MemoryBytes: int64(in.intn(8)) << 28, MilliCPU: int64(in.intn(5)) * 1000, Instances: in.intn(5)},
			Schedulable:    in.intn(4) != 0,
			State:          in.pick(StateReady, StateReady, StateReady, StateDraining, StateLost, ""),
			RuntimeVersion: in.pick("1", "2", ""),
		}
		if z := in.pick("a", "b", "c", ""); z != "" {
			nd.Labels["zone"] = z
		}
		nd.Allocated = Resources{
			MemoryBytes: int64(in.intn(9)) << 28,
			MilliCPU:    int64(in.intn(6)) * 800,
			Instances:   in.intn(6),
		}
		nodes = append(nodes, nd)
	}
	req = Request{
		Deployment:      "fuzz",
		Mode:            Mode(in.intn(4) / 3), // mostly ModeCount
		Count:           in.intn(8),
		PerNode:         Resources{MemoryBytes: int64(in.intn(3)) << 27, MilliCPU: int64(in.intn(3)) * 250, Instances: in.intn(2)},
		Spread:          in.pick("zone", "", "region"),
		Strategy:        Strategy(in.intn(2)),
		RequiredRuntime: in.pick("", "1", "1,2", "3"),
		SampleSize:      in.intn(12) - 1,
		Seed:            seed,
	}
	if r := in.pick("", "eu", "us"); r != "" {
		req.Constraints = append(req.Constraints, LabelSelector(map[string]string{"region": r}))
	}
	for range in.intn(3) {
		req.Preferences = append(req.Preferences, LabelPreference("cost_tier", in.pick("low", "high"), []float64{-1, 0, 0.5, 2}[in.intn(4)]))
	}
	for range in.intn(5) {
		req.Current = append(req.Current, fmt.Sprintf("n%02d", in.intn(45))) // some not in nodes
	}
	req.CurrentPerNode = Resources{MemoryBytes: int64(in.intn(3)) << 27, MilliCPU: int64(in.intn(3)) * 250, Instances: in.intn(2)}
	return nodes, req, dupNames
}

// feasibleRef is the filter written out plainly, to check Place against.
func feasibleRef(n *Node, req Request) bool {
	if n.State != StateReady || !n.Schedulable {
		return false
	}
	if req.RequiredRuntime != "" && !slices.Contains(strings.Split(req.RequiredRuntime, ","), n.RuntimeVersion) {
		return false
	}
	for _, c := range req.Constraints {
		if ok, _ := c.Match(n); !ok {
			return false
		}
	}
	a := n.Allocated
	if slices.Contains(req.Current, n.Name) {
		a.MemoryBytes = max(0, a.MemoryBytes-req.CurrentPerNode.MemoryBytes)
		a.MilliCPU = max(0, a.MilliCPU-req.CurrentPerNode.MilliCPU)
		a.Instances = max(0, a.Instances-req.CurrentPerNode.Instances)
	}
	p := req.PerNode
	return (p.MemoryBytes == 0 || a.MemoryBytes+p.MemoryBytes <= n.Capacity.MemoryBytes) &&
		(p.MilliCPU == 0 || a.MilliCPU+p.MilliCPU <= n.Capacity.MilliCPU) &&
		(p.Instances == 0 || a.Instances+p.Instances <= n.Capacity.Instances)
}

// FuzzPlace checks Place's invariants on random clusters and requests: no node twice,
// only feasible nodes, capacity never exceeded, the count met or an error with no
// placement, Current nodes kept while they fit, inputs untouched, same answer twice.
func FuzzPlace(f *testing.F) {
	f.Add([]byte{}, uint64(0))
	f.Add([]byte("\x0c\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"), uint64(1))
	f.Add([]byte(strings.Repeat("\x27\x00\x01\x03\x02\x00\x00\x01\x02\x02\x01\x01", 40)), uint64(7))
	f.Add([]byte(strings.Repeat("\x05\x03\x07\x01\x00\x02\x04\x03\x01\x00\x05\x02\x03", 30)), uint64(42))
	f.Fuzz(func(t *testing.T, data []byte, seed uint64) {
		nodes, req, dupNames := decodeCase(data, seed)
		before := cloneNodes(nodes)
		res, err := Place(nodes, req)
		if !reflect.DeepEqual(before, nodes) {
			t.Fatal("Place modified its nodes")
		}
		again, err2 := Place(cloneNodes(nodes), req)
		if !reflect.DeepEqual(res, again) || fmt.Sprint(err) != fmt.Sprint(err2) {
			t.Fatalf("not deterministic:\n%+v %v\n%+v %v", res, err, again, err2)
		}

		fits := map[string]bool{} // some node of that name fits
		feasible := 0
		for _, n := range nodes {
			if feasibleRef(n, req) {
				fits[n.Name] = true
				feasible++
			}
		}
		need := req.Count
		if req.Mode == ModeDaemon {
			need = 1
		}
		if err != nil {
			if len(res.Placements) != 0 {
				t.Fatalf("error %v with placements %v", err, names(res.Placements))
			}
			var perr *PlacementError
			switch {
			case errors.Is(err, ErrInvalidRequest):
				if !dupNames {
					t.Fatalf("invalid request without a repeated name: %v", err)
				}
			case errors.As(err, &perr):
				if feasible >= need || perr.Result.Feasible != feasible || perr.Need != need {
					t.Fatalf("%v: %d feasible, need %d", err, feasible, need)
				}
			default:
				t.Fatalf("unexpected error %T %v", err, err)
			}
			return
		}

		if res.Feasible != feasible || res.Feasible+sumCounts(res.Rejected) != len(nodes) {
			t.Fatalf("feasible %d (reference %d), rejected %v, %d nodes", res.Feasible, feasible, res.Rejected, len(nodes))
		}
		want := req.Count
		if req.Mode == ModeDaemon {
			want = feasible
		}
		if len(res.Placements) != want {
			t.Fatalf("%d placements, want %d", len(res.Placements), want)
		}
		seen := map[string]bool{}
		for _, p := range res.Placements {
			if seen[p.Node] {
				t.Fatalf("node %s placed twice", p.Node)
			}
			seen[p.Node] = true
			if !fits[p.Node] {
				t.Fatalf("placed on %s, which does not fit", p.Node)
			}
			s := p.Score
			if s.Resource < 0 || s.Resource > 1 || s.Spread < 0 || s.Spread > 1 || s.Total < 0 || s.Total > 1+StickinessBonus {
				t.Fatalf("%s: score out of range: %+v", p.Node, s)
			}
			if p.Current != slices.Contains(req.Current, p.Node) {
				t.Fatalf("%s: Current = %v", p.Node, p.Current)
			}
		}
		if req.Mode == ModeCount {
			var keep []string
			for _, name := range req.Current {
				if fits[name] && !slices.Contains(keep, name) {
					keep = append(keep, name)
				}
			}
			if len(keep) <= req.Count {
				for _, name := range keep {
					if !seen[name] {
						t.Fatalf("current node %s fits but was dropped: %v", name, names(res.Placements))
					}
				}
			}
		}
	})
}
