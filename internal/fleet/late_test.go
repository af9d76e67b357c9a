package fleet

import (
	"testing"
	"time"

	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/slo"
)

// TestLateBackfillAndRebuiltReplicas pins what a replica rebuilt from the streams
// answers about a summary that arrived after its window had left the detail tier (a
// backfill more than DetailRetention late): the leader no longer re-publishes that
// window's rollup, so
//
//   - every replica running when it arrived counts it;
//   - a replica rebuilt while the raw stream still holds it (within RawRetention of
//     its end) counts it, from the raw stream;
//   - a replica rebuilt later counts the window as its last rollup had it: without
//     the late summary, and without anything else.
//
// (docs/sli.md, "Tiers": "Rollups".)
func TestLateBackfillAndRebuiltReplicas(t *testing.T) {
	const minute = time.Minute
	newLateStore := func() *Store {
		st, err := New(Config{Nodes: nodeInfo})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	mk := func(at time.Time, ok uint64) *sli.Summary {
		s := &sli.Summary{Node: "n1", Key: sli.Key{Deployment: "a", Version: "v1", Route: "/"},
			Seq: sli.SeqFor(at, minute), Start: at, End: at.Add(minute), Latency: &sli.Sketch{}}
		s.Status[1] = ok
		s.Latency.AddN(time.Millisecond, ok)
		return s
	}
	start := t0.Add(-8 * time.Hour)
	lateAt := start.Add(time.Hour)     // when the late summary arrives…
	lateOf := lateAt.Add(-40 * minute) // …for the interval starting here
	late := mk(lateOf, 1000)           // distinct from the 10 requests of every other interval
	type sent struct {
		s  *sli.Summary
		at time.Time
	}
	var raw []sent
	var rollups []sli.Summary
	live := newLateStore()
	live.Prune(start)
	lateSent := false
	for at := start; at.Before(t0); at = at.Add(minute) {
		now := at.Add(minute)
		if s := mk(at, 10); !at.Equal(lateOf) { // that interval comes late, below
			if o := live.Add(s, now); o != Accepted {
				t.Fatalf("%v: %v", at, o)
			}
			raw = append(raw, sent{s, now})
		}
		if !lateSent && !now.Before(lateAt) {
			if o := live.Add(late, now); o != Accepted {
				t.Fatalf("late summary: %v", o)
			}
			raw = append(raw, sent{late, now})
			lateSent = true
		}
		live.Prune(now)
		if now.Sub(start)%(5*minute) == 0 {
			for _, r := range live.PendingRollups(now, minute) {
				if err := live.AddRollup(&r, now); err != nil {
					t.Fatal(err)
				}
				live.MarkPublished(&r)
				rollups = append(rollups, r)
			}
		}
	}
	// Every rollup of the late summary's window was published before it arrived.
	lateWindow := sli.Boundary(lateOf, live.cfg.Width)
	for _, r := range rollups {
		if r.Start.Equal(lateWindow) && r.Status[1] >= 1000 {
			t.Fatalf("the window's rollup was re-published with the late summary: %+v", r.Status)
		}
	}
	ser := slo.Series{App: "a", Version: "v1", Scope: "n1"}
	avail := slo.SLI{Kind: slo.Availability}
	spec := &slo.Spec{App: "a", SLI: avail, Scope: slo.Scope{Per: slo.ScopeNode}}
	// rebuild is a replica started at now: the rollups, then what the raw stream still
	// holds (published up to now, ending after now − RawRetention), as the ingest reads
	// them.
	rebuild := func(now time.Time) *Store {
		re := newLateStore()
		re.Prune(now)
		for i := range rollups {
			if !rollups[i].End.After(now) {
				if err := re.AddRollup(&rollups[i], now); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, x := range raw {
			if !x.at.After(now) && x.s.End.After(now.Add(-DefaultRawRetention)) {
				re.Add(x.s, now)
			}
		}
		re.FlushRollups()
		re.Prune(now)
		re.Series(spec, start, now)
		return re
	}
	// count is n1's requests over the hour holding the late interval, as of now.
	count := func(st *Store, now time.Time) int64 {
		st.Series(spec, start, now)
		from := sli.Boundary(lateOf, time.Hour)
		return st.Counts(ser, avail, from, from.Add(time.Hour)).Total
	}
	// The hour holds 60 intervals of 10 requests, one of which came late with 1,000.
	const hourOf10s = 60 * 10
	for _, tt := range []struct {
		name string
		st   func() (*Store, time.Time)
		want int64
	}{
		{"live", func() (*Store, time.Time) { return live, t0 }, hourOf10s - 10 + 1000},
		{"rebuilt while the raw stream holds it", func() (*Store, time.Time) {
			now := lateAt.Add(2 * time.Hour)
			return rebuild(now), now
		}, hourOf10s - 10 + 1000},
		{"rebuilt after the raw stream dropped it", func() (*Store, time.Time) { return rebuild(t0), t0 }, hourOf10s - 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, now := tt.st()
			if got := count(st, now); got != tt.want {
				t.Errorf("requests in the late interval's hour: %d, want %d", got, tt.want)
			}
		})
	}
}
