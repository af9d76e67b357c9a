package fleet

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/slo"
)

// t0 is a 5-minute boundary, so tests can reason about windows.
var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

const iv = 10 * time.Second

// nodes is a fleet of three regions' nodes.
var nodeLabels = map[string]map[string]string{
	"n1": {"region": "eu", "zone": "eu-a", "tier": "edge"},
	"n2": {"region": "eu", "zone": "eu-b", "tier": "edge"},
	"n3": {"region": "us", "zone": "us-a"},
	"n4": {}, // no region label
}

func nodeInfo(node string) (string, string, map[string]string, bool) {
	l, ok := nodeLabels[node]
	return l["region"], l["zone"], l, ok
}

func newStore(t *testing.T) *Store {
	t.Helper()
	st, err := New(Config{Nodes: nodeInfo})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// summary builds one interval of node for app/version starting at start, with ok 2xx
// answered at lat and bad 5xx at 2×lat.
func summary(node, app, version, route string, start time.Time, ok, bad uint64, lat time.Duration) *sli.Summary {
	s := &sli.Summary{Node: node, Key: sli.Key{Deployment: app, Version: version, Route: route},
		Seq: sli.SeqFor(start, iv), Start: start, End: start.Add(iv), Latency: &sli.Sketch{}}
	s.Status[1], s.Status[4] = ok, bad
	s.Latency.AddN(lat, ok)
	s.Latency.AddN(2*lat, bad)
	return s
}

func TestAddDedupesResentSummaries(t *testing.T) {
	st := newStore(t)
	now := t0.Add(time.Minute)
	a := summary("n1", "hello", "v1", "/", t0, 10, 1, time.Millisecond)
	b := summary("n1", "hello", "v1", "/api", t0, 5, 0, time.Millisecond) // same seq, other route
	for i, tt := range []struct {
		s    *sli.Summary
		want Outcome
	}{{a, Accepted}, {a, Duplicate}, {b, Accepted}, {b, Duplicate}, {a, Duplicate}} {
		if got := st.Add(tt.s, now); got != tt.want {
			t.Fatalf("add %d: %v, want %v", i, got, tt.want)
		}
	}
	got := st.Query(Query{By: []string{"app"}, Window: 5 * time.Minute}, now, nil)
	if len(got.Groups) != 1 || got.Groups[0].Requests != 16 || got.Groups[0].Errors != 1 {
		t.Fatalf("groups %+v, want one with 16 requests and 1 error", got.Groups)
	}
	s := st.Stats()
	if s.Raw["accepted"] != 2 || s.Raw["duplicate"] != 3 {
		t.Fatalf("stats %v", s.Raw)
	}
}

func TestAddRefusesSkewAndAge(t *testing.T) {
	st := newStore(t)
	now := t0.Add(time.Hour)
	for _, tt := range []struct {
		name  string
		start time.Time
		want  Outcome
	}{
		{"agent clock 1 min ahead", now.Add(time.Minute - iv), Accepted},
		{"agent clock 5 min ahead", now.Add(5 * time.Minute), FromFuture},
		{"backfill of 5 h ago", now.Add(-5 * time.Hour), Accepted},
		{"older than the raw stream", now.Add(-7 * time.Hour), TooOld},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := st.Add(summary("n1", "a", "v1", "/", tt.start, 1, 0, time.Millisecond), now); got != tt.want {
				t.Fatalf("%v, want %v", got, tt.want)
			}
		})
	}
}

// TestQueryQuantilesOfMergedSketches: the fleet's p50/p95/p99 are the quantiles of one
// sketch of every request (to the sketch's 1 %), not an average of nodes' quantiles.
func TestQueryQuantilesOfMergedSketches(t *testing.T) {
	st := newStore(t)
	rng := rand.New(rand.NewPCG(1, 2))
	all := &sli.Sketch{}
	var exact []time.Duration
	now := t0.Add(5 * time.Minute)
	for n, node := range []string{"n1", "n2", "n3"} {
		for i := range 30 {
			start := t0.Add(time.Duration(i) * iv)
			s := &sli.Summary{Node: node, Key: sli.Key{Deployment: "a", Version: "v1", Route: "/"}, Seq: uint64(i),
				Start: start, End: start.Add(iv), Latency: &sli.Sketch{}}
			for range 50 {
				// Each node has its own latency: an average of node p99s would be wrong.
				d := time.Duration(float64(time.Millisecond) * (1 + float64(n)*10) * (0.5 + rng.ExpFloat64()))
				s.Latency.Add(d)
				all.Add(d)
				exact = append(exact, d)
				s.Status[1]++
			}
			if o := st.Add(s, now); o != Accepted {
				t.Fatal(o)
			}
		}
	}
	got := st.Query(Query{By: []string{"app", "version"}, Window: 5 * time.Minute}, now, nil)
	if len(got.Groups) != 1 {
		t.Fatalf("groups %+v", got.Groups)
	}
	g := got.Groups[0]
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	for _, q := range []struct {
		q   float64
		got float64
	}{{0.5, g.P50Ms}, {0.95, g.P95Ms}, {0.99, g.P99Ms}} {
		if want := ms(all.Quantile(q.q)); q.got != want {
			t.Errorf("p%v = %v ms, want the merged sketch's %v ms", q.q*100, q.got, want)
		}
	}
	if g.Requests != uint64(len(exact)) || g.RequestsPerSecond != float64(len(exact))/300 {
		t.Errorf("requests %d (%v/s), want %d", g.Requests, g.RequestsPerSecond, len(exact))
	}
}

func TestQueryGroupsAndFilters(t *testing.T) {
	st := newStore(t)
	now := t0.Add(2 * time.Minute)
	for _, s := range []*sli.Summary{
		summary("n1", "a", "v1", "/", t0, 10, 0, time.Millisecond),
		summary("n2", "a", "v1", "/", t0, 20, 2, time.Millisecond),
		summary("n3", "a", "v2", "/", t0, 30, 3, time.Millisecond),
		summary("n4", "b", "v1", "/", t0, 40, 0, time.Millisecond),
	} {
		s.ColdStarts = 1
		s.Discards = map[string]uint64{"trap": 1}
		s.CPUTime = time.Second
		s.MemoryMaxBytes = 1 << 20
		st.Add(s, now)
	}
	inst := []InstanceCount{{"a", "v1", "n1", 2}, {"a", "v1", "n2", 3}, {"a", "v3", "n1", 1}}
	type row struct {
		key  string
		reqs uint64
		inst int
	}
	for _, tt := range []struct {
		name string
		q    string
		want []row
	}{
		{"default by app,version", "", []row{{"a/v1", 32, 5}, {"a/v2", 33, 0}, {"a/v3", 0, 1}, {"b/v1", 40, 0}}},
		{"by region", "by=region", []row{{"", 40, 0}, {"eu", 32, 6}, {"us", 33, 0}}},
		{"by zone in eu", "by=zone&region=eu", []row{{"eu-a", 10, 3}, {"eu-b", 22, 3}}},
		{"one app by node", "app=a&by=node", []row{{"n1", 10, 3}, {"n2", 22, 3}, {"n3", 33, 0}}},
		{"everything in one row", "by=", []row{{"", 105, 6}}},
		{"a node filter", "node=n3&by=app,version,node", []row{{"a/v2/n3", 33, 0}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, _ := url.ParseQuery(tt.q)
			q, err := ParseQuery(v, DefaultRollupRetention)
			if err != nil {
				t.Fatal(err)
			}
			got := st.Query(q, now, inst)
			var rows []row
			for _, g := range got.Groups {
				var parts []string
				for _, p := range []string{g.App, g.Version, g.Node, g.Region, g.Zone} {
					if p != "" {
						parts = append(parts, p)
					}
				}
				rows = append(rows, row{strings.Join(parts, "/"), g.Requests, g.Instances})
			}
			if len(rows) != len(tt.want) {
				t.Fatalf("rows %v, want %v", rows, tt.want)
			}
			for i := range rows {
				if rows[i] != tt.want[i] {
					t.Fatalf("rows %v, want %v", rows, tt.want)
				}
			}
		})
	}
	// The figures of one row.
	got := st.Query(Query{App: "a", Version: "v1", By: []string{"app"}, Window: 5 * time.Minute}, now, nil).Groups[0]
	if got.ErrorRatio != 2.0/32 || got.ColdStartRatio != 2.0/32 || got.CPUCores != 2.0/300 || got.MemoryMaxBytes != 1<<20 || got.Discards["trap"] != 2 {
		t.Fatalf("row %+v", got)
	}
}

// TestWindowEdges: a window counts the intervals that end in (now−window, now].
func TestWindowEdges(t *testing.T) {
	st := newStore(t)
	now := t0.Add(10 * time.Minute)
	// One request per interval from t0 to now: 60 intervals.
	for i := range 60 {
		st.Add(summary("n1", "a", "v1", "/", t0.Add(time.Duration(i)*iv), 1, 0, time.Millisecond), now)
	}
	for _, tt := range []struct {
		window time.Duration
		want   uint64
	}{
		{iv, 1}, {iv + 1, 2}, {time.Minute, 6}, {5 * time.Minute, 30}, {7*time.Minute + 5*time.Second, 43}, {10 * time.Minute, 60}, {time.Hour, 60},
	} {
		got := st.Query(Query{By: []string{}, Window: tt.window}, now, nil)
		var n uint64
		if len(got.Groups) > 0 {
			n = got.Groups[0].Requests
		}
		if n != tt.want {
			t.Errorf("window %v: %d requests, want %d", tt.window, n, tt.want)
		}
	}
}

// TestTiers: details age into windows, windows into rollups; the answers stay the same
// where the tiers can answer, and a rollup replaces, never adds.
func TestTiers(t *testing.T) {
	st := newStore(t)
	// One request per interval over 8 hours, ingested as it happens, pruned as the
	// ingest loop does; the leader publishes rollups every 5 minutes.
	end := t0.Add(8 * time.Hour)
	var published int
	for at := t0; at.Before(end); at = at.Add(iv) {
		now := at.Add(iv)
		st.Add(summary("n1", "a", "v1", "/", at, 1, 0, time.Millisecond), now)
		if now.Sub(t0)%(5*time.Minute) == 0 {
			st.Prune(now)
			for _, r := range st.PendingRollups(now, time.Minute) {
				if err := st.AddRollup(&r, now); err != nil {
					t.Fatal(err)
				}
				published++
			}
		}
	}
	now := end
	st.Prune(now)
	// 8 h of 5-minute windows, minus the last one, closed but in its grace.
	if published != 96-1 {
		t.Fatalf("published %d rollups, want %d", published, 95)
	}
	s := st.Stats()
	// The detail tier holds 15 minutes (three windows, 89 intervals); past it the node
	// keeps tallies: the 69 other windows of the last 6 h, and 2 hours.
	if s.Details > 91 || s.Windows != 3 || s.Slots != 69+2 {
		t.Fatalf("stats %+v: want at most 90 details (15 min) in 3 windows, and 71 tallies", s)
	}
	spec := &slo.Spec{App: "a", SLI: slo.SLI{Kind: slo.Availability}, Scope: slo.Scope{Per: slo.ScopeGlobal}}
	for _, w := range []time.Duration{5 * time.Minute, time.Hour, 7 * time.Hour, 8 * time.Hour} {
		ser := st.Series(spec, now.Add(-w), now)
		if len(ser) != 1 {
			t.Fatalf("series %v", ser)
		}
		c := st.Counts(ser[0], spec.SLI, now.Add(-w), now)
		if want := int64(w / iv); c.Total != want || c.Good != want {
			t.Errorf("window %v: counts %+v, want %d", w, c, want)
		}
	}
	// Re-publishing a rollup replaces it.
	old := st.Query(Query{By: []string{}, Window: 8 * time.Hour}, now, nil).Groups[0].Requests
	r := summary("n1", "a", "v1", "", t0, 30, 0, time.Millisecond)
	r.End = t0.Add(5 * time.Minute)
	if err := st.AddRollup(r, now); err != nil {
		t.Fatal(err)
	}
	if got := st.Query(Query{By: []string{}, Window: 8 * time.Hour}, now, nil).Groups[0].Requests; got != old {
		t.Fatalf("after a re-published rollup %d requests, want %d", got, old)
	}
	bad := summary("n1", "a", "v1", "", t0, 1, 0, time.Millisecond) // 10 s: not a window
	if err := st.AddRollup(bad, now); err == nil {
		t.Fatal("a 10 s rollup was accepted")
	}
}

func TestSourceScopes(t *testing.T) {
	st := newStore(t)
	now := t0.Add(5 * time.Minute)
	for _, s := range []*sli.Summary{
		summary("n1", "a", "v1", "/", t0, 90, 10, time.Millisecond),
		summary("n2", "a", "v1", "/", t0, 100, 0, 300*time.Millisecond),
		summary("n3", "a", "v1", "/", t0, 50, 50, time.Millisecond),
		summary("n4", "a", "v1", "/", t0, 10, 0, time.Millisecond),
		summary("n1", "b", "v1", "/", t0, 10, 0, time.Millisecond),
	} {
		st.Add(s, now)
	}
	from := now.Add(-time.Hour)
	avail := slo.SLI{Kind: slo.Availability}
	lat := slo.SLI{Kind: slo.Latency, Threshold: 250 * time.Millisecond}
	for _, tt := range []struct {
		name  string
		scope slo.Scope
		sli   slo.SLI
		want  map[string]slo.Counts
	}{
		{"global", slo.Scope{Per: slo.ScopeGlobal}, avail, map[string]slo.Counts{"global": {Good: 250, Total: 310}}},
		{"per region", slo.Scope{Per: slo.ScopeRegion}, avail, map[string]slo.Counts{"eu": {Good: 190, Total: 200}, "us": {Good: 50, Total: 100}, NoRegion: {Good: 10, Total: 10}}},
		{"per node of a population", slo.Scope{Per: slo.ScopeNode, Nodes: map[string]string{"tier": "edge"}}, avail, map[string]slo.Counts{"n1": {Good: 90, Total: 100}, "n2": {Good: 100, Total: 100}}},
		{"global latency", slo.Scope{Per: slo.ScopeGlobal}, lat, map[string]slo.Counts{"global": {Good: 210, Total: 310}}},
		{"population matching nothing", slo.Scope{Per: slo.ScopeGlobal, Nodes: map[string]string{"tier": "core"}}, avail, map[string]slo.Counts{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			spec := &slo.Spec{App: "a", SLI: tt.sli, Scope: tt.scope}
			ser := st.Series(spec, from, now)
			got := map[string]slo.Counts{}
			for _, s := range ser {
				if s.App != "a" || s.Version != "v1" {
					t.Fatalf("series %+v", s)
				}
				got[s.Scope] = st.Counts(s, tt.sli, from, now)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("counts %v, want %v", got, tt.want)
			}
			for k, w := range tt.want {
				if got[k] != w {
					t.Fatalf("counts %v, want %v", got, tt.want)
				}
			}
		})
	}
	// The engine's own arithmetic runs over the store.
	spec := slo.Spec{Name: "a-avail", App: "a", SLI: avail, Objective: slo.Ratio{Num: 99, Den: 100}, Window: time.Hour, Scope: slo.Scope{Per: slo.ScopeRegion}}
	reps := slo.Budgets([]slo.Spec{spec}, st, now)
	if len(reps) != 3 || reps[2].Series.Scope != "us" || reps[2].Burn != 50 {
		t.Fatalf("budgets %+v", reps)
	}
}

// TestRegionFromLabels: a node's region and zone are read from its labels at query
// time, so relabelling a node moves its data.
func TestRegionFromLabels(t *testing.T) {
	labels := map[string]string{"region": "eu"}
	st, err := New(Config{Nodes: func(string) (string, string, map[string]string, bool) {
		return labels["region"], labels["zone"], labels, true
	}})
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Minute)
	st.Add(summary("n1", "a", "v1", "/", t0, 1, 0, time.Millisecond), now)
	q := Query{By: []string{"region"}, Window: 5 * time.Minute}
	if g := st.Query(q, now, nil).Groups; len(g) != 1 || g[0].Region != "eu" {
		t.Fatalf("groups %+v", g)
	}
	labels = map[string]string{"region": "us", "zone": "us-b"}
	q.By = []string{"region", "zone"}
	if g := st.Query(q, now, nil).Groups; len(g) != 1 || g[0].Region != "us" || g[0].Zone != "us-b" {
		t.Fatalf("groups %+v", g)
	}
}

func TestParseQueryErrors(t *testing.T) {
	for _, tt := range []struct {
		q, param, msg string
	}{
		{"by=app,regoin", "by", "did you mean region?"},
		{"by=app,app", "by", "listed twice"},
		{"by=app,,node", "by", "not a dimension"},
		{"by=flavour", "by", "use a comma-separated list"},
		{"windw=5m", "windw", "did you mean window?"},
		{"colour=red", "colour", "unknown parameter; use app"},
		{"window=5", "window", "not a duration"},
		{"window=0s", "window", "out of range"},
		{"window=500ms", "window", "shorter than a second"},
		{"window=90d", "window", "longer than the 30d"},
		{"app=a&app=b", "app", "given 2 times"},
		{"node=", "node", "1–253 bytes"},
		{"zone=" + strings.Repeat("z", 300), "zone", "1–253 bytes"},
	} {
		t.Run(tt.q[:min(len(tt.q), 20)], func(t *testing.T) {
			v, err := url.ParseQuery(tt.q)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseQuery(v, DefaultRollupRetention)
			qe, ok := err.(*QueryError)
			if !ok || qe.Param != tt.param || !strings.Contains(qe.Message, tt.msg) {
				t.Fatalf("error %v, want %s: …%s…", err, tt.param, tt.msg)
			}
		})
	}
	q, err := ParseQuery(url.Values{"by": {"zone, app"}, "window": {"1h"}, "region": {"eu"}}, DefaultRollupRetention)
	if err != nil || strings.Join(q.By, ",") != "app,zone" || q.Window != time.Hour || q.Region != "eu" {
		t.Fatalf("%+v %v", q, err)
	}
	if q2, err := ParseQuery(q.Values(), DefaultRollupRetention); err != nil || strings.Join(q2.By, ",") != "app,zone" || q2.Region != "eu" || q2.Window != time.Hour {
		t.Fatalf("round trip: %+v %v", q2, err)
	}
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"", "by=app,version&window=5m", "by=regoin", "window=30d&app=x", "by=&node=n1", "a=1&a=2"} {
		f.Add(s)
	}
	// A store with a day of data, so that any query the API lets through is answered
	// from every tier.
	st, err := New(Config{Nodes: nodeInfo})
	if err != nil {
		f.Fatal(err)
	}
	now := t0.Add(24 * time.Hour)
	for at := t0; at.Before(now); at = at.Add(time.Minute) {
		for _, n := range []string{"n1", "n3", "n4"} {
			s := summary(n, "a", "v1", "/", at, 3, 1, time.Millisecond)
			s.End = at.Add(time.Minute)
			s.Seq = sli.SeqFor(at, time.Minute)
			st.Add(s, at.Add(time.Minute))
		}
		if at.Minute()%10 == 0 {
			st.Prune(at.Add(time.Minute))
		}
	}
	st.Prune(now)
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseQuery(v, DefaultRollupRetention)
		if err == nil {
			if err := st.CheckQuery(q); err == nil {
				perNode := q.Node != "" || slices.Contains(q.By, "node")
				for _, g := range st.Query(q, now, nil).Groups {
					if g.Requests > uint64(q.Window/time.Minute+1)*12 || (g.Node != "") != slices.Contains(q.By, "node") || (perNode && q.Window > DefaultDetailRetention) {
						t.Fatalf("query %+v: row %+v", q, g)
					}
				}
			} else if _, ok := err.(*QueryError); !ok {
				t.Fatalf("CheckQuery error %T %v is not a QueryError", err, err)
			}
		}
		if err != nil {
			if _, ok := err.(*QueryError); !ok {
				t.Fatalf("error %T %v is not a QueryError", err, err)
			}
			return
		}
		if q.Window <= 0 || q.Window > DefaultRollupRetention {
			t.Fatalf("window %v", q.Window)
		}
		for _, d := range q.By {
			if !strings.Contains(strings.Join(v1.SLIDimensions, ","), d) {
				t.Fatalf("by %v", q.By)
			}
		}
		q2, err := ParseQuery(q.Values(), DefaultRollupRetention)
		if err != nil || strings.Join(q2.By, ",") != strings.Join(q.By, ",") || q2.Window != q.Window || q2.App != q.App || q2.Zone != q.Zone {
			t.Fatalf("round trip of %+v: %+v %v", q, q2, err)
		}
	})
}

// TestConcurrentUse hammers the store from writers, readers and the pruner at once
// (run with -race).
func TestConcurrentUse(t *testing.T) {
	st := newStore(t)
	spec := &slo.Spec{App: "a", SLI: slo.SLI{Kind: slo.Latency, Threshold: time.Millisecond}, Scope: slo.Scope{Per: slo.ScopeRegion}}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w, node := range []string{"n1", "n2", "n3"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				at := t0.Add(time.Duration(i) * iv)
				st.Add(summary(node, "a", fmt.Sprint("v", w%2), "/", at, 5, 1, time.Millisecond), at.Add(iv))
			}
		}()
	}
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			now := t0.Add(30 * time.Minute)
			st.Query(Query{By: []string{"app", "version", "region"}, Window: time.Hour}, now, nil)
			for _, s := range st.Series(spec, now.Add(-time.Hour), now) {
				st.Counts(s, spec.SLI, now.Add(-time.Hour), now)
			}
			st.Prune(now)
			st.PendingRollups(now, time.Minute)
		}
	}()
	wg.Wait()
	close(done)
	readers.Wait()
	now := t0.Add(200 * iv)
	c := st.Counts(slo.Series{App: "a", Version: "v0", Scope: "eu"}, slo.SLI{Kind: slo.Availability}, now.Add(-time.Hour), now)
	if c.Total != 200*6 || c.Good != 200*5 { // n1 alone: n3 (v0 too) is in us
		t.Fatalf("counts %+v after concurrent adds", c)
	}
}
