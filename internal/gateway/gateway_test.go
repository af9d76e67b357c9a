package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/gateway"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

// helloAndEcho is a gateway serving the hello example at /hello and echo at /echo.
type helloAndEcho struct {
	gw          *gateway.Gateway
	url         string
	metrics     *telemetry.Metrics
	logs        *syncBuffer
	hello, echo *sandbox.Function
}

// newHelloAndEcho puts a new gateway with its own metrics and log in front of the shared
// hello and echo functions (or an echo with editEcho's limits).
func newHelloAndEcho(t *testing.T, telemetryOn bool, editEcho func(*sandbox.Spec)) *helloAndEcho {
	t.Helper()
	f := &helloAndEcho{metrics: telemetry.NewMetrics("test"), logs: &syncBuffer{}}
	f.hello, f.echo = sharedFunctions(t)
	if editEcho != nil {
		f.echo = loadGuest(t, sharedEngine(t), "examples/echo", editEcho)
	}
	f.gw = gateway.New(gateway.Config{Logger: newLogger(f.logs), Metrics: f.metrics, Telemetry: telemetryOn})
	setRoutes(t, f.gw,
		gateway.Route{Prefix: "/hello", Target: f.hello},
		gateway.Route{Prefix: "/echo", Target: f.echo},
	)
	f.url = serve(t, f.gw)
	return f
}

func TestServeHTTP(t *testing.T) {
	f := newHelloAndEcho(t, true, nil)
	tests := []struct {
		name       string
		method     string
		path       string
		host       string
		wantStatus int
		wantBody   string // substring
	}{
		{name: "hello", method: "GET", path: "/hello", wantStatus: 200, wantBody: "Hello from Fermion!\n"},
		{name: "hello below prefix", method: "GET", path: "/hello/there?x=1", wantStatus: 200, wantBody: "Hello from Fermion!\n"},
		{name: "hello with another host", method: "GET", path: "/hello", host: "anything.example.com:1234", wantStatus: 200, wantBody: "Hello from Fermion!\n"},
		{name: "echo post", method: "POST", path: "/echo/x?a=1", wantStatus: 200, wantBody: `"path": "/echo/x"`},
		{name: "unknown route", method: "GET", path: "/nope", wantStatus: 404, wantBody: `no route for host`},
		{name: "prefix inside a segment is unknown", method: "GET", path: "/helloworld", wantStatus: 404, wantBody: `path "/helloworld"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, f.url+tt.path, strings.NewReader("body"))
			if err != nil {
				t.Fatal(err)
			}
			if tt.host != "" {
				req.Host = tt.host
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var b bytes.Buffer
			if _, err := b.ReadFrom(resp.Body); err != nil {
				t.Fatal(err)
			}
			r := response{status: resp.StatusCode, header: resp.Header, body: b.String()}
			if r.status != tt.wantStatus || !strings.Contains(r.body, tt.wantBody) {
				t.Fatalf("%s %s = %d %q, want %d with %q", tt.method, tt.path, r.status, r.body, tt.wantStatus, tt.wantBody)
			}
			id, _ := checkIDs(t, r)
			if !hexID.MatchString(id) {
				t.Fatalf("generated X-Request-Id %q is not 32 hex digits", id)
			}
			if r.status >= 400 && !strings.Contains(r.body, id) {
				t.Fatalf("error body %q does not name the request id %s", r.body, id)
			}
		})
	}
}

func TestRequestID(t *testing.T) {
	f := newHelloAndEcho(t, true, nil)
	long128 := strings.Repeat("a", 128)
	tests := []struct {
		name string
		in   string // incoming X-Request-Id ("" none)
		keep bool
	}{
		{name: "none", in: "", keep: false},
		{name: "valid is kept", in: "req-42.abc_DEF", keep: true},
		{name: "uuid is kept", in: "0d9f3c5e-8b7a-4c1e-9f2d-3a4b5c6d7e8f", keep: true},
		{name: "128 bytes is kept", in: long128, keep: true},
		{name: "too long is replaced", in: long128 + "a", keep: false},
		{name: "space is replaced", in: "bad id", keep: false},
		{name: "control character is replaced", in: "bad\tid", keep: false},
		{name: "non-ascii is replaced", in: "idé", keep: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.in != "" {
				h["X-Request-Id"] = []string{tt.in}
			}
			r := get(t, f.url+"/echo", h)
			id, _ := checkIDs(t, r)
			if tt.keep && id != tt.in {
				t.Fatalf("X-Request-Id = %q, want the incoming %q kept", id, tt.in)
			}
			if !tt.keep && !hexID.MatchString(id) {
				t.Fatalf("X-Request-Id = %q, want a new 32-hex id instead of %q", id, tt.in)
			}
			if got := decodeEcho(t, r).header("X-Request-Id"); got != id {
				t.Fatalf("guest saw X-Request-Id %q, client got %q", got, id)
			}
		})
	}
}

func TestTraceContext(t *testing.T) {
	const (
		parentTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
		parentSpan  = "00f067aa0ba902b7"
	)
	for _, on := range []bool{true, false} {
		f := newHelloAndEcho(t, on, nil)
		tests := []struct {
			name        string
			traceparent string
			tracestate  string
			continues   bool
		}{
			{name: "no incoming trace starts one", continues: false},
			{name: "incoming trace is continued", traceparent: "00-" + parentTrace + "-" + parentSpan + "-01", continues: true},
			{name: "incoming unsampled trace is continued", traceparent: "00-" + parentTrace + "-" + parentSpan + "-00", continues: true},
			{name: "incoming tracestate is kept", traceparent: "00-" + parentTrace + "-" + parentSpan + "-01", tracestate: "vendor=abc", continues: true},
			{name: "malformed traceparent starts a new trace", traceparent: "00-zzzz-" + parentSpan + "-01", continues: false},
			{name: "all-zero trace id starts a new trace", traceparent: "00-" + strings.Repeat("0", 32) + "-" + parentSpan + "-01", continues: false},
		}
		for _, tt := range tests {
			name := tt.name + "/telemetry on"
			if !on {
				name = tt.name + "/telemetry off"
			}
			t.Run(name, func(t *testing.T) {
				h := http.Header{}
				if tt.traceparent != "" {
					h.Set("Traceparent", tt.traceparent)
				}
				if tt.tracestate != "" {
					h.Set("Tracestate", tt.tracestate)
				}
				r := get(t, f.url+"/echo", h)
				_, traceID := checkIDs(t, r)
				tp := r.header.Get("Traceparent")
				if tt.continues && traceID != parentTrace {
					t.Fatalf("response traceparent %q does not continue trace %s", tp, parentTrace)
				}
				if !tt.continues && traceID == parentTrace {
					t.Fatalf("response traceparent %q continued an invalid parent", tp)
				}
				if strings.Contains(tp, parentSpan) {
					t.Fatalf("response traceparent %q reuses the caller's span id", tp)
				}
				if tt.traceparent != "" && strings.HasSuffix(tt.traceparent, "-00") && tt.continues && !strings.HasSuffix(tp, "-00") {
					t.Fatalf("response traceparent %q changed the caller's sampling decision", tp)
				}
				e := decodeEcho(t, r)
				if got := e.header("Traceparent"); got != tp {
					t.Fatalf("guest saw traceparent %q, client got %q", got, tp)
				}
				if got := e.header("X-Request-Id"); got != r.header.Get("X-Request-Id") {
					t.Fatalf("guest saw x-request-id %q, client got %q", got, r.header.Get("X-Request-Id"))
				}
				if tt.tracestate != "" {
					if got := r.header.Get("Tracestate"); got != tt.tracestate {
						t.Fatalf("response tracestate %q, want %q", got, tt.tracestate)
					}
				}
			})
		}
	}
}

func TestRequestBodyLimit(t *testing.T) {
	const limit = 1024
	f := newHelloAndEcho(t, true, func(s *sandbox.Spec) { s.Limits.MaxRequestBody = limit })
	// hideLength makes the client send a chunked body.
	type hideLength struct{ *strings.Reader }
	tests := []struct {
		name       string
		size       int
		chunked    bool
		wantStatus int
	}{
		{name: "content-length at the limit", size: limit, wantStatus: 200},
		{name: "content-length over the limit", size: limit + 1, wantStatus: 413},
		{name: "content-length far over the limit", size: 64 * limit, wantStatus: 413},
		{name: "chunked at the limit", size: limit, chunked: true, wantStatus: 200},
		{name: "chunked over the limit", size: limit + 1, chunked: true, wantStatus: 413},
		{name: "chunked far over the limit", size: 64 * limit, chunked: true, wantStatus: 413},
		{name: "empty", size: 0, wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := metricValue(t, f.metrics, "fermion_limit_rejections_total", map[string]string{"function": "echo", "limit": "request_body"})
			body := strings.Repeat("x", tt.size)
			var r response
			if tt.chunked {
				r = do(t, "POST", f.url+"/echo", nil, hideLength{strings.NewReader(body)})
			} else {
				r = do(t, "POST", f.url+"/echo", nil, strings.NewReader(body))
			}
			if r.status != tt.wantStatus {
				t.Fatalf("POST %d bytes (chunked %v) = %d %q, want %d", tt.size, tt.chunked, r.status, r.body, tt.wantStatus)
			}
			checkIDs(t, r)
			after := metricValue(t, f.metrics, "fermion_limit_rejections_total", map[string]string{"function": "echo", "limit": "request_body"})
			if tt.wantStatus == 413 {
				if !strings.Contains(r.body, "1024 bytes") {
					t.Fatalf("413 body %q does not name the limit", r.body)
				}
				if after != before+1 {
					t.Fatalf("request_body limit rejections went from %v to %v, want +1", before, after)
				}
				return
			}
			if got := decodeEcho(t, r).Body; got != body {
				t.Fatalf("guest got a %d-byte body, want %d bytes", len(got), len(body))
			}
			if after != before {
				t.Fatalf("request_body limit rejections changed from %v to %v on an accepted request", before, after)
			}
		})
	}
}

// TestErrorMapping drives real failures of the slow fault guest through the gateway.
func TestErrorMapping(t *testing.T) {
	t.Parallel() // mostly waits for sleeping guests
	metrics := telemetry.NewMetrics("test")
	e := sharedEngine(t)
	// One slot and no queue: a second request while one runs is refused at once.
	single := loadGuest(t, e, "examples/testdata/faults/slow", func(s *sandbox.Spec) {
		s.Limits.MaxConcurrency = 1
		s.Limits.QueueTimeout = 0
		s.Limits.Timeout = time.Minute
		s.Scaling.MaxInstances = 1
	})
	short := loadGuest(t, e, "examples/testdata/faults/slow", func(s *sandbox.Spec) {
		s.Name = "short"
		s.Limits.Timeout = 200 * time.Millisecond
	})
	g := gateway.New(gateway.Config{Metrics: metrics, Telemetry: true})
	setRoutes(t, g,
		gateway.Route{Prefix: "/slow", Target: single},
		gateway.Route{Prefix: "/short", Target: short},
	)
	url := serve(t, g)

	t.Run("guest status passes through", func(t *testing.T) {
		r := get(t, url+"/slow?d=bogus", nil)
		if r.status != http.StatusBadRequest {
			t.Fatalf("bad duration = %d %q, want 400 from the guest", r.status, r.body)
		}
		checkIDs(t, r)
	})

	t.Run("timeout is 504", func(t *testing.T) {
		r := get(t, url+"/short?d=1m", nil)
		if r.status != http.StatusGatewayTimeout {
			t.Fatalf("slow request past its timeout = %d %q, want 504", r.status, r.body)
		}
		if r.header.Get("Retry-After") != "" {
			t.Fatalf("504 has Retry-After %q", r.header.Get("Retry-After"))
		}
		id, _ := checkIDs(t, r)
		if !strings.Contains(r.body, id) {
			t.Fatalf("504 body %q does not name the request id", r.body)
		}
		waitMetric(t, metrics, "fermion_request_errors_total", map[string]string{"function": "short", "reason": "timeout"}, 1)
	})

	t.Run("concurrency limit is 503 with Retry-After", func(t *testing.T) {
		// Hold the only slot with a sleeping request. A guest's sleep cannot be cut short,
		// so it is only as long as the checks below need.
		type result struct {
			r   response
			err error
		}
		held := make(chan result, 1)
		go func() {
			resp, err := client.Get(url + "/slow?d=2s")
			if err != nil {
				held <- result{err: err}
				return
			}
			defer resp.Body.Close()
			var b bytes.Buffer
			_, err = b.ReadFrom(resp.Body)
			held <- result{r: response{status: resp.StatusCode, body: b.String()}, err: err}
		}()
		fermiontest.WaitFor(t, 10*time.Second, func() error {
			if s := single.Stats(); s.Busy != 1 {
				return errors.New("slow request not running yet")
			}
			return nil
		})

		r := get(t, url+"/slow", nil)
		if r.status != http.StatusServiceUnavailable {
			t.Fatalf("second request = %d %q, want 503", r.status, r.body)
		}
		if got := r.header.Get("Retry-After"); got != "1" {
			t.Fatalf("Retry-After = %q, want 1", got)
		}
		if !strings.Contains(r.body, "concurrency limit") {
			t.Fatalf("503 body %q does not explain the limit", r.body)
		}
		checkIDs(t, r)
		waitMetric(t, metrics, "fermion_requests_total", map[string]string{"function": "slow", "code": "5xx"}, 1)
		waitMetric(t, metrics, "fermion_request_errors_total", map[string]string{"function": "slow", "reason": "concurrency"}, 1)

		if res := <-held; res.err != nil || res.r.status != 200 || res.r.body != "ok" {
			t.Fatalf("held request: %d %q %v, want 200 ok", res.r.status, res.r.body, res.err)
		}
		// The slot is free again.
		if r := get(t, url+"/slow", nil); r.status != 200 || r.body != "ok" {
			t.Fatalf("after the slot was freed: %d %q", r.status, r.body)
		}
	})
}

func TestMetrics(t *testing.T) {
	f := newHelloAndEcho(t, true, nil)
	labels := map[string]string{"function": "hello", "version": "0.1.0"}
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for lk, lv := range labels {
			m[lk] = lv
		}
		return m
	}
	before2xx := metricValue(t, f.metrics, "fermion_requests_total", with("code", "2xx"))
	beforeDur := metricValue(t, f.metrics, "fermion_request_duration_seconds", labels)
	const n = 3
	for i := 0; i < n; i++ {
		if r := get(t, f.url+"/hello", nil); r.status != 200 {
			t.Fatalf("GET /hello = %d", r.status)
		}
	}
	if r := get(t, f.url+"/nope", nil); r.status != 404 {
		t.Fatalf("GET /nope = %d", r.status)
	}
	// The request is recorded after the response is written, so the client can be first.
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if got := metricValue(t, f.metrics, "fermion_request_duration_seconds", labels); got != beforeDur+n {
			return errors.New("duration histogram count not there yet")
		}
		return nil
	})
	if got := metricValue(t, f.metrics, "fermion_requests_total", with("code", "2xx")); got != before2xx+n {
		t.Fatalf("fermion_requests_total{code=2xx} = %v, want %v", got, before2xx+n)
	}
	if got := metricValue(t, f.metrics, "fermion_requests_total", with("code", "5xx")); got != 0 {
		t.Fatalf("fermion_requests_total{code=5xx} = %v, want 0", got)
	}
	// The gauge drops when a handler returns, just after the response is written.
	waitMetric(t, f.metrics, "fermion_gateway_in_flight_requests", nil, 0)
}

func TestTelemetryOff(t *testing.T) {
	f := newHelloAndEcho(t, false, nil)
	for i := 0; i < 3; i++ {
		r := get(t, f.url+"/hello", nil)
		if r.status != 200 || r.body != "Hello from Fermion!\n" {
			t.Fatalf("GET /hello = %d %q", r.status, r.body)
		}
		checkIDs(t, r)
	}
	if r := get(t, f.url+"/nope", nil); r.status != 404 {
		t.Fatalf("GET /nope = %d", r.status)
	}
	if got := metricValue(t, f.metrics, "fermion_requests_total", map[string]string{"function": "hello"}); got != 0 {
		t.Fatalf("requests recorded with telemetry off: %v", got)
	}
	if got := metricValue(t, f.metrics, "fermion_request_duration_seconds", map[string]string{"function": "hello"}); got != 0 {
		t.Fatalf("durations recorded with telemetry off: %v", got)
	}
	if logs := f.logs.records(t, "request"); len(logs) != 0 {
		t.Fatalf("request log lines with telemetry off: %v", logs)
	}
}

func TestRequestLog(t *testing.T) {
	f := newHelloAndEcho(t, true, nil)
	tests := []struct {
		name       string
		path       string
		wantStatus float64
		wantRoute  string
	}{
		{name: "routed", path: "/hello", wantStatus: 200, wantRoute: "/hello"},
		{name: "routed below prefix", path: "/echo/a/b", wantStatus: 200, wantRoute: "/echo"},
		{name: "unrouted", path: "/nope", wantStatus: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get(t, f.url+tt.path, nil)
			id, traceID := checkIDs(t, r)
			var rec map[string]any
			fermiontest.WaitFor(t, 10*time.Second, func() error {
				var n int
				for _, l := range f.logs.records(t, "request") {
					if l["request_id"] == id {
						rec = l
						n++
					}
				}
				if n != 1 {
					return errors.New("want exactly one request log line for " + id)
				}
				return nil
			})
			if rec["status"] != tt.wantStatus || rec["path"] != strings.SplitN(tt.path, "?", 2)[0] || rec["method"] != "GET" {
				t.Fatalf("log line %v, want status %v path %s", rec, tt.wantStatus, tt.path)
			}
			if rec["trace_id"] != traceID {
				t.Fatalf("log trace_id %v, response trace %s", rec["trace_id"], traceID)
			}
			if _, ok := rec["duration_ms"].(float64); !ok {
				t.Fatalf("log duration_ms %v is not a number", rec["duration_ms"])
			}
			if _, ok := rec["cold"].(bool); !ok {
				t.Fatalf("log cold %v is not a bool", rec["cold"])
			}
			if tt.wantRoute == "" {
				if _, ok := rec["route"]; ok {
					t.Fatalf("unrouted request logged route %v", rec["route"])
				}
				return
			}
			if rec["route"] != tt.wantRoute || rec["function"] == "" || rec["version"] != "0.1.0" {
				t.Fatalf("log line %v, want route %s with function and version", rec, tt.wantRoute)
			}
		})
	}
}

// TestServeDrain cancels Serve while a request is running: the request completes, Serve
// returns nil and the listener is closed.
func TestServeDrain(t *testing.T) {
	t.Parallel() // mostly waits for sleeping guests
	e := sharedEngine(t)
	slow := loadGuest(t, e, "examples/testdata/faults/slow", nil)
	g := gateway.New(gateway.Config{Telemetry: true, DrainTimeout: 20 * time.Second})
	setRoutes(t, g, gateway.Route{Prefix: "/slow", Target: slow})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- g.Serve(ctx, ln) }()

	type result struct {
		r   response
		err error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := client.Get(url + "/slow?d=300ms")
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, err = b.ReadFrom(resp.Body)
		done <- result{r: response{status: resp.StatusCode, body: b.String()}, err: err}
	}()
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if slow.Stats().Busy != 1 {
			return errors.New("request not in flight yet")
		}
		return nil
	})
	cancel()

	res := <-done
	if res.err != nil || res.r.status != 200 || res.r.body != "ok" {
		t.Fatalf("in-flight request during drain: %d %q %v, want 200 ok", res.r.status, res.r.body, res.err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve = %v, want nil after a clean drain", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return after the drain")
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second); err == nil {
		c.Close()
		t.Fatal("new connection accepted after Serve returned")
	}
}

// TestServeDrainTimeout: a request that outlives DrainTimeout makes Serve give up, close
// the connection and say so.
func TestServeDrainTimeout(t *testing.T) {
	t.Parallel() // mostly waits for sleeping guests
	e := sharedEngine(t)
	// The guest's own deadline ends the request the drain gives up on.
	slow := loadGuest(t, e, "examples/testdata/faults/slow", func(s *sandbox.Spec) { s.Limits.Timeout = 2 * time.Second })
	g := gateway.New(gateway.Config{DrainTimeout: 50 * time.Millisecond})
	setRoutes(t, g, gateway.Route{Prefix: "/slow", Target: slow})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- g.Serve(ctx, ln) }()

	done := make(chan error, 1)
	go func() {
		resp, err := client.Get("http://" + ln.Addr().String() + "/slow?d=1m")
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if slow.Stats().Busy != 1 {
			return errors.New("request not in flight yet")
		}
		return nil
	})
	cancel()
	select {
	case err := <-served:
		if err == nil || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Serve = %v, want a drain deadline error", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not give up after DrainTimeout")
	}
	if err := <-done; err == nil {
		t.Fatal("the request outliving the drain succeeded")
	}
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if slow.Stats().Busy != 0 {
			return errors.New("guest still running")
		}
		return nil
	})
}

// TestGuestResponseHeaders: a guest cannot override the gateway's request id, trace
// context or framing, however it spells the header names.
func TestGuestResponseHeaders(t *testing.T) {
	e := sharedEngine(t)
	g := gateway.New(gateway.Config{Telemetry: true})
	setRoutes(t, g, gateway.Route{Prefix: "/headers", Target: loadGuest(t, e, "internal/gateway/testdata/headers", nil)})
	url := serve(t, g)
	tests := []struct {
		name   string
		header string // h=NAME:VALUE the guest sets
		check  func(t *testing.T, r response)
	}{
		{name: "custom header passes through", header: "X-Custom:v1", check: func(t *testing.T, r response) {
			if got := r.header.Get("X-Custom"); got != "v1" {
				t.Fatalf("X-Custom = %q, want v1", got)
			}
		}},
		{name: "non-canonical custom header passes through", header: "x-other:v2", check: func(t *testing.T, r response) {
			if got := r.header.Get("X-Other"); got != "v2" {
				t.Fatalf("X-Other = %q, want v2", got)
			}
		}},
		{name: "request id cannot be replaced", header: "X-Request-Id:spoofed"},
		{name: "lower-case request id cannot be added", header: "x-request-id:spoofed"},
		{name: "traceparent cannot be replaced", header: "Traceparent:00-11111111111111111111111111111111-2222222222222222-01"},
		{name: "lower-case traceparent cannot be added", header: "traceparent:00-11111111111111111111111111111111-2222222222222222-01"},
		{name: "lower-case tracestate cannot be added", header: "tracestate:spoofed=1", check: func(t *testing.T, r response) {
			if got := r.header.Values("Tracestate"); len(got) != 0 {
				t.Fatalf("Tracestate = %q from the guest", got)
			}
		}},
		{name: "content-length cannot disagree with the body", header: "Content-Length:1"},
		{name: "lower-case content-length cannot disagree with the body", header: "content-length:1"},
		{name: "transfer-encoding cannot change the framing", header: "transfer-encoding:gzip"},
		{name: "connection header is the gateway's", header: "connection:upgrade", check: func(t *testing.T, r response) {
			if got := r.header.Get("Connection"); got != "" {
				t.Fatalf("Connection = %q from the guest", got)
			}
		}},
		{name: "repeated header keeps every value in order", header: "X-Multi:a&h=X-Multi:b", check: func(t *testing.T, r response) {
			if got := r.header.Values("X-Multi"); len(got) != 2 || got[0] != "a" || got[1] != "b" {
				t.Fatalf("X-Multi = %q, want both values in order", got)
			}
		}},
		// Two spellings are two keys of the guest's header map, which has no order.
		{name: "a header spelled two ways keeps both values", header: "X-Multi:a&h=x-multi:b", check: func(t *testing.T, r response) {
			got := slices.Sorted(slices.Values(r.header.Values("X-Multi")))
			if !slices.Equal(got, []string{"a", "b"}) {
				t.Fatalf("X-Multi = %q, want a and b", got)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := http.Header{}
			in.Set("X-Request-Id", "client-id")
			r := get(t, url+"/headers?h="+tt.header, in)
			if r.status != 200 || r.body != "headers" {
				t.Fatalf("GET = %d %q, want 200 headers", r.status, r.body)
			}
			if got := r.header.Values("X-Request-Id"); len(got) != 1 || got[0] != "client-id" {
				t.Fatalf("X-Request-Id = %q, want only the gateway's client-id", got)
			}
			if got := r.header.Values("Traceparent"); len(got) != 1 || strings.Contains(got[0], "1111111111") {
				t.Fatalf("Traceparent = %q, want only the gateway's", got)
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

// TestQuiesce: after SetRoutes, Quiesce waits for the requests routed by the replaced
// table, so their target can then be closed without failing them.
func TestQuiesce(t *testing.T) {
	t.Parallel() // mostly waits for sleeping guests
	e := sharedEngine(t)
	old := loadGuest(t, e, "examples/testdata/faults/slow", nil)
	next := loadGuest(t, e, "examples/testdata/faults/slow", func(s *sandbox.Spec) { s.Version = "0.2.0" })
	g := gateway.New(gateway.Config{Telemetry: true})
	setRoutes(t, g, gateway.Route{Prefix: "/slow", Target: old})
	url := serve(t, g)

	t.Run("nothing in flight", func(t *testing.T) {
		setRoutes(t, g, gateway.Route{Prefix: "/slow", Target: old})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := g.Quiesce(ctx); err != nil {
			t.Fatalf("Quiesce with nothing in flight = %v", err)
		}
	})

	t.Run("waits for a request routed by the replaced table", func(t *testing.T) {
		type result struct {
			r   response
			err error
		}
		done := make(chan result, 1)
		go func() {
			resp, err := client.Get(url + "/slow?d=500ms")
			if err != nil {
				done <- result{err: err}
				return
			}
			defer resp.Body.Close()
			var b bytes.Buffer
			_, err = b.ReadFrom(resp.Body)
			done <- result{r: response{status: resp.StatusCode, body: b.String()}, err: err}
		}()
		fermiontest.WaitFor(t, 10*time.Second, func() error {
			if old.Stats().Busy != 1 {
				return errors.New("request not in flight yet")
			}
			return nil
		})
		setRoutes(t, g, gateway.Route{Prefix: "/slow", Target: next})

		canceled, cancel := context.WithCancel(context.Background())
		cancel()
		if err := g.Quiesce(canceled); !errors.Is(err, context.Canceled) {
			t.Fatalf("Quiesce with a request in flight and a canceled context = %v", err)
		}

		quiesced := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			quiesced <- g.Quiesce(ctx)
		}()
		// New requests go to the new target meanwhile.
		if r := get(t, url+"/slow", nil); r.status != 200 {
			t.Fatalf("GET /slow on the new table = %d", r.status)
		}
		if next.Stats().Total == 0 {
			t.Fatal("the new target served nothing")
		}
		var qerr error
		fermiontest.WaitFor(t, 20*time.Second, func() error {
			select {
			case qerr = <-quiesced:
				return nil
			default:
				return errors.New("Quiesce has not returned")
			}
		})
		if qerr != nil {
			t.Fatalf("Quiesce = %v", qerr)
		}
		// Quiesce returns only after the old request is done with its target.
		if s := old.Stats(); s.Busy != 0 {
			t.Fatalf("Quiesce returned while a request routed by the old table was running: %+v", s)
		}
		// The old target can now be closed without failing the request.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := old.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if res := <-done; res.err != nil || res.r.status != 200 || res.r.body != "ok" {
			t.Fatalf("request routed by the replaced table: %d %q %v, want 200 ok", res.r.status, res.r.body, res.err)
		}
	})
}

// TestGuestSeesOneOfEachID: the ids the gateway adds reach the guest once each, in
// place of what the client sent under those names, however many fields the client
// sent (enough here to fill net/http's small map), and the client's own fields reach
// it unchanged.
func TestGuestSeesOneOfEachID(t *testing.T) {
	f := newHelloAndEcho(t, false, nil)
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name   string
		header http.Header
		// tracestate is what the guest and the client see ("" none).
		tracestate string
	}{
		{name: "no fields", header: http.Header{}},
		{name: "replaced id and many fields", header: manyFields(http.Header{
			"X-Request-Id": {"bad id", "second"}, "Traceparent": {parent}, "Tracestate": {"vendor=abc"}}),
			tracestate: "vendor=abc"},
		{name: "kept id, lower-case names sent", header: manyFields(http.Header{
			"x-request-id": {"req-42"}, "traceparent": {parent}})},
		// An unusable traceparent starts a new trace: the client's tracestate is not
		// the gateway's to give, so the guest sees it as the client sent it.
		{name: "malformed traceparent with tracestate", header: manyFields(http.Header{
			"Traceparent": {"00-zz-zz-01"}, "Tracestate": {"vendor=abc"}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get(t, f.url+"/echo", tt.header)
			id, _ := checkIDs(t, r)
			e := decodeEcho(t, r)
			for name, want := range map[string]string{"X-Request-Id": id, "Traceparent": r.header.Get("Traceparent")} {
				if got := e.Headers[name]; len(got) != 1 || got[0] != want {
					t.Errorf("guest saw %s %q, want once %q (the client got it)", name, got, want)
				}
			}
			if tt.tracestate != "" {
				if got := e.Headers["Tracestate"]; len(got) != 1 || got[0] != tt.tracestate || r.header.Get("Tracestate") != tt.tracestate {
					t.Errorf("tracestate: guest saw %q, client got %q, want %q", got, r.header.Get("Tracestate"), tt.tracestate)
				}
			}
			for k, vs := range tt.header {
				k = http.CanonicalHeaderKey(k)
				if k == "X-Request-Id" || k == "Traceparent" || (k == "Tracestate" && tt.tracestate != "") {
					continue
				}
				if got := e.Headers[k]; !slices.Equal(got, vs) {
					t.Errorf("guest saw %s %q, the client sent %q", k, got, vs)
				}
			}
		})
	}
}

// manyFields adds eight fields to h, so that with the ids net/http's map of them
// would outgrow its first size.
func manyFields(h http.Header) http.Header {
	for i := range 8 {
		h.Set(fmt.Sprintf("X-Field-%d", i), fmt.Sprint("value ", i))
	}
	return h
}
