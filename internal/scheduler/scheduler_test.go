package scheduler

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const gib = 1 << 30

// newNode is a ready, schedulable node with 4 GiB, 4 CPUs, 100 instances, runtime "1"
// and the given label pairs.
func newNode(name string, labels ...string) *Node {
	n := &Node{
		Name:           name,
		Labels:         map[string]string{},
		Capacity:       Resources{MemoryBytes: 4 * gib, MilliCPU: 4000, Instances: 100},
		Schedulable:    true,
		State:          StateReady,
		RuntimeVersion: "1",
	}
	for i := 0; i+1 < len(labels); i += 2 {
		n.Labels[labels[i]] = labels[i+1]
	}
	return n
}

func with(n *Node, f func(*Node)) *Node { f(n); return n }

func names(ps []Placement) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Node
	}
	return out
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func cloneNodes(nodes []*Node) []*Node {
	if nodes == nil {
		return nil
	}
	out := make([]*Node, len(nodes))
	for i, n := range nodes {
		c := *n
		c.Labels = make(map[string]string, len(n.Labels))
		for k, v := range n.Labels {
			c.Labels[k] = v
		}
		out[i] = &c
	}
	return out
}

// mustPlace runs Place and fails the test on any error.
func mustPlace(t *testing.T, nodes []*Node, req Request) Result {
	t.Helper()
	res, err := Place(nodes, req)
	if err != nil {
		t.Fatalf("Place: %v", err)
	}
	return res
}

// mustFail runs Place and returns its *PlacementError, failing the test otherwise.
func mustFail(t *testing.T, nodes []*Node, req Request) *PlacementError {
	t.Helper()
	res, err := Place(nodes, req)
	var perr *PlacementError
	if !errors.As(err, &perr) {
		t.Fatalf("Place: got %v, want a *PlacementError", err)
	}
	if len(res.Placements) != 0 || len(perr.Result.Placements) != 0 {
		t.Fatalf("Place failed but placed %v", names(res.Placements))
	}
	return perr
}

type constraintFunc struct {
	name string
	f    func(*Node) (bool, string)
}

func (c constraintFunc) Name() string                 { return c.name }
func (c constraintFunc) Match(n *Node) (bool, string) { return c.f(n) }

type preferenceFunc struct {
	name string
	w    float64
	f    func(*Node) float64
}

func (p preferenceFunc) Name() string          { return p.name }
func (p preferenceFunc) Weight() float64       { return p.w }
func (p preferenceFunc) Score(n *Node) float64 { return p.f(n) }

func TestFilterReasons(t *testing.T) {
	eu := LabelSelector(map[string]string{"region": "eu"})
	for _, tc := range []struct {
		name   string
		node   *Node
		req    Request
		reason string // "" = the node fits
	}{
		{"fits", newNode("n", "region", "eu"), Request{Constraints: []Constraint{eu}}, ""},
		{"cordoned", with(newNode("n"), func(n *Node) { n.Schedulable = false }), Request{}, ReasonNotSchedulable},
		{"unknown state", with(newNode("n"), func(n *Node) { n.State = "joining" }), Request{}, ReasonNotSchedulable},
		{"empty state", with(newNode("n"), func(n *Node) { n.State = "" }), Request{}, ReasonNotSchedulable},
		{"lost", with(newNode("n"), func(n *Node) { n.State = StateLost }), Request{}, ReasonLost},
		{"draining", with(newNode("n"), func(n *Node) { n.State = StateDraining; n.Schedulable = false }), Request{}, ReasonDraining},
		{"runtime mismatch", with(newNode("n"), func(n *Node) { n.RuntimeVersion = "2" }), Request{RequiredRuntime: "1"}, ReasonRuntimeMismatch},
		{"runtime missing", with(newNode("n"), func(n *Node) { n.RuntimeVersion = "" }), Request{RequiredRuntime: "1"}, ReasonRuntimeMismatch},
		{"runtime in list", with(newNode("n"), func(n *Node) { n.RuntimeVersion = "2" }), Request{RequiredRuntime: "1, 2"}, ""},
		{"runtime not in list", with(newNode("n"), func(n *Node) { n.RuntimeVersion = "3" }), Request{RequiredRuntime: "1,2"}, ReasonRuntimeMismatch},
		{"runtime missing, list", with(newNode("n"), func(n *Node) { n.RuntimeVersion = "" }), Request{RequiredRuntime: "1,2"}, ReasonRuntimeMismatch},
		{"runtime any", with(newNode("n"), func(n *Node) { n.RuntimeVersion = "7" }), Request{}, ""},
		{"label differs", newNode("n", "region", "us"), Request{Constraints: []Constraint{eu}}, "region mismatch"},
		{"label missing", newNode("n"), Request{Constraints: []Constraint{eu}}, "region mismatch"},
		{"first failing key", newNode("n"), Request{Constraints: []Constraint{LabelSelector(map[string]string{"zone": "a", "region": "eu"})}}, "region mismatch"},
		{"empty selector", newNode("n"), Request{Constraints: []Constraint{LabelSelector(nil)}}, ""},
		{"constraints in order", newNode("n"), Request{Constraints: []Constraint{
			constraintFunc{"first", func(*Node) (bool, string) { return false, "first says no" }}, eu}}, "first says no"},
		{"constraint without reason", newNode("n"), Request{Constraints: []Constraint{
			constraintFunc{"gpu", func(*Node) (bool, string) { return false, "" }}}}, "gpu not met"},
		{"memory", with(newNode("n"), func(n *Node) { n.Allocated.MemoryBytes = 3 * gib }), Request{PerNode: Resources{MemoryBytes: gib + 1}}, ReasonMemory},
		{"memory exactly full", with(newNode("n"), func(n *Node) { n.Allocated.MemoryBytes = 3 * gib }), Request{PerNode: Resources{MemoryBytes: gib}}, ""},
		{"memory overcommitted", with(newNode("n"), func(n *Node) { n.Allocated.MemoryBytes = 5 * gib }), Request{PerNode: Resources{MemoryBytes: 1}}, ReasonMemory},
		{"cpu", with(newNode("n"), func(n *Node) { n.Allocated.MilliCPU = 3500 }), Request{PerNode: Resources{MemoryBytes: 1, MilliCPU: 501}}, ReasonCPU},
		{"instances", with(newNode("n"), func(n *Node) { n.Allocated.Instances = 99 }), Request{PerNode: Resources{MilliCPU: 1, Instances: 2}}, ReasonInstances},
		{"memory before cpu and instances", with(newNode("n"), func(n *Node) { n.Capacity = Resources{} }), Request{PerNode: Resources{MemoryBytes: 1, MilliCPU: 1, Instances: 1}}, ReasonMemory},
		{"unrequested resource unchecked", with(newNode("n"), func(n *Node) { n.Capacity = Resources{}; n.Allocated.MilliCPU = 9 }), Request{}, ""},
		{"huge request", newNode("n"), Request{PerNode: Resources{MemoryBytes: 1<<63 - 1}}, ReasonMemory},
		{"state before everything", with(newNode("n"), func(n *Node) { n.State = StateLost; n.RuntimeVersion = "0"; n.Capacity = Resources{} }),
			Request{RequiredRuntime: "1", Constraints: []Constraint{eu}, PerNode: Resources{MemoryBytes: 1}}, ReasonLost},
		{"runtime before constraints", with(newNode("n"), func(n *Node) { n.RuntimeVersion = "0"; n.Capacity = Resources{} }),
			Request{RequiredRuntime: "1", Constraints: []Constraint{eu}, PerNode: Resources{MemoryBytes: 1}}, ReasonRuntimeMismatch},
		{"constraints before capacity", with(newNode("n"), func(n *Node) { n.Capacity = Resources{} }),
			Request{Constraints: []Constraint{eu}, PerNode: Resources{MemoryBytes: 1}}, "region mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Deployment, tc.req.Count = "web", 1
			nodes := []*Node{tc.node}
			if tc.reason == "" {
				res := mustPlace(t, nodes, tc.req)
				if got := names(res.Placements); !slices.Equal(got, []string{"n"}) {
					t.Fatalf("placements %v, want [n]", got)
				}
				if res.Explanation != "1/1 nodes" || len(res.Rejected) != 0 {
					t.Fatalf("explanation %q, rejected %v", res.Explanation, res.Rejected)
				}
				return
			}
			perr := mustFail(t, nodes, tc.req)
			if want := map[string]int{tc.reason: 1}; !reflect.DeepEqual(perr.Result.Rejected, want) {
				t.Fatalf("rejected %v, want %v", perr.Result.Rejected, want)
			}
			if want := "0/1 nodes: 1 " + tc.reason; perr.Result.Explanation != want {
				t.Fatalf("explanation %q, want %q", perr.Result.Explanation, want)
			}
		})
	}
}

// twelveNodes is 9 nodes in us and 3 in eu, of which the last nfull have too little
// memory for a 1 GiB placement.
func twelveNodes(nfull int) []*Node {
	var nodes []*Node
	for i := range 9 {
		nodes = append(nodes, newNode(fmt.Sprintf("us-%d", i), "region", "us"))
	}
	for i := range 3 {
		n := newNode(fmt.Sprintf("eu-%d", i), "region", "eu")
		if i >= 3-nfull {
			n.Allocated.MemoryBytes = 3*gib + 1
		}
		nodes = append(nodes, n)
	}
	return nodes
}

func TestExplanation(t *testing.T) {
	eu := []Constraint{LabelSelector(map[string]string{"region": "eu"})}
	gb := Resources{MemoryBytes: gib}
	for _, tc := range []struct {
		name    string
		nodes   []*Node
		req     Request
		explain string
		err     string // "" = succeeds
	}{
		{"nothing fits", twelveNodes(3), Request{Deployment: "web", Count: 1, Constraints: eu, PerNode: gb},
			"0/12 nodes: 9 region mismatch, 3 insufficient memory",
			"place web: need 1 node, 0/12 feasible: 9 region mismatch, 3 insufficient memory"},
		{"too few", twelveNodes(1), Request{Deployment: "web", Count: 3, Constraints: eu, PerNode: gb},
			"2/12 nodes: 9 region mismatch, 1 insufficient memory",
			"place web: need 3 nodes, 2/12 feasible: 9 region mismatch, 1 insufficient memory"},
		{"enough", twelveNodes(1), Request{Deployment: "web", Count: 2, Constraints: eu, PerNode: gb},
			"2/12 nodes: 9 region mismatch, 1 insufficient memory", ""},
		{"all fit", twelveNodes(0), Request{Deployment: "web", Count: 2}, "12/12 nodes", ""},
		{"ties by name", []*Node{
			with(newNode("a"), func(n *Node) { n.State = StateLost }),
			with(newNode("b"), func(n *Node) { n.State = StateDraining }),
			with(newNode("c"), func(n *Node) { n.State = StateLost }),
			with(newNode("d"), func(n *Node) { n.State = StateDraining }),
			with(newNode("e"), func(n *Node) { n.Schedulable = false }),
		}, Request{Deployment: "web", Count: 1},
			"0/5 nodes: 2 draining, 2 node lost, 1 not schedulable",
			"place web: need 1 node, 0/5 feasible: 2 draining, 2 node lost, 1 not schedulable"},
		{"no nodes", nil, Request{Deployment: "web", Count: 1}, "0/0 nodes", "place web: need 1 node, 0/0 feasible"},
		{"daemon", twelveNodes(3), Request{Deployment: "agentd", Mode: ModeDaemon, Constraints: eu, PerNode: gb},
			"0/12 nodes: 9 region mismatch, 3 insufficient memory",
			"place agentd: need 1 node, 0/12 feasible: 9 region mismatch, 3 insufficient memory"},
		{"scale to zero", twelveNodes(3), Request{Deployment: "web", Count: 0, Constraints: eu, PerNode: gb},
			"0/12 nodes: 9 region mismatch, 3 insufficient memory", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Place(tc.nodes, tc.req)
			if res.Explanation != tc.explain {
				t.Errorf("explanation %q, want %q", res.Explanation, tc.explain)
			}
			if tc.err == "" {
				if err != nil {
					t.Fatalf("Place: %v", err)
				}
				return
			}
			perr := mustFail(t, tc.nodes, tc.req)
			if perr.Error() != tc.err {
				t.Errorf("error %q, want %q", perr.Error(), tc.err)
			}
			if perr.Result.Explanation != tc.explain {
				t.Errorf("error's explanation %q, want %q", perr.Result.Explanation, tc.explain)
			}
		})
	}
}

func TestStrategy(t *testing.T) {
	nodes := []*Node{
		with(newNode("busy"), func(n *Node) { n.Allocated = Resources{MemoryBytes: 2 * gib, MilliCPU: 2000, Instances: 10} }),
		newNode("empty"),
		with(newNode("half"), func(n *Node) { n.Allocated = Resources{MemoryBytes: gib, MilliCPU: 1000, Instances: 5} }),
	}
	per := Resources{MemoryBytes: 256 << 20, MilliCPU: 100, Instances: 1}
	for _, tc := range []struct {
		name     string
		strategy Strategy
		want     []string
	}{
		{"binpack prefers fuller", BinPack, []string{"busy", "half", "empty"}},
		{"spread prefers emptier", Spread, []string{"empty", "half", "busy"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := mustPlace(t, nodes, Request{Deployment: "web", Count: 3, PerNode: per, Strategy: tc.strategy})
			if got := names(res.Placements); !slices.Equal(got, tc.want) {
				t.Fatalf("placements %v, want %v", got, tc.want)
			}
			for i := 1; i < len(res.Placements); i++ {
				if res.Placements[i].Score.Resource >= res.Placements[i-1].Score.Resource {
					t.Errorf("resource scores not decreasing: %+v", res.Placements)
				}
			}
		})
	}
}

func TestZoneSpread(t *testing.T) {
	full := func(n *Node) { n.Allocated = Resources{MemoryBytes: 3 * gib, MilliCPU: 3000} }
	threeZones := []*Node{
		// zone a's nodes are fuller, so bin-packing alone would put everything there.
		with(newNode("a1", "zone", "a"), full),
		with(newNode("a2", "zone", "a"), full),
		with(newNode("a3", "zone", "a"), full),
		newNode("b1", "zone", "b"),
		newNode("b2", "zone", "b"),
		newNode("c1", "zone", "c"),
	}
	twoZones := []*Node{
		with(newNode("a1", "zone", "a"), full),
		with(newNode("a2", "zone", "a"), full),
		newNode("b1", "zone", "b"),
		newNode("b2", "zone", "b"),
	}
	unlabelled := []*Node{
		with(newNode("x1"), full),
		with(newNode("x2"), full),
		newNode("a1", "zone", "a"),
		newNode("b1", "zone", "b"),
	}
	per := Resources{MemoryBytes: 256 << 20, MilliCPU: 100}
	zoneOf := func(nodes []*Node, name string) string {
		for _, n := range nodes {
			if n.Name == name {
				return n.Labels["zone"]
			}
		}
		return "?"
	}
	for _, tc := range []struct {
		name    string
		nodes   []*Node
		count   int
		current []string
		spread  string
		zones   []string // zones of the placements, sorted
	}{
		{"three zones", threeZones, 3, nil, "zone", []string{"a", "b", "c"}},
		{"no spread packs zone a", threeZones, 3, nil, "", []string{"a", "a", "a"}},
		{"two zones", twoZones, 3, nil, "zone", []string{"a", "a", "b"}},
		{"four in three zones", threeZones, 4, nil, "zone", []string{"a", "a", "b", "c"}},
		{"current counts", threeZones, 3, []string{"b2"}, "zone", []string{"a", "b", "c"}},
		{"current both in a", threeZones, 3, []string{"a1", "a2"}, "zone", []string{"a", "a", "b"}},
		{"scale down spreads kept nodes", threeZones, 2, []string{"a1", "a2", "b1"}, "zone", []string{"a", "b"}},
		{"unlabelled nodes last", unlabelled, 3, nil, "zone", []string{"", "a", "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := mustPlace(t, tc.nodes, Request{Deployment: "web", Count: tc.count, PerNode: per, Spread: tc.spread, Current: tc.current})
			var zones []string
			for _, p := range res.Placements {
				zones = append(zones, zoneOf(tc.nodes, p.Node))
			}
			if got := sorted(zones); !slices.Equal(got, tc.zones) {
				t.Fatalf("placements %v in zones %v, want zones %v", names(res.Placements), got, tc.zones)
			}
		})
	}
}

func TestPreferences(t *testing.T) {
	// "pricey" is fuller, so bin-packing alone prefers it.
	nodes := []*Node{
		with(newNode("pricey", "cost_tier", "high"), func(n *Node) { n.Allocated = Resources{MemoryBytes: 2 * gib, MilliCPU: 2000} }),
		newNode("cheap", "cost_tier", "low"),
	}
	per := Resources{MemoryBytes: 256 << 20, MilliCPU: 100}
	for _, tc := range []struct {
		name  string
		prefs []Preference
		want  string
	}{
		{"none", nil, "pricey"},
		{"cost tier outweighs packing", []Preference{LabelPreference("cost_tier", "low", 1)}, "cheap"},
		{"light weight does not", []Preference{LabelPreference("cost_tier", "low", 0.1)}, "pricey"},
		{"zero weight does not", []Preference{LabelPreference("cost_tier", "low", 0)}, "pricey"},
		{"negative weight avoids", []Preference{LabelPreference("cost_tier", "high", -1)}, "cheap"},
		{"heavier of two wins", []Preference{LabelPreference("cost_tier", "low", 1), LabelPreference("cost_tier", "high", 3)}, "pricey"},
		{"scores are clamped", []Preference{preferenceFunc{"wild", 1, func(n *Node) float64 {
			if n.Name == "cheap" {
				return 1e9
			}
			return 2 // both clamp to 1, so packing decides
		}}}, "pricey"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := mustPlace(t, nodes, Request{Deployment: "web", Count: 1, PerNode: per, Preferences: tc.prefs})
			if got := res.Placements[0].Node; got != tc.want {
				t.Fatalf("placed on %s, want %s (%+v)", got, tc.want, res.Placements[0].Score)
			}
			if got := len(res.Placements[0].Score.Preferences); got != len(tc.prefs) {
				t.Fatalf("%d preference scores, want %d", got, len(tc.prefs))
			}
			for i, ps := range res.Placements[0].Score.Preferences {
				if ps.Name != tc.prefs[i].Name() || ps.Weight != tc.prefs[i].Weight() || ps.Score < 0 || ps.Score > 1 {
					t.Errorf("preference score %+v", ps)
				}
			}
		})
	}
}

func TestCurrent(t *testing.T) {
	per := Resources{MemoryBytes: gib, MilliCPU: 500, Instances: 1}
	// Each case places 2 replicas; "best" and "good" are the nodes the scheduler picks
	// without Current, "old1" and "old2" emptier nodes that bin-packing ranks last.
	base := func() []*Node {
		fuller := func(n *Node) { n.Allocated = Resources{MemoryBytes: 2 * gib, MilliCPU: 2000} }
		return []*Node{
			with(newNode("best", "region", "eu"), fuller),
			with(newNode("good", "region", "eu"), fuller),
			newNode("old1", "region", "eu"),
			newNode("old2", "region", "eu"),
		}
	}
	set := func(name string, f func(*Node)) func([]*Node) {
		return func(nodes []*Node) {
			for _, n := range nodes {
				if n.Name == name {
					f(n)
				}
			}
		}
	}
	for _, tc := range []struct {
		name    string
		change  func([]*Node)
		current []string
		held    Resources // CurrentPerNode
		want    []string  // sorted
	}{
		{"no current", nil, nil, Resources{}, []string{"best", "good"}},
		{"kept though others score higher", nil, []string{"old1", "old2"}, Resources{}, []string{"old1", "old2"}},
		{"one kept, one new", nil, []string{"old2"}, Resources{}, []string{"best", "old2"}},
		{"draining replaced", set("old1", func(n *Node) { n.State = StateDraining; n.Schedulable = false }), []string{"old1", "old2"}, Resources{}, []string{"best", "old2"}},
		{"lost replaced", set("old1", func(n *Node) { n.State = StateLost }), []string{"old1", "old2"}, Resources{}, []string{"best", "old2"}},
		{"label change replaced", set("old2", func(n *Node) { n.Labels["region"] = "us" }), []string{"old1", "old2"}, Resources{}, []string{"best", "old1"}},
		{"full node replaced", set("old1", func(n *Node) { n.Allocated.MemoryBytes = 4 * gib }), []string{"old1", "old2"}, Resources{}, []string{"best", "old2"}},
		{"own reservation given back", set("old1", func(n *Node) { n.Allocated.MemoryBytes = 4 * gib }), []string{"old1", "old2"}, Resources{MemoryBytes: gib}, []string{"old1", "old2"}},
		{"growing past capacity replaced", set("old1", func(n *Node) { n.Allocated.MemoryBytes = 4 * gib }), []string{"old1", "old2"}, Resources{MemoryBytes: gib / 2}, []string{"best", "old2"}},
		{"vanished node replaced", nil, []string{"gone", "old2"}, Resources{}, []string{"best", "old2"}},
		{"scale down keeps current", nil, []string{"old1", "old2", "good"}, Resources{}, []string{"good", "old1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodes := base()
			if tc.change != nil {
				tc.change(nodes)
			}
			res := mustPlace(t, nodes, Request{
				Deployment: "web", Count: 2, PerNode: per, Current: tc.current, CurrentPerNode: tc.held,
				Constraints: []Constraint{LabelSelector(map[string]string{"region": "eu"})},
			})
			if got := sorted(names(res.Placements)); !slices.Equal(got, tc.want) {
				t.Fatalf("placements %v, want %v", got, tc.want)
			}
			for _, p := range res.Placements {
				isCurrent := slices.Contains(tc.current, p.Node)
				if p.Current != isCurrent || (p.Score.Stickiness == StickinessBonus) != isCurrent {
					t.Errorf("%s: Current %v, stickiness %v, want current=%v", p.Node, p.Current, p.Score.Stickiness, isCurrent)
				}
			}
		})
	}
}

func TestDaemon(t *testing.T) {
	var nodes []*Node
	var wantEU []string
	for i := range 20 {
		region := []string{"eu", "us", "ap"}[i%3]
		n := newNode(fmt.Sprintf("n%02d", 19-i), "region", region)
		if region == "eu" {
			wantEU = append(wantEU, n.Name)
		}
		nodes = append(nodes, n)
	}
	slices.Sort(wantEU)
	for _, tc := range []struct {
		name     string
		selector map[string]string
		want     []string
	}{
		{"selector", map[string]string{"region": "eu"}, wantEU},
		{"every node", nil, sorted(names(mustPlace(t, nodes, Request{Count: 20}).Placements))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := mustPlace(t, nodes, Request{
				Deployment:  "agentd",
				Mode:        ModeDaemon,
				Count:       1, // ignored
				SampleSize:  2, // ignored: a daemon goes everywhere
				Spread:      "zone",
				Constraints: []Constraint{LabelSelector(tc.selector)},
				Preferences: []Preference{LabelPreference("region", "eu", 1)},
			})
			if got := names(res.Placements); !slices.Equal(got, tc.want) {
				t.Fatalf("placements %v, want %v (sorted by name)", got, tc.want)
			}
			if res.Feasible != len(tc.want) || res.Scored != len(tc.want) {
				t.Fatalf("feasible %d, scored %d, want %d", res.Feasible, res.Scored, len(tc.want))
			}
		})
	}
}

func TestNoPartialPlacement(t *testing.T) {
	nodes := twelveNodes(1)
	for _, tc := range []struct {
		name  string
		count int
		cur   []string
	}{
		{"nothing fits", 1, nil},
		{"too few", 3, nil},
		{"too few with current", 3, []string{"eu-0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sel := map[string]string{"region": "eu"}
			if tc.name == "nothing fits" {
				sel["region"] = "mars"
			}
			req := Request{Deployment: "web", Count: tc.count, Current: tc.cur, PerNode: Resources{MemoryBytes: gib},
				Constraints: []Constraint{LabelSelector(sel)}}
			perr := mustFail(t, nodes, req)
			if perr.Need != tc.count || perr.Deployment != "web" {
				t.Fatalf("error %+v", perr)
			}
			if perr.Result.Feasible+sumCounts(perr.Result.Rejected) != len(nodes) {
				t.Fatalf("feasible %d + rejected %v != %d nodes", perr.Result.Feasible, perr.Result.Rejected, len(nodes))
			}
		})
	}
}

// cluster is n nodes over 3 regions × 4 zones with varied fullness, shuffled by seed.
func cluster(n int, seed uint64) []*Node {
	rng := rand.New(rand.NewPCG(seed, 1))
	nodes := make([]*Node, n)
	for i := range nodes {
		region := []string{"eu", "us", "ap"}[i%3]
		nd := newNode(fmt.Sprintf("node-%04d", i), "region", region, "zone", fmt.Sprintf("%s-%d", region, (i/3)%4),
			"cost_tier", []string{"low", "high"}[i%2])
		nd.Capacity.MemoryBytes = int64(2+i%7) * gib
		nd.Allocated.MemoryBytes = rng.Int64N(nd.Capacity.MemoryBytes)
		nd.Allocated.MilliCPU = rng.Int64N(4000)
		nodes[i] = nd
	}
	return nodes
}

func TestDeterminism(t *testing.T) {
	nodes := cluster(300, 1)
	req := Request{
		Deployment:  "web",
		Count:       3,
		PerNode:     Resources{MemoryBytes: 128 << 20, MilliCPU: 100, Instances: 1},
		Constraints: []Constraint{LabelSelector(map[string]string{"region": "eu"})},
		Preferences: []Preference{LabelPreference("cost_tier", "low", 0.5)},
		Spread:      "zone",
		SampleSize:  10,
		Seed:        42,
	}
	first := mustPlace(t, nodes, req)
	t.Run("same input", func(t *testing.T) {
		for range 5 {
			if again := mustPlace(t, nodes, req); !reflect.DeepEqual(again, first) {
				t.Fatalf("second run differs:\n%+v\n%+v", again, first)
			}
		}
	})
	t.Run("node order does not matter", func(t *testing.T) {
		shuffled := slices.Clone(nodes)
		rand.New(rand.NewPCG(7, 7)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if again := mustPlace(t, shuffled, req); !reflect.DeepEqual(again, first) {
			t.Fatalf("shuffled input differs:\n%+v\n%+v", again, first)
		}
	})
	t.Run("seed changes the sample", func(t *testing.T) {
		differs := false
		for seed := range uint64(10) {
			r := req
			r.Seed = seed + 100
			if !slices.Equal(names(mustPlace(t, nodes, r).Placements), names(first.Placements)) {
				differs = true
			}
		}
		if !differs {
			t.Fatal("ten other seeds all chose the same nodes as seed 42")
		}
	})
}

func TestSampling(t *testing.T) {
	nodes := cluster(1000, 2)
	// The three worst nodes for bin-packing: empty ones.
	for _, n := range nodes[:3] {
		n.Allocated = Resources{}
	}
	current := []string{nodes[0].Name, nodes[1].Name, nodes[2].Name}
	for _, tc := range []struct {
		name       string
		count      int
		sampleSize int
		current    []string
		scored     int
	}{
		{"default is 10% above 500", 3, 0, nil, 100},
		{"explicit", 3, 20, nil, 20},
		{"never fewer than count", 30, 5, nil, 30},
		{"all", 3, -1, nil, 1000},
		{"current always scored", 5, 20, current, 20},
		{"current beyond the sample", 5, 2, current, 5},
		{"current enough: nothing else scored", 3, 20, current, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := mustPlace(t, nodes, Request{Deployment: "web", Count: tc.count, SampleSize: tc.sampleSize, Current: tc.current, Seed: 9})
			if res.Scored != tc.scored || res.Feasible != 1000 {
				t.Fatalf("scored %d of %d, want %d of 1000", res.Scored, res.Feasible, tc.scored)
			}
			for _, c := range tc.current {
				if !slices.Contains(names(res.Placements), c) {
					t.Fatalf("current node %s dropped: %v", c, names(res.Placements))
				}
			}
		})
	}
	t.Run("default is 50 below 500", func(t *testing.T) {
		if res := mustPlace(t, nodes[:400], Request{Count: 3}); res.Scored != 50 {
			t.Fatalf("scored %d, want 50", res.Scored)
		}
	})
	t.Run("sample is a seeded subset", func(t *testing.T) {
		for seed := range uint64(50) {
			res := mustPlace(t, nodes, Request{Count: 3, SampleSize: 3, Seed: seed})
			if got := sorted(names(res.Placements)); !slices.Equal(got, sampleNames(nodes, 3, seed)) {
				t.Fatalf("seed %d: placed %v, sample %v", seed, got, sampleNames(nodes, 3, seed))
			}
		}
	})
}

// sampleNames is the sample of k nodes by sorting every hash: the slow reference for
// selectSmallest.
func sampleNames(nodes []*Node, k int, seed uint64) []string {
	byHash := slices.Clone(nodes)
	slices.SortFunc(byHash, func(a, b *Node) int {
		ha, hb := nameHash(seed, a.Name), nameHash(seed, b.Name)
		if ha < hb {
			return -1
		}
		if ha > hb {
			return 1
		}
		return 0
	})
	var out []string
	for _, n := range byHash[:k] {
		out = append(out, n.Name)
	}
	slices.Sort(out)
	return out
}

func TestSelectSmallest(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, size := range []int{1, 2, 3, 5, 10, 100, 1000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			for range 50 {
				a := make([]hashed, size)
				for i := range a {
					a[i] = hashed{key: rng.Uint64N(uint64(size)), idx: int32(i)} // repeats keys
				}
				want := slices.Clone(a)
				slices.SortFunc(want, func(x, y hashed) int {
					if x.less(y) {
						return -1
					}
					return 1
				})
				k := 1 + rng.IntN(size)
				selectSmallest(a, k)
				got := slices.Clone(a[:k])
				slices.SortFunc(got, func(x, y hashed) int {
					if x.less(y) {
						return -1
					}
					return 1
				})
				if !slices.Equal(got, want[:k]) {
					t.Fatalf("k=%d: got %v, want %v", k, got, want[:k])
				}
			}
		})
	}
}

func TestInputNotMutated(t *testing.T) {
	nodes := cluster(200, 3)
	nodes[5].State = StateDraining
	current := []string{nodes[0].Name, nodes[5].Name, "gone"}
	for _, tc := range []struct {
		name string
		req  Request
	}{
		{"count", Request{Count: 5, Spread: "zone", SampleSize: 20, Current: current, CurrentPerNode: Resources{MemoryBytes: gib},
			PerNode: Resources{MemoryBytes: 64 << 20, MilliCPU: 10, Instances: 1}, Preferences: []Preference{LabelPreference("cost_tier", "low", 1)}}},
		{"daemon", Request{Mode: ModeDaemon, Current: current, PerNode: Resources{MemoryBytes: 64 << 20},
			Constraints: []Constraint{LabelSelector(map[string]string{"region": "us"})}}},
		{"failure", Request{Count: 500, Current: current, PerNode: Resources{MemoryBytes: 64 << 20}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := cloneNodes(nodes)
			order := slices.Clone(nodes)
			cur := slices.Clone(tc.req.Current)
			Place(nodes, tc.req)
			if !slices.Equal(order, nodes) {
				t.Fatal("node slice reordered")
			}
			if !reflect.DeepEqual(before, nodes) {
				t.Fatal("nodes modified")
			}
			if !slices.Equal(cur, tc.req.Current) {
				t.Fatal("Current modified")
			}
		})
	}
}

func TestInvalidRequest(t *testing.T) {
	nodes := []*Node{newNode("a"), newNode("b")}
	for _, tc := range []struct {
		name  string
		nodes []*Node
		req   Request
		msg   string
	}{
		{"negative count", nodes, Request{Count: -1}, "count -1 is negative"},
		{"unknown mode", nodes, Request{Mode: 7}, "unknown mode 7"},
		{"unknown strategy", nodes, Request{Strategy: 9}, "unknown strategy 9"},
		{"negative resources", nodes, Request{PerNode: Resources{MilliCPU: -1}}, "none may be negative"},
		{"negative current resources", nodes, Request{CurrentPerNode: Resources{Instances: -1}}, "none may be negative"},
		{"nil constraint", nodes, Request{Constraints: []Constraint{nil}}, "constraints[0] is nil"},
		{"nil preference", nodes, Request{Preferences: []Preference{nil}}, "preferences[0] is nil"},
		{"infinite weight", nodes, Request{Preferences: []Preference{LabelPreference("a", "b", math.Inf(1))}}, "not a finite number"},
		{"nil node", []*Node{newNode("a"), nil}, Request{Count: 1}, "nodes[1] is nil"},
		{"duplicate names", []*Node{newNode("a"), newNode("a")}, Request{Count: 2}, `two nodes are named "a"`},
		{"duplicate names, daemon", []*Node{newNode("b"), newNode("a"), newNode("b")}, Request{Mode: ModeDaemon}, `two nodes are named "b"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Deployment = "web"
			res, err := Place(tc.nodes, tc.req)
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("Place: %v, want ErrInvalidRequest", err)
			}
			var perr *PlacementError
			if errors.As(err, &perr) {
				t.Fatal("an invalid request is not a shortage of nodes")
			}
			if !strings.HasPrefix(err.Error(), "place web: ") || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q, want it to contain %q", err, tc.msg)
			}
			if len(res.Placements) != 0 {
				t.Fatalf("placed %v", names(res.Placements))
			}
		})
	}
}

func TestDiff(t *testing.T) {
	for _, tc := range []struct {
		name                string
		current, desired    []string
		wantAdd, wantRemove []string
	}{
		{"empty", nil, nil, nil, nil},
		{"same", []string{"a", "b"}, []string{"b", "a"}, nil, nil},
		{"add", []string{"a"}, []string{"a", "c", "b"}, []string{"c", "b"}, nil},
		{"remove", []string{"c", "a", "b"}, []string{"a"}, nil, []string{"c", "b"}},
		{"replace", []string{"a", "b"}, []string{"b", "c"}, []string{"c"}, []string{"a"}},
		{"repeats", []string{"a", "a", "b"}, []string{"c", "c"}, []string{"c"}, []string{"a", "b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			add, remove := Diff(tc.current, tc.desired)
			if !slices.Equal(add, tc.wantAdd) || !slices.Equal(remove, tc.wantRemove) {
				t.Fatalf("Diff = %v, %v; want %v, %v", add, remove, tc.wantAdd, tc.wantRemove)
			}
		})
	}
}

func TestStrings(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{ModeCount.String(), "count"},
		{ModeDaemon.String(), "daemon"},
		{Mode(5).String(), "Mode(5)"},
		{BinPack.String(), "binpack"},
		{Spread.String(), "spread"},
		{Strategy(5).String(), "Strategy(5)"},
		{LabelSelector(map[string]string{"zone": "a", "region": "eu"}).Name(), "labels(region=eu,zone=a)"},
		{LabelPreference("cost_tier", "low", 2).Name(), "label(cost_tier=low)*2"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if tc.got != tc.want {
				t.Fatalf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}

func TestPow10(t *testing.T) {
	for _, x := range []float64{-0.5, 0, 1e-9, 0.001, 0.25, 0.5, 0.7071, 0.999, 1, 1.5} {
		t.Run(fmt.Sprint(x), func(t *testing.T) {
			want := math.Pow(10, min(max(x, 0), 1))
			if got := pow10(x); math.Abs(got-want)/want > 1e-6 {
				t.Fatalf("pow10(%v) = %v, want %v", x, got, want)
			}
		})
	}
}
