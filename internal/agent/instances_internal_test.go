package agent

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
)

// TestFitReply: a reply too large for NATS leaves out the discarded instances longest
// gone first, then live ones, counts them in Dropped, and fits.
func TestFitReply(t *testing.T) {
	t0 := time.Unix(1_000_000, 0).UTC()
	var tls []v1.InstanceTimeline
	for i := range 10 {
		tl := v1.InstanceTimeline{Node: "n", Deployment: "d", Version: "1", ID: uint64(i + 1), State: "idle",
			Created: t0.Add(time.Duration(i) * time.Second), DiscardDetail: strings.Repeat("x", 200)}
		if i < 6 {
			tl.State, tl.Discarded, tl.DiscardReason = "discarded", t0.Add(time.Duration(100-i)*time.Second), "idle"
		}
		tls = append(tls, tl)
	}
	full, _ := json.Marshal(v1.InstancesReply{Node: "n", Instances: tls, Dropped: 3})
	for _, tc := range []struct {
		name    string
		max     int
		dropped []uint64 // ids left out
	}{
		{"fits", len(full), nil},
		{"one discarded out", len(full) - 100, []uint64{6}}, // discarded longest ago: id 6 (t0+94s)
		{"all discarded out", len(full) * 4 / 10, []uint64{1, 2, 3, 4, 5, 6}},
		{"live out too, newest first", 500, []uint64{1, 2, 3, 4, 5, 6, 8, 9, 10}},
		{"none fits", 120, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := v1.InstancesReply{Node: "n", Instances: append([]v1.InstanceTimeline(nil), tls...), Dropped: 3}.MarshalWithin(tc.max)
			if len(b) > tc.max {
				t.Fatalf("%d bytes, max %d", len(b), tc.max)
			}
			var got v1.InstancesReply
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if got.Dropped != 3+len(tc.dropped) {
				t.Errorf("Dropped = %d, want %d", got.Dropped, 3+len(tc.dropped))
			}
			out := map[uint64]bool{}
			for _, id := range tc.dropped {
				out[id] = true
			}
			for _, tl := range got.Instances {
				if out[tl.ID] {
					t.Errorf("instance %d kept, want it left out", tl.ID)
				}
			}
			if len(got.Instances) != len(tls)-len(tc.dropped) {
				t.Errorf("%d instances kept, want %d", len(got.Instances), len(tls)-len(tc.dropped))
			}
		})
	}
}

// FuzzFitReply: whatever the timelines (details of any bytes, any count), the reply is
// valid JSON within max and accounts for every timeline it left out.
func FuzzFitReply(f *testing.F) {
	f.Add(3, 2, "trap: unreachable", 400)
	f.Add(40, 30, "\xff\x00\"\\<>", 2000)
	f.Add(0, 0, "", 200)
	f.Fuzz(func(t *testing.T, n, discarded int, detail string, max int) {
		if n < 0 || n > 200 || max < 200 || max > 1<<20 {
			t.Skip()
		}
		t0 := time.Unix(1_000_000, 0).UTC()
		tls := make([]v1.InstanceTimeline, n)
		for i := range tls {
			tls[i] = v1.InstanceTimeline{ID: uint64(i + 1), State: "idle", Created: t0.Add(time.Duration(i) * time.Second),
				DiscardDetail: detail, Events: []v1.InstanceEvent{{Time: t0, Kind: "request_failed", Detail: detail}}}
			if i < discarded {
				tls[i].State, tls[i].Discarded = "discarded", t0.Add(time.Duration(n-i)*time.Second)
			}
		}
		b := v1.InstancesReply{Node: "n", Time: t0, Instances: tls}.MarshalWithin(max)
		if len(b) > max {
			t.Fatalf("%d bytes, max %d", len(b), max)
		}
		var got v1.InstancesReply
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Instances)+got.Dropped != n {
			t.Fatalf("%d kept + %d dropped, want %d", len(got.Instances), got.Dropped, n)
		}
	})
}
