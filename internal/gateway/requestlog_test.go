package gateway_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/gateway"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/telemetry"
)

// requestLogged is a gateway serving the status and slow fault guests with its own
// metrics and log, whose request log follows cfg.
type requestLogged struct {
	url     string
	metrics *telemetry.Metrics
	slis    *sli.Aggregator
	logs    *syncBuffer
}

func newRequestLogged(t *testing.T, cfg telemetry.RequestLogConfig) *requestLogged {
	t.Helper()
	e := sharedEngine(t)
	status := loadGuest(t, e, "examples/testdata/faults/status", nil)
	slow := loadGuest(t, e, "examples/testdata/faults/slow", func(s *sandbox.Spec) { s.Scaling.MinWarm = 1 })
	f := &requestLogged{metrics: telemetry.NewMetrics("test"), logs: &syncBuffer{},
		slis: sli.NewAggregator(sli.Config{Node: "n1", Start: time.Now()})}
	g := gateway.New(gateway.Config{Logger: newLogger(f.logs), Metrics: f.metrics, Telemetry: true, RequestLog: cfg, SLIs: f.slis})
	setRoutes(t, g, gateway.Route{Prefix: "/status", Target: status}, gateway.Route{Prefix: "/slow", Target: slow})
	f.url = serve(t, g)
	return f
}

// lineOf returns the request line of id, or nil.
func (f *requestLogged) lineOf(t *testing.T, id string) map[string]any {
	for _, rec := range f.logs.records(t, "request") {
		if rec["request_id"] == id {
			return rec
		}
	}
	return nil
}

// send sends one request and waits until the gateway has either logged it or counted
// it skipped, reporting which.
func (f *requestLogged) send(t *testing.T, path string, want int) (logged bool) {
	t.Helper()
	return f.sendLine(t, path, want) != nil
}

// sendLine is send returning the request's line, nil when it got none.
func (f *requestLogged) sendLine(t *testing.T, path string, want int) (line map[string]any) {
	t.Helper()
	before := f.metrics.RequestLogSkipped()
	r := get(t, f.url+path, nil)
	if r.status != want {
		t.Fatalf("GET %s: status %d, want %d: %s", path, r.status, want, r.body)
	}
	id := r.header.Get("X-Request-Id")
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if line = f.lineOf(t, id); line != nil || f.metrics.RequestLogSkipped() == before+1 {
			return nil
		}
		return fmt.Errorf("request %s neither logged nor counted skipped", id)
	})
	return line
}

// TestRequestLogSampling: above the rate every failure and slow request still gets its
// line, the others are sampled, and per route and status the lines' weights add up to
// the requests served, the skipped ones counted in fermion_request_log_skipped_total.
func TestRequestLogSampling(t *testing.T) {
	// 2 lines a second, a burst of 2: a quick run of requests is sampled on any machine.
	const slow = 40 * time.Millisecond
	f := newRequestLogged(t, telemetry.RequestLogConfig{Rate: 2, Slow: slow})
	kinds := []struct {
		path   string
		status int
		n      int
		always bool // every request gets a line of weight 1
	}{
		{path: "/status", status: 200, n: 30},
		{path: "/status?status=404", status: 404, n: 10},
		{path: "/nope", status: 404, n: 5}, // no route
		{path: "/status?status=500", status: 500, n: 5, always: true},
		{path: "/slow?d=50ms", status: 200, n: 3, always: true},
	}
	sent := map[string]int{}
	for _, k := range kinds {
		for range k.n {
			logged := f.send(t, k.path, k.status)
			if k.always && !logged {
				t.Fatalf("GET %s got no line above the rate", k.path)
			}
			sent[k.path]++
		}
	}
	// Drain each sampled kind's skipped requests into a line of its own: send until one
	// of its requests gets a sampled line (a token comes every half second). A request
	// that took the slow threshold on a busy machine gets a line of weight 1 that carries
	// nothing: keep sending then.
	for _, k := range kinds[:3] {
		for deadline := time.Now().Add(30 * time.Second); ; {
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: no sampled line in 30 s at 2 lines/s", k.path)
			}
			sent[k.path]++
			if line := f.sendLine(t, k.path, k.status); line != nil && line["duration_ms"].(float64) < float64(slow.Microseconds())/1000 {
				break
			}
		}
	}

	kindOf := map[string]string{} // path and status as logged -> kind
	for _, k := range kinds {
		path, _, _ := strings.Cut(k.path, "?")
		kindOf[fmt.Sprint(path, " ", k.status)] = k.path
	}
	weights := map[string]int64{} // by kind
	var lines, extra int64
	for _, rec := range f.logs.records(t, "request") {
		kind, ok := kindOf[fmt.Sprint(rec["path"], " ", rec["status"])]
		if !ok {
			t.Fatalf("line of no kind sent: %v", rec)
		}
		w := int64(1)
		if v, ok := rec["weight"]; ok {
			if w = int64(v.(float64)); w < 2 {
				t.Fatalf("weight %d written; it is left out when 1: %v", w, rec)
			}
		}
		weights[kind] += w
		lines++
		extra += w - 1
	}
	for _, k := range kinds {
		if weights[k.path] != int64(sent[k.path]) {
			t.Errorf("GET %s: lines weigh %d requests, %d were sent", k.path, weights[k.path], sent[k.path])
		}
	}
	if extra == 0 {
		t.Errorf("no line carries a weight: nothing was sampled at 2 lines/s (%d lines)", lines)
	}
	if skipped := f.metrics.RequestLogSkipped(); skipped != extra {
		t.Errorf("fermion_request_log_skipped_total %d, want the lines' extra weight %d", skipped, extra)
	}
	if got := metricValue(t, f.metrics, "fermion_request_log_skipped_total", nil); got != float64(extra) {
		t.Errorf("scraped fermion_request_log_skipped_total %v, want %d", got, extra)
	}
	// The other records still count every request: metrics and the SLIs (every routed one).
	if got := metricValue(t, f.metrics, "fermion_requests_total", map[string]string{"function": "status", "code": "2xx"}); got != float64(sent["/status"]) {
		t.Errorf("fermion_requests_total{code=2xx} %v, want %d", got, sent["/status"])
	}
	routed := 0
	for path, n := range sent {
		if path != "/nope" {
			routed += n
		}
	}
	waitSummaries(t, f.slis, uint64(routed))
}

// TestRequestLogAll: with All every request gets a line of its own, at any rate.
func TestRequestLogAll(t *testing.T) {
	f := newRequestLogged(t, telemetry.RequestLogConfig{Rate: 1, All: true})
	for range 10 {
		if !f.send(t, "/status", http.StatusOK) {
			t.Fatal("a request got no line with All")
		}
	}
	for _, rec := range f.logs.records(t, "request") {
		if _, ok := rec["weight"]; ok {
			t.Fatalf("a line carries a weight with All: %v", rec)
		}
	}
	if s := f.metrics.RequestLogSkipped(); s != 0 {
		t.Fatalf("%d requests counted skipped with All", s)
	}
}

// TestTelemetryAllocations: with telemetry on (metrics, SLI aggregate, the request log
// with its sampler, writing lines or skipping them) a request allocates no more than
// with telemetry off. Allocations are counted process-wide, so a background allocation
// (a prewarm, a timer) can add a fraction: the margin is half an allocation per request.
func TestTelemetryAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("serves a few thousand requests")
	}
	if raceEnabled {
		t.Skip("the race detector changes allocations (sync.Pool drops what is put back)")
	}
	hello, _ := sharedFunctions(t)
	logger, err := telemetry.NewLogger(io.Discard, "info")
	if err != nil {
		t.Fatal(err)
	}
	newGateway := func(on bool, rl telemetry.RequestLogConfig) *gateway.Gateway {
		cfg := gateway.Config{Logger: logger, Telemetry: on, RequestLog: rl}
		if on {
			cfg.Metrics = telemetry.NewMetrics("test")
			cfg.SLIs = sli.NewAggregator(sli.Config{Node: "n1", Start: time.Now()})
		}
		g := gateway.New(cfg)
		setRoutes(t, g, gateway.Route{Prefix: "/hello", Target: hello})
		return g
	}
	allocs := func(g *gateway.Gateway) float64 {
		req := httptest.NewRequest(http.MethodGet, "/hello", nil)
		serve := func() {
			w := httptest.NewRecorder()
			r := req.Clone(req.Context())
			g.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
		for range 200 {
			serve()
		}
		return testing.AllocsPerRun(1000, serve)
	}
	off := allocs(newGateway(false, telemetry.RequestLogConfig{}))
	for _, tt := range []struct {
		name string
		rl   telemetry.RequestLogConfig
	}{
		{name: "every line written", rl: telemetry.RequestLogConfig{All: true}},
		{name: "lines sampled", rl: telemetry.RequestLogConfig{Rate: 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			on := allocs(newGateway(true, tt.rl))
			t.Logf("allocations per request: telemetry on %.2f, off %.2f", on, off)
			if on > off+0.5 {
				t.Fatalf("telemetry on allocates %.2f per request, off %.2f", on, off)
			}
		})
	}
}
