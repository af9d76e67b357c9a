package gateway_test

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/gateway"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/sli"
)

// summaries flushes agg and returns its summaries by key.
func summaries(agg *sli.Aggregator) map[sli.Key]sli.Summary {
	out := map[sli.Key]sli.Summary{}
	for _, s := range agg.Flush(time.Now()) {
		out[s.Key] = s
	}
	return out
}

// waitSummaries flushes agg until the summaries count requests in all, and returns
// them merged by key. The gateway records a request just after writing its response,
// so a client can read the response before the record is made.
func waitSummaries(t *testing.T, agg *sli.Aggregator, requests uint64) map[sli.Key]sli.Summary {
	t.Helper()
	got := map[sli.Key]sli.Summary{}
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		for k, s := range summaries(agg) {
			m, ok := got[k]
			if !ok {
				got[k] = s
				continue
			}
			if err := sli.Merge(&m, s); err != nil {
				t.Fatal(err)
			}
			got[k] = m
		}
		var n uint64
		for _, s := range got {
			n += s.Requests()
		}
		if n != requests {
			return fmt.Errorf("summaries count %d requests, want %d", n, requests)
		}
		return nil
	})
	return got
}

func newSLIGateway(t *testing.T, telemetryOn bool, routes ...gateway.Route) (*gateway.Gateway, *sli.Aggregator, string) {
	t.Helper()
	agg := sli.NewAggregator(sli.Config{Node: "n1", Start: time.Now()})
	g := gateway.New(gateway.Config{SLIs: agg, Telemetry: telemetryOn})
	setRoutes(t, g, routes...)
	return g, agg, serve(t, g)
}

// newSLIGatewayOn is a gateway with telemetry on recording into agg.
func newSLIGatewayOn(t *testing.T, agg *sli.Aggregator, routes ...gateway.Route) (*gateway.Gateway, *sli.Aggregator, string) {
	t.Helper()
	g := gateway.New(gateway.Config{SLIs: agg, Telemetry: true})
	setRoutes(t, g, routes...)
	return g, agg, serve(t, g)
}

// TestSLIs: every routed request is recorded under its deployment, version and route
// pattern (never the request's path), with its status class, latency, cold start and
// the limit that refused it; requests no route serves are not recorded.
func TestSLIs(t *testing.T) {
	e := sharedEngine(t)
	// A fresh hello with no warm instance: its first request waits for one.
	hello := loadGuest(t, e, "examples/hello", func(s *sandbox.Spec) { s.Scaling.MinWarm = 0 })
	echo := loadGuest(t, e, "examples/echo", func(s *sandbox.Spec) { s.Limits.MaxRequestBody = 16 })
	_, agg, url := newSLIGateway(t, true,
		gateway.Route{Prefix: "/hello", Target: hello, Deployment: "hello-prod"},
		gateway.Route{Host: "api.example.com", Prefix: "/echo", Target: echo},
	)
	helloKey := sli.Key{Deployment: "hello-prod", Version: hello.Version(), Route: "/hello"}
	echoKey := sli.Key{Deployment: "echo", Version: echo.Version(), Route: "api.example.com/echo"}

	for _, path := range []string{"/hello", "/hello", "/hello/a/b?x=1", "/nope"} {
		get(t, url+path, nil)
	}
	send := func(body string) response {
		req, err := http.NewRequest("POST", url+"/echo", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "api.example.com"
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return response{status: resp.StatusCode}
	}
	if r := send("small"); r.status != 200 {
		t.Fatalf("POST a small body = %d, want 200", r.status)
	}
	if r := send(strings.Repeat("x", 17)); r.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("POST a body over the limit = %d, want 413", r.status)
	}

	got := waitSummaries(t, agg, 5) // three for hello, two for echo; the 404 is none
	if len(got) != 2 {
		t.Fatalf("summaries for %d keys, want 2 (hello and echo; a raw path or 404 is no key): %v", len(got), keys(got))
	}
	tests := []struct {
		name       string
		key        sli.Key
		status     [5]uint64
		cold       uint64
		rejections map[string]uint64
	}{
		{name: "hello, three paths under one route", key: helloKey, status: [5]uint64{1: 3}, cold: 1},
		{name: "echo, one served and one refused by its body limit", key: echoKey, status: [5]uint64{1: 1, 3: 1},
			rejections: map[string]uint64{"request_body": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ok := got[tt.key]
			if !ok {
				t.Fatalf("no summary for %+v; have %v", tt.key, keys(got))
			}
			if s.Status != tt.status {
				t.Errorf("status classes = %v, want %v", s.Status, tt.status)
			}
			if n := s.Latency.Count(); n != s.Requests() {
				t.Errorf("latency count %d, want one per request (%d)", n, s.Requests())
			}
			if s.ColdStarts != tt.cold {
				t.Errorf("cold starts = %d, want %d", s.ColdStarts, tt.cold)
			}
			for reason, n := range tt.rejections {
				if s.LimitRejections[reason] != n {
					t.Errorf("limit rejections %v, want %s=%d", s.LimitRejections, reason, n)
				}
			}
			if len(tt.rejections) == 0 && len(s.LimitRejections) != 0 {
				t.Errorf("limit rejections %v, want none", s.LimitRejections)
			}
		})
	}
}

// TestSLIsFollowRoutes: after SetRoutes moves a route to another version, requests are
// recorded under the new version's key; with telemetry off nothing is recorded.
func TestSLIsFollowRoutes(t *testing.T) {
	hello, _ := sharedFunctions(t)
	next := loadGuest(t, sharedEngine(t), "examples/hello", func(s *sandbox.Spec) { s.Version = "2.0.0" })

	t.Run("a new version gets its own key", func(t *testing.T) {
		g, agg, url := newSLIGateway(t, true, gateway.Route{Prefix: "/hello", Target: hello})
		get(t, url+"/hello", nil)
		setRoutes(t, g, gateway.Route{Prefix: "/hello", Target: next})
		get(t, url+"/hello", nil)
		got := waitSummaries(t, agg, 2)
		for _, v := range []string{hello.Version(), "2.0.0"} {
			k := sli.Key{Deployment: "hello", Version: v, Route: "/hello"}
			if s, ok := got[k]; !ok || s.Requests() != 1 {
				t.Fatalf("version %s: summary %+v (found %v), want 1 request; have %v", v, s, ok, keys(got))
			}
		}
	})
	t.Run("telemetry off records nothing", func(t *testing.T) {
		_, agg, url := newSLIGateway(t, false, gateway.Route{Prefix: "/hello", Target: hello})
		// A second gateway with telemetry on, on the same aggregator, serves the last
		// request: once its record arrives, the first gateway's would have too.
		_, _, onURL := newSLIGatewayOn(t, agg, gateway.Route{Prefix: "/hello", Target: hello})
		for range 3 {
			if r := get(t, url+"/hello", nil); r.status != 200 {
				t.Fatalf("GET /hello = %d", r.status)
			}
		}
		get(t, onURL+"/hello", nil)
		if got := waitSummaries(t, agg, 1); len(got) != 1 {
			t.Fatalf("telemetry off recorded %v", keys(got))
		}
	})
}

func keys(m map[sli.Key]sli.Summary) []sli.Key {
	var ks []sli.Key
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// TestSLISlowest: the interval's slowest request comes first among its summary's
// exemplars, with the trace id the client got back, its path without the query (no
// secrets from query strings), its method, status and the instance that served it.
func TestSLISlowest(t *testing.T) {
	slow := loadGuest(t, sharedEngine(t), "examples/testdata/faults/slow", nil)
	_, agg, url := newSLIGateway(t, true, gateway.Route{Prefix: "/slow", Target: slow})
	for range 6 {
		if r := get(t, url+"/slow/fast", nil); r.status != 200 {
			t.Fatalf("GET /slow/fast = %d", r.status)
		}
	}
	// 300 ms: far slower than an unloaded request, with margin for a busy machine.
	r := get(t, url+"/slow/x?d=300ms&token=secret", nil)
	if r.status != 200 {
		t.Fatalf("GET slow = %d %s", r.status, r.body)
	}
	tp := r.header.Get("Traceparent")
	if len(tp) != 55 {
		t.Fatalf("traceparent %q", tp)
	}
	// The requests may straddle flushes: gather every flush's exemplars (sli.Merge
	// leaves them out: they are an interval's).
	var all []sli.Exemplar
	var s sli.Summary
	var n uint64
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		for _, f := range agg.Flush(time.Now()) {
			n += f.Requests()
			all = append(all, f.Slowest...)
			s = f
		}
		if n != 7 {
			return fmt.Errorf("summaries count %d requests, want 7", n)
		}
		return nil
	})
	slices.SortFunc(all, func(a, b sli.Exemplar) int { return cmp.Compare(b.Duration, a.Duration) })
	if len(all) < sli.DefaultExemplars {
		t.Fatalf("%d exemplars, want at least %d: %+v", len(all), sli.DefaultExemplars, all)
	}
	s.Slowest = all[:1]
	e := all[0]
	if id := fmt.Sprintf("%x", e.TraceID); id != tp[3:35] {
		t.Errorf("slowest request's trace id %s, want the response's %s", id, tp[3:35])
	}
	if e.Duration < 300*time.Millisecond || e.Path != "/slow/x" || e.Method != "GET" || e.Status != 200 || e.Instance == 0 {
		t.Errorf("slowest request %+v, want ≥ 300ms, GET /slow/x (no query), 200, an instance", e)
	}
	if e.Sampled {
		t.Error("sampled with no tracer recording")
	}
	for _, o := range all[1:] {
		if o.Path != "/slow/fast" || o.Duration > e.Duration {
			t.Errorf("exemplar %+v: want a faster /slow/fast", o)
		}
	}
	// They survive the wire.
	if d, err := sli.DecodeSummary(sli.EncodeSummary(nil, s)); err != nil || d.Slowest[0].TraceID != e.TraceID {
		t.Fatalf("decode: %v", err)
	}
}
