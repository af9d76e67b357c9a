package fleet

import (
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/internal/sli"
)

// slowSum is a summary of app@version on node with one exemplar per duration (ms),
// each started at start.
func slowSum(node, app, version string, start time.Time, ms ...int) *sli.Summary {
	s := &sli.Summary{Node: node, Key: sli.Key{Deployment: app, Version: version, Route: "/" + app}, Start: start, End: start.Add(10 * time.Second)}
	for i, d := range ms {
		var id [16]byte
		id[0], id[1], id[2] = byte(d), byte(d>>8), byte(i+1)
		s.Slowest = append(s.Slowest, sli.Exemplar{Duration: time.Duration(d) * time.Millisecond, Start: start.UnixMilli(), TraceID: id,
			Status: 200, Method: "GET", Path: "/" + app})
	}
	return s
}

func TestSlowest(t *testing.T) {
	now := t0.Add(time.Hour)
	r := NewSlowest(func(node string) (string, string) { return map[string]string{"n1": "eu", "n2": "us"}[node], "" })
	r.Add(slowSum("n1", "a", "v1", now.Add(-2*time.Minute), 900, 50, 40, 30, 20, 10), now) // 10 ms: not among a's 5 slowest
	r.Add(slowSum("n2", "a", "v1", now.Add(-time.Minute), 100), now)                       // another minute's bucket
	r.Add(slowSum("n2", "b", "v1", now.Add(-30*time.Second), 500), now)
	r.Add(slowSum("n1", "a", "v2", now.Add(-10*time.Minute), 700), now)
	r.Add(slowSum("n1", "a", "v1", now.Add(-20*time.Minute), 5000), now) // older than the window: dropped
	r.Add(slowSum("n1", "a", "v1", now.Add(5*time.Minute), 5000), now)   // from the future: dropped

	durs := func(q SlowestQuery) string {
		var out []string
		for _, e := range r.Query(q, now).Requests {
			out = append(out, fmt.Sprintf("%s/%s@%s:%g", e.Node, e.App, e.Version, e.DurationMs))
		}
		return strings.Join(out, " ")
	}
	tests := []struct {
		name string
		q    SlowestQuery
		want string
	}{
		{"all, slowest first", SlowestQuery{}, "n1/a@v1:900 n1/a@v2:700 n2/b@v1:500 n2/a@v1:100 n1/a@v1:50 n1/a@v1:40 n1/a@v1:30 n1/a@v1:20"},
		{"limit", SlowestQuery{Limit: 2}, "n1/a@v1:900 n1/a@v2:700"},
		{"app and version", SlowestQuery{App: "a", Version: "v2"}, "n1/a@v2:700"},
		{"node", SlowestQuery{Node: "n2"}, "n2/b@v1:500 n2/a@v1:100"},
		{"region", SlowestQuery{Region: "us", Limit: 1}, "n2/b@v1:500"},
		{"window", SlowestQuery{Window: 5 * time.Minute, Limit: 3}, "n1/a@v1:900 n2/b@v1:500 n2/a@v1:100"},
		{"nothing", SlowestQuery{App: "zzz"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := durs(tc.q); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	if st := r.Stats(); st.Dropped != 2 || st.Requests != 8 {
		t.Errorf("stats %+v, want 2 dropped and 8 kept", st)
	}
	// Pruned once the window has passed them: the minute-old requests stay a while.
	r.Prune(now.Add(10 * time.Minute))
	if st := r.Stats(); st.Buckets != 2 {
		t.Errorf("10 minutes on: %d buckets, want the last 2 minutes' 2", st.Buckets)
	}
	later := now.Add(17 * time.Minute)
	r.Prune(later)
	if st, got := r.Stats(), r.Query(SlowestQuery{}, later); st.Buckets != 0 || len(got.Requests) != 0 {
		t.Errorf("after the window passed: %d buckets, %d requests", st.Buckets, len(got.Requests))
	}
}

// TestSlowestBounded: a flood of versions fills a bucket to its cap and no further.
func TestSlowestBounded(t *testing.T) {
	r := NewSlowest(nil)
	for i := range SlowestMaxVersions + 10 {
		for range 3 {
			r.Add(slowSum("n", "app", fmt.Sprintf("v%d", i), t0, 10, 9, 8, 7, 6, 5, 4, 3), t0)
		}
	}
	st := r.Stats()
	if st.Versions != SlowestMaxVersions || st.Requests != SlowestMaxVersions*SlowestPerVersion || st.Dropped != 10*3*8 {
		t.Fatalf("stats %+v, want %d versions of %d requests, %d dropped", st, SlowestMaxVersions, SlowestPerVersion, 10*3*8)
	}
}

func TestParseSlowestQuery(t *testing.T) {
	tests := []struct {
		in, param, msg string
		want           SlowestQuery
	}{
		{in: "", want: SlowestQuery{Window: 15 * time.Minute, Limit: 20}},
		{in: "app=a&version=v&node=n&region=r&zone=z&window=5m&limit=3", want: SlowestQuery{App: "a", Version: "v", Node: "n", Region: "r", Zone: "z", Window: 5 * time.Minute, Limit: 3}},
		{in: "ap=a", param: "ap", msg: "did you mean app?"},
		{in: "window=1h", param: "window", msg: "longer than the 15m"},
		{in: "window=soon", param: "window"},
		{in: "limit=0", param: "limit", msg: "from 1 to 100"},
		{in: "limit=101", param: "limit", msg: "from 1 to 100"},
		{in: "app=", param: "app", msg: "1–253 bytes"},
		{in: "app=a&app=b", param: "app", msg: "give it once"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			v, _ := url.ParseQuery(tc.in)
			q, err := ParseSlowestQuery(v)
			if tc.param == "" {
				if err != nil || q != tc.want {
					t.Fatalf("got %+v, %v; want %+v", q, err, tc.want)
				}
				return
			}
			qe, ok := err.(*QueryError)
			if !ok || qe.Param != tc.param || !strings.Contains(qe.Message, tc.msg) {
				t.Fatalf("err = %v, want a QueryError on %s mentioning %q", err, tc.param, tc.msg)
			}
		})
	}
}

// BenchmarkSlowestFull fills the ring to its bounds (16 minutes × SlowestMaxVersions
// versions × SlowestPerVersion requests, from decoded summaries as the ingest gives
// them) and reports the heap it holds (docs/sli.md, "Slowest requests").
func BenchmarkSlowestFull(b *testing.B) {
	now := t0.Add(time.Hour)
	var sums []*sli.Summary
	for m := range 16 {
		for v := range SlowestMaxVersions {
			at := now.Add(-time.Duration(m) * time.Minute)
			s := slowSum(fmt.Sprintf("edge-%04d", v), fmt.Sprintf("app-%03d", v%200), fmt.Sprintf("1.%d.0", v), at, 50, 40, 30, 20, 10)
			for i := range s.Slowest {
				s.Slowest[i].Path = fmt.Sprintf("/app-%03d/items/%d", v%200, i) // its own string, as decoded
			}
			sums = append(sums, s)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		r := NewSlowest(nil)
		for _, s := range sums {
			r.Add(s, now)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		st := r.Stats()
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(st.Requests), "B/request")
		b.ReportMetric(float64(st.Requests), "requests")
		runtime.KeepAlive(r)
	}
}
