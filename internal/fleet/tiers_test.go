package fleet

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/slo"
)

// TestTiersAgreeWithANaiveReference runs four days of four nodes' summaries through a
// store as the ingest does (pruned every minute, the leader's rollups read back) and
// compares its SLO counts and long queries with a plain sum over every summary ever
// sent, at the granularity each tier claims: exact per interval in the detail tier,
// and in whole 5-minute windows, hours and days beyond it, so a window starting on
// such a boundary is exact. Then it rebuilds a second store as a restarted replica
// does (the rollups, then the raw stream's last 6 hours) and checks it answers the
// same.
func TestTiersAgreeWithANaiveReference(t *testing.T) {
	if testing.Short() {
		t.Skip("four simulated days")
	}
	const minute = time.Minute // the agents' interval here: one summary per node and minute
	thresholds := func() []time.Duration { return []time.Duration{250 * time.Millisecond} }
	newTierStore := func() *Store {
		st, err := New(Config{Nodes: nodeInfo, Thresholds: thresholds})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := newTierStore()
	rng := rand.New(rand.NewPCG(5, 6))
	lats := []time.Duration{time.Millisecond, 20 * time.Millisecond, 240 * time.Millisecond, 260 * time.Millisecond, time.Second}
	var all []*sli.Summary
	var rollups []sli.Summary
	start := t0.Add(-4 * 24 * time.Hour)
	end := t0
	st.Prune(start)
	for at := start; at.Before(end); at = at.Add(minute) {
		now := at.Add(minute)
		for _, n := range []string{"n1", "n2", "n3", "n4"} {
			if rng.IntN(7) == 0 {
				continue // an idle minute
			}
			s := &sli.Summary{Node: n, Key: sli.Key{Deployment: "a", Version: "v1", Route: "/"},
				Seq: sli.SeqFor(at, minute), Start: at, End: now, Latency: &sli.Sketch{}}
			for range 1 + rng.IntN(30) {
				d := lats[rng.IntN(len(lats))]
				s.Latency.Add(d)
				if rng.IntN(20) == 0 {
					s.Status[4]++
				} else {
					s.Status[1]++
				}
			}
			if o := st.Add(s, now); o != Accepted {
				t.Fatalf("%v: %v", at, o)
			}
			all = append(all, s)
		}
		st.Prune(now)
		if now.Sub(start)%(5*time.Minute) == 0 {
			for _, r := range st.PendingRollups(now, time.Minute) {
				if err := st.AddRollup(&r, now); err != nil {
					t.Fatal(err)
				}
				st.MarkPublished(&r)
				rollups = append(rollups, r)
			}
		}
	}
	now := end.Add(17 * time.Second) // not on any boundary
	st.Prune(now)

	// naive sums every summary of the scope's nodes ending in (from, now].
	naive := func(nodes []string, sl slo.SLI, from time.Time) slo.Counts {
		var c slo.Counts
		for _, s := range all {
			in := false
			for _, n := range nodes {
				in = in || s.Node == n
			}
			if !in || !s.End.After(from) || s.End.After(now) {
				continue
			}
			c.Total += int64(s.Requests())
			if sl.Kind == slo.Latency {
				c.Good += int64(s.Latency.CountAtMost(sl.Threshold))
			} else {
				c.Good += int64(s.Requests() - s.Errors())
			}
		}
		return c
	}
	windows := []struct {
		name string
		from time.Time
	}{
		{"7 minutes (detail tier, any edge)", now.Add(-7 * time.Minute)},
		{"1 hour on a window", sli.Boundary(now.Add(-time.Hour), 5*time.Minute)},
		{"5 hours on a window", sli.Boundary(now.Add(-5*time.Hour), 5*time.Minute)},
		{"9 hours on an hour", sli.Boundary(now.Add(-9*time.Hour), time.Hour)},
		{"2 days on an hour", sli.Boundary(now.Add(-48*time.Hour), time.Hour)},
		{"3.5 days on a day", sli.Boundary(now.Add(-84*time.Hour), 24*time.Hour)},
	}
	scopes := []struct {
		name  string
		scope slo.Scope
		ser   slo.Series
		nodes []string
	}{
		{"node", slo.Scope{Per: slo.ScopeNode}, slo.Series{App: "a", Version: "v1", Scope: "n1"}, []string{"n1"}},
		{"region", slo.Scope{Per: slo.ScopeRegion}, slo.Series{App: "a", Version: "v1", Scope: "eu"}, []string{"n1", "n2"}},
		{"no region", slo.Scope{Per: slo.ScopeRegion}, slo.Series{App: "a", Version: "v1", Scope: NoRegion}, []string{"n4"}},
		{"global", slo.Scope{Per: slo.ScopeGlobal}, slo.Series{App: "a", Version: "v1", Scope: "global"}, []string{"n1", "n2", "n3", "n4"}},
		{"population", slo.Scope{Per: slo.ScopeGlobal, Nodes: map[string]string{"tier": "edge"}}, slo.Series{App: "a", Version: "v1", Scope: "global"}, []string{"n1", "n2"}},
	}
	slis := []slo.SLI{{Kind: slo.Availability}, {Kind: slo.Latency, Threshold: 250 * time.Millisecond}}
	check := func(t *testing.T, st *Store) {
		for _, sc := range scopes {
			for _, sl := range slis {
				for _, w := range windows {
					spec := &slo.Spec{App: "a", SLI: sl, Scope: sc.scope}
					found := false
					for _, s := range st.Series(spec, w.from, now) {
						found = found || s == sc.ser
					}
					if !found {
						t.Fatalf("%s %v over %s: series %v missing", sc.name, sl, w.name, sc.ser)
					}
					got, want := st.Counts(sc.ser, sl, w.from, now), naive(sc.nodes, sl, w.from)
					if got != want || want.Total == 0 {
						t.Errorf("%s %v over %s: counts %+v, want %+v", sc.name, sl, w.name, got, want)
					}
				}
			}
		}
		// /v1/slis past the detail tier: requests, 5xx and the merged sketch per
		// region, from the group tiers.
		for _, w := range windows[1:] {
			q := Query{By: []string{"region"}, Window: now.Sub(w.from)}
			got := map[string][3]float64{}
			for _, g := range st.Query(q, now, nil).Groups {
				got[g.Region] = [3]float64{float64(g.Requests), float64(g.Errors), g.P99Ms}
			}
			for region, nodes := range map[string][]string{"eu": {"n1", "n2"}, "us": {"n3"}, "": {"n4"}} {
				sk := &sli.Sketch{}
				var req, errs uint64
				for _, s := range all {
					if (s.Node == nodes[0] || s.Node == nodes[len(nodes)-1]) && s.End.After(w.from) && !s.End.After(now) {
						req += s.Requests()
						errs += s.Errors()
						sk.Merge(s.Latency)
					}
				}
				want := [3]float64{float64(req), float64(errs), float64(sk.Quantile(0.99)) / float64(time.Millisecond)}
				if got[region] != want {
					t.Errorf("query by region over %s: %q = %v, want %v", w.name, region, got[region], want)
				}
			}
		}
	}
	t.Run("live", func(t *testing.T) { check(t, st) })
	if s := st.Stats(); s.Windows > 4*4 || s.Staged != 0 {
		t.Fatalf("stats %+v", s)
	}

	t.Run("rebuilt", func(t *testing.T) {
		// A replica started at now reads the rollup stream (every window the leader
		// published) and the raw stream's last 6 hours, in parallel.
		re := newTierStore()
		re.Prune(now)
		raw := all[:0:0]
		for _, s := range all {
			if s.End.After(now.Add(-DefaultRawRetention)) {
				raw = append(raw, s)
			}
		}
		for i := 0; i < max(len(rollups), len(raw)); i++ {
			if i < len(rollups) {
				if err := re.AddRollup(&rollups[i], now); err != nil {
					t.Fatal(err)
				}
			}
			if i < len(raw) {
				re.Add(raw[i], now)
			}
		}
		re.FlushRollups()
		re.Prune(now)
		check(t, re) // the same naive sums: the rebuilt store answers as the live one
	})

	t.Run("a rollup re-published for an old window replaces the first", func(t *testing.T) {
		re := newTierStore()
		re.Prune(now)
		old := rollups[0]
		more := old.Clone()
		more.Status[1] += 1000
		more.Latency.AddN(time.Millisecond, 1000)
		for _, r := range []*sli.Summary{&more, &old} { // the later one is the complete one
			if err := re.AddRollup(r, now); err != nil {
				t.Fatal(err)
			}
		}
		re.FlushRollups()
		ser := slo.Series{App: "a", Version: "v1", Scope: old.Node}
		re.Series(&slo.Spec{App: "a", Scope: slo.Scope{Per: slo.ScopeNode}}, start, now)
		if c := re.Counts(ser, slo.SLI{Kind: slo.Availability}, start.Add(-time.Hour), now); c.Total != int64(old.Requests()) {
			t.Fatalf("counts %+v, want the last rollup's %d requests", c, old.Requests())
		}
	})
}

// TestPerNodeQueriesPastTheDetailTierAreRefused: past DetailRetention the store keeps
// no per-node latency, and says so.
func TestPerNodeQueriesPastTheDetailTierAreRefused(t *testing.T) {
	st := newStore(t)
	for _, tt := range []struct {
		q  Query
		ok bool
	}{
		{Query{By: []string{"app", "node"}, Window: 15 * time.Minute}, true},
		{Query{Node: "n1", Window: 10 * time.Minute}, true},
		{Query{By: []string{"app", "region"}, Window: 30 * 24 * time.Hour}, true},
		{Query{By: []string{"app", "node"}, Window: 16 * time.Minute}, false},
		{Query{Node: "n1", By: []string{"app"}, Window: time.Hour}, false},
	} {
		t.Run(fmt.Sprint(tt.q.Node, tt.q.By, tt.q.Window), func(t *testing.T) {
			err := st.CheckQuery(tt.q)
			if (err == nil) != tt.ok {
				t.Fatalf("CheckQuery: %v, want ok %v", err, tt.ok)
			}
			if qe, isQE := err.(*QueryError); err != nil && (!isQE || qe.Param != "window") {
				t.Fatalf("error %#v, want a QueryError on window", err)
			}
		})
	}
}

// TestMemoryStaysBoundedOverDays feeds one node a summary a minute for 35 days and
// checks the store's sizes level off: per node at most the detail tier, 6 h of
// windows (plus the hour being folded), 3 days of hours (plus the day being folded)
// and 30 days.
func TestMemoryStaysBoundedOverDays(t *testing.T) {
	if testing.Short() {
		t.Skip("35 simulated days")
	}
	st := newStore(t)
	start := t0.Add(-35 * 24 * time.Hour)
	var peak Stats
	for at := start; at.Before(t0); at = at.Add(time.Minute) {
		now := at.Add(time.Minute)
		st.Add(&sli.Summary{Node: "n1", Key: sli.Key{Deployment: "a", Version: "v1", Route: "/"}, Seq: sli.SeqFor(at, time.Minute),
			Start: at, End: now, Status: [5]uint64{0, 5}, Latency: func() *sli.Sketch { k := &sli.Sketch{}; k.AddN(time.Millisecond, 5); return k }()}, now)
		if now.Minute()%10 == 0 {
			st.Prune(now)
			s := st.Stats()
			peak.Slots, peak.Groups = max(peak.Slots, s.Slots), max(peak.Groups, s.Groups)
		}
	}
	// 6 h + 1 h of windows less the detail tier's, 3 d + 1 d of hours, 30 d + 1 of days.
	limit := 7*12 + 4*24 + 31
	if peak.Slots > limit || peak.Groups > limit+4 {
		t.Fatalf("peak %d tallies and %d group slots for one node, want at most %d", peak.Slots, peak.Groups, limit)
	}
	st.mu.RLock()
	seen := 0
	for _, s := range st.series {
		for _, x := range s.seen {
			seen += len(x.words)
		}
	}
	st.mu.RUnlock()
	if seen > 6*60/64+2 {
		t.Fatalf("dedupe holds %d words, want about 6 h of minutes", seen)
	}
}

// TestRunAgreesWithAMap adds random tallies to a run in any order (appends, merges
// into the last slot, the middle, before the base) and checks it against a map, and
// that takeBefore hands back exactly the slots before its bound.
func TestRunAgreesWithAMap(t *testing.T) {
	const w = int64(300)
	rng := rand.New(rand.NewPCG(8, 9))
	for round := range 100 {
		var r run
		ref := map[int64]tally{}
		for range 60 {
			start := w * int64(rng.IntN(40)-5)
			x := tally{req: uint64(rng.IntN(3) * rng.IntN(100)), over: []uint64{uint64(rng.IntN(3)), uint64(rng.IntN(2))}}
			if x.req > 0 {
				x.errs = uint64(rng.IntN(int(x.req) + 1))
				x.over = x.over[:1+rng.IntN(2)]
			} else {
				x.over = nil
			}
			r.add(start, w, &x)
			if x.req > 0 {
				m := ref[start]
				m.merge(&x)
				ref[start] = m
			}
		}
		got := map[int64]tally{}
		r.each(w, func(start int64, x *tally) bool {
			got[start] = tally{req: x.req, errs: x.errs, over: slices.Clone(x.over)}
			return true
		})
		if !reflect.DeepEqual(got, ref) {
			t.Fatalf("round %d: run %v, want %v", round, got, ref)
		}
		bound := w * int64(rng.IntN(40)-5)
		taken := map[int64]tally{}
		r.takeBefore(w, bound, func(start int64, x *tally) {
			taken[start] = tally{req: x.req, errs: x.errs, over: slices.Clone(x.over)}
		})
		for start, x := range ref {
			if _, ok := taken[start]; ok != (start < bound) {
				t.Fatalf("round %d: slot %d taken %v with bound %d", round, start, ok, bound)
			}
			if start < bound {
				if !reflect.DeepEqual(taken[start], x) {
					t.Fatalf("round %d: took %v, want %v", round, taken[start], x)
				}
				delete(ref, start)
			}
		}
		got = map[int64]tally{}
		r.each(w, func(start int64, x *tally) bool {
			got[start] = tally{req: x.req, errs: x.errs, over: slices.Clone(x.over)}
			return true
		})
		if !reflect.DeepEqual(got, ref) {
			t.Fatalf("round %d: after takeBefore(%d) %v, want %v", round, bound, got, ref)
		}
	}
}

// TestMergedIsAVersionOverASpan: Merged is every node's and route's summaries of one
// version over a span, as the rollout controller's metric source reads them.
func TestMergedIsAVersionOverASpan(t *testing.T) {
	st := newStore(t)
	now := t0.Add(20 * time.Minute)
	want := &sli.Summary{Key: sli.Key{Deployment: "a", Version: "v2"}, Latency: &sli.Sketch{}}
	for i := range 120 {
		at := t0.Add(time.Duration(i) * iv)
		for _, n := range []string{"n1", "n2", "n3"} {
			for _, v := range []string{"v1", "v2"} {
				s := summary(n, "a", v, "/r"+n, at, uint64(i%7), uint64(i%3), time.Duration(1+i%5)*time.Millisecond)
				st.Add(s, at.Add(iv))
				if v == "v2" && at.Add(iv).After(now.Add(-time.Hour)) {
					mergeInto(want, s)
				}
			}
		}
		st.Prune(at.Add(iv))
	}
	got, ok := st.Merged("a", "v2", now.Add(-time.Hour), now)
	if !ok || got.Requests() != want.Requests() || got.Errors() != want.Errors() || !got.Latency.Equal(want.Latency) {
		t.Fatalf("merged %d requests, %d 5xx (ok %v), want %d, %d and the same sketch", got.Requests(), got.Errors(), ok, want.Requests(), want.Errors())
	}
	if _, ok := st.Merged("a", "v3", now.Add(-time.Hour), now); ok {
		t.Fatal("a version never seen has a summary")
	}
}
