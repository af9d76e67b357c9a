package gateway

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
)

// TestDateCache: the cached Date is the second of the time given, formatted once per
// second: the same value (the same slice) within a second, a new one when the second
// moves on, the newer one for a time a little behind it (requests whose calls ended
// around the change come in any order), and a new one again when the wall clock was
// set back.
func TestDateCache(t *testing.T) {
	var c dateCache
	base := time.Date(2026, 12, 7, 2, 30, 15, 0, time.UTC)
	same := func(a, b []string) bool { return &a[0] == &b[0] }
	steps := []struct {
		name  string
		at    time.Time
		want  time.Time // the second the value shows
		reuse int       // the step whose value must be reused (-1: a new one)
	}{
		{name: "first", at: base.Add(100 * time.Millisecond), want: base, reuse: -1},
		{name: "same second", at: base.Add(999 * time.Millisecond), want: base, reuse: 0},
		{name: "same second, another zone", at: base.Add(500 * time.Millisecond).In(time.FixedZone("X", 3600)), want: base, reuse: 0},
		{name: "next second", at: base.Add(time.Second), want: base.Add(time.Second), reuse: -1},
		{name: "a straggler from the second before", at: base.Add(900 * time.Millisecond), want: base.Add(time.Second), reuse: 3},
		{name: "two seconds later", at: base.Add(3*time.Second + time.Millisecond), want: base.Add(3 * time.Second), reuse: -1},
		{name: "clock set back an hour", at: base.Add(-time.Hour), want: base.Add(-time.Hour), reuse: -1},
		{name: "on from there", at: base.Add(-time.Hour + 200*time.Millisecond), want: base.Add(-time.Hour), reuse: 6},
	}
	got := make([][]string, len(steps))
	for i, s := range steps {
		got[i] = c.at(s.at)
		if len(got[i]) != 1 {
			t.Fatalf("%s: Date value %q, want one field", s.name, got[i])
		}
		if want := s.want.Format(http.TimeFormat); got[i][0] != want {
			t.Fatalf("%s: Date %q, want %q", s.name, got[i][0], want)
		}
		if _, err := time.Parse(http.TimeFormat, got[i][0]); err != nil {
			t.Fatalf("%s: Date %q does not parse as http.TimeFormat: %v", s.name, got[i][0], err)
		}
		if s.reuse >= 0 && !same(got[i], got[s.reuse]) {
			t.Fatalf("%s: formatted again, want the value of %q reused", s.name, steps[s.reuse].name)
		}
		if s.reuse < 0 && i > 0 && same(got[i], got[i-1]) {
			t.Fatalf("%s: the previous value reused for a new second", s.name)
		}
	}
	// Within a second the value costs nothing.
	at := base.Add(-time.Hour + 300*time.Millisecond)
	if n := testing.AllocsPerRun(100, func() { c.at(at) }); n != 0 {
		t.Fatalf("a Date within the cached second allocates %.1f times", n)
	}
}

// dateTarget answers with the headers it is given and the call's end at a fixed time.
type dateTarget struct {
	fixedTarget
	header sandbox.Header
	end    time.Time
}

func (t *dateTarget) Invoke(_ context.Context, req *sandbox.Request) (*sandbox.Response, error) {
	*req.Reply = sandbox.Response{Status: 200, Header: t.header, Body: fixedBody, End: t.end}
	return req.Reply, nil
}

// TestServeDate: a response's Date is the cached value of the guest call's end, unless
// the guest set one (kept, once) or the call's end is unknown (a command module's:
// net/http then dates the response itself).
func TestServeDate(t *testing.T) {
	end := time.Date(2026, 12, 7, 2, 30, 15, 0, time.UTC)
	tests := []struct {
		name   string
		header sandbox.Header
		end    time.Time
		want   []string // nil: no Date in the handler's header map
		cached bool     // the gateway's cached value itself
	}{
		{name: "the call's end", end: end, want: []string{"Mon, 07 Dec 2026 02:30:15 GMT"}, cached: true},
		{name: "the guest's", end: end, header: sandbox.Header{{Name: "date", Value: "x"}}, want: []string{"x"}},
		{name: "the guest's first", end: end, header: sandbox.Header{{Name: "Date", Value: "x"}, {Name: "DATE", Value: "y"}}, want: []string{"x"}},
		{name: "no call end", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := New(Config{})
			spec := sandbox.Spec{Name: "d", Version: "1", Limits: manifest.Limits{MaxRequestBody: 1 << 20}}
			if err := g.SetRoutes([]Route{{Prefix: "/", Target: &dateTarget{fixedTarget{spec}, tt.header, tt.end}}}); err != nil {
				t.Fatal(err)
			}
			w := httptest.NewRecorder()
			g.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
			got := w.Header()["Date"]
			if w.Code != 200 || !slices.Equal(got, tt.want) {
				t.Fatalf("status %d, Date %q; want 200, %q", w.Code, got, tt.want)
			}
			if tt.cached && &got[0] != &g.date.p.Load().v[0] {
				t.Fatal("the response's Date is not the cached value")
			}
		})
	}
}

// BenchmarkResponseDate is what a response's Date costs the server, the gateway's
// header fields around it: "net/http" leaves the map without one, so the server reads
// the clock and formats it; "cached" sets the cached value of a time the request path
// already read, which the server then copies (at WriteHeader), sorts and writes with
// the other fields. fermiontest.ServerWriter does per response what net/http does.
func BenchmarkResponseDate(b *testing.B) {
	var c dateCache
	end := time.Now()
	for _, tc := range []struct {
		name   string
		cached bool
	}{{"net/http", false}, {"cached", true}} {
		b.Run(tc.name, func(b *testing.B) {
			w := new(fermiontest.ServerWriter)
			vals := []string{"0123456789abcdef0123456789abcdef", "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01", "text/plain; charset=utf-8", "20"}
			b.ReportAllocs()
			start := cpuTime()
			for b.Loop() {
				h := w.Header()
				h["X-Request-Id"] = vals[0:1:1]
				h["Traceparent"] = vals[1:2:2]
				h["Content-Type"] = vals[2:3:3]
				h["Content-Length"] = vals[3:4:4]
				if tc.cached {
					h["Date"] = c.at(end)
				}
				w.WriteHeader(200)
				w.Finish()
			}
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		})
	}
}

// TestDateCacheConcurrent: requests whose calls end around changes of second, on many
// goroutines at once, each get a valid Date of their own second or at most dateSlack
// seconds after it, never one before it.
func TestDateCacheConcurrent(t *testing.T) {
	var c dateCache
	base := time.Date(2026, 12, 7, 2, 30, 0, 0, time.UTC)
	const workers, each = 4, 2000
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				// Each worker's clock runs on at its own pace, so the seconds interleave.
				at := base.Add(time.Duration(i*(w+1)) * time.Millisecond)
				v := c.at(at)
				got, err := time.Parse(http.TimeFormat, v[0])
				if err != nil {
					errs <- fmt.Errorf("Date %q: %v", v[0], err)
					return
				}
				if d := got.Sub(at.Truncate(time.Second)); d < 0 || d > dateSlack*time.Second {
					errs <- fmt.Errorf("a call ending at %s got Date %q", at.Format(time.RFC3339Nano), v[0])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
