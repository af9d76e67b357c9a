package sli

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestDownsampleIsExact(t *testing.T) {
	// Two nodes, an hour of 10 s intervals, folded into 5-minute windows.
	r := rand.New(rand.NewPCG(5, 6))
	k := Key{"hello", "v1", "/hello"}
	var raw []Summary
	whole := map[string]*Sketch{"a": {}, "b": {}}
	reqs := map[string]uint64{}
	for _, node := range []string{"a", "b"} {
		agg := NewAggregator(Config{Node: node, Start: t0, Interval: 10 * time.Second})
		at := t0
		for i := 0; i < 360; i++ {
			for j := 0; j < r.IntN(30); j++ {
				lat := time.Duration(r.Int64N(int64(50 * time.Millisecond)))
				status := 200
				if r.IntN(50) == 0 {
					status = 500
				}
				agg.Record(k, status, lat, j == 0)
				whole[node].Add(lat)
				reqs[node]++
			}
			agg.ObserveInstance(k, uint64(i), time.Millisecond)
			at = at.Add(10 * time.Second)
			raw = append(raw, agg.Flush(at)...)
		}
	}
	// Shuffled and with a duplicate (a backfill re-send), as a store would see them.
	raw = append(raw, raw[17])
	r.Shuffle(len(raw), func(i, j int) { raw[i], raw[j] = raw[j], raw[i] })

	out, err := Downsample(raw, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2*12 {
		t.Fatalf("%d windows, want 24", len(out))
	}
	merged := map[string]*Summary{}
	for _, s := range out {
		if s.End.Sub(s.Start) != 5*time.Minute || !s.Start.Equal(Boundary(s.Start, 5*time.Minute)) {
			t.Fatalf("window %v–%v is not an aligned 5 minutes", s.Start, s.End)
		}
		if err := ValidateSummary(s); err != nil {
			t.Fatal(err)
		}
		if merged[s.Node] == nil {
			c := s.Clone()
			merged[s.Node] = &c
		} else if err := Merge(merged[s.Node], s); err != nil {
			t.Fatal(err)
		}
	}
	for node, s := range merged {
		if s.Requests() != reqs[node] {
			t.Errorf("node %s: %d requests after downsampling, want %d", node, s.Requests(), reqs[node])
		}
		if !s.Latency.Equal(whole[node]) {
			t.Errorf("node %s: downsampled sketch differs from the sketch of every request", node)
		}
		if s.MemoryMaxBytes != 359 || s.CPUTime != 360*time.Millisecond {
			t.Errorf("node %s: memory max %d cpu %v", node, s.MemoryMaxBytes, s.CPUTime)
		}
	}
	// A fleet total across nodes is exact too, and has no node.
	fleet := merged["a"].Clone()
	if err := Merge(&fleet, *merged["b"]); err != nil {
		t.Fatal(err)
	}
	all := whole["a"].Clone()
	all.Merge(whole["b"])
	if fleet.Node != "" || !fleet.Latency.Equal(all) || fleet.Requests() != reqs["a"]+reqs["b"] {
		t.Fatalf("fleet merge: node %q, requests %d", fleet.Node, fleet.Requests())
	}
}

func TestDownsampleRefuses(t *testing.T) {
	s := Summary{Node: "n", Key: Key{"d", "v", "/"}, Start: t0.Add(50 * time.Second), End: t0.Add(70 * time.Second), Latency: &Sketch{}}
	tests := []struct {
		name  string
		in    []Summary
		width time.Duration
		want  string
	}{
		{"zero width", []Summary{s}, 0, "must be positive"},
		{"interval across a window's end", []Summary{s}, time.Minute, "across a 1m0s window's end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Downsample(tt.in, tt.width)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
	other := s
	other.Key.Version = "v2"
	if err := Merge(&s, other); err == nil || !strings.Contains(err.Error(), "keys differ") {
		t.Fatalf("Merge of different keys: %v", err)
	}
}
