package gateway_test

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/gateway"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

// The Rust SDK's guests (sdk/rust) through a real gateway: each fault must get the
// same status and the same counted metric as the Go SDK's guest does (see
// internal/sandbox/faults_test.go). They skip without a Rust toolchain that builds
// wasm32 WASI modules (internal/rustbuild).

const rustFaults = "examples/testdata/rust/faults"

// rustGateway serves the Rust guest in dir at / through a new gateway whose sandbox
// and gateway share one metrics registry and one log.
type rustGateway struct {
	url     string
	metrics *telemetry.Metrics
	logs    *syncBuffer
	f       *sandbox.Function
}

func newRustGateway(t *testing.T, dir string, edit func(*sandbox.Spec)) *rustGateway {
	t.Helper()
	wasm := fermiontest.RustGuest(t, dir)
	g := &rustGateway{metrics: telemetry.NewMetrics("test"), logs: &syncBuffer{}}
	e, err := sandbox.NewEngine(sandbox.EngineConfig{CacheDir: cacheDir, Metrics: g.metrics, Logger: newLogger(g.logs)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(t.Context()) })
	if g.f, err = loadSpec(e, fermiontest.Root(t), dir, wasm, edit); err != nil {
		t.Fatal(err)
	}
	gw := gateway.New(gateway.Config{Logger: newLogger(g.logs), Metrics: g.metrics, Telemetry: true})
	setRoutes(t, gw, gateway.Route{Prefix: "/", Target: g.f})
	g.url = serve(t, gw)
	return g
}

func TestRustHello(t *testing.T) {
	g := newRustGateway(t, "examples/hello-rust", nil)
	for range 3 { // a reused instance answers the same
		r := get(t, g.url+"/hello-rust?x=1", nil)
		if r.status != http.StatusOK || r.body != "Hello from Fermion!\n" {
			t.Fatalf("got %d %q", r.status, r.body)
		}
		if ct := r.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
			t.Fatalf("Content-Type %q", ct)
		}
		checkIDs(t, r)
	}
	waitMetric(t, g.metrics, "fermion_requests_total", map[string]string{"function": "hello-rust", "code": "2xx"}, 3)
}

func TestRustPanic(t *testing.T) {
	g := newRustGateway(t, rustFaults, nil)
	if r := get(t, g.url+"/panic", nil); r.status != http.StatusOK || r.body != "ok" {
		t.Fatalf("warm-up: %d %q", r.status, r.body)
	}
	r := get(t, g.url+"/panic?panic=1", nil)
	// wasm32-wasi cannot unwind, so a Rust panic aborts: the host sees a trap, which a
	// Go guest's panic and trap both answer with: 500, a counted trap, a discarded
	// instance.
	if r.status != http.StatusInternalServerError || !strings.Contains(r.body, "see its logs") {
		t.Fatalf("panic: got %d %q, want 500", r.status, r.body)
	}
	waitMetric(t, g.metrics, "fermion_traps_total", map[string]string{"function": "rust-faults"}, 1)
	waitMetric(t, g.metrics, "fermion_instance_discards_total", map[string]string{"function": "rust-faults", "reason": telemetry.ReasonTrap}, 1)
	if !strings.Contains(g.logs.String(), "panic: rust fault guest: panic requested (at src/lib.rs:") {
		t.Fatalf("the panic message is not in the guest log:\n%s", g.logs.String())
	}
	if r := get(t, g.url+"/panic", nil); r.status != http.StatusOK || r.body != "ok" {
		t.Fatalf("after the panic: %d %q", r.status, r.body)
	}
}

func TestRustWriteHeaderTwice(t *testing.T) {
	g := newRustGateway(t, rustFaults, nil)
	r := get(t, g.url+"/twice", nil)
	// As in net/http: the first status stands, a later one is ignored (and noted).
	if r.status != http.StatusCreated || r.body != "twice" {
		t.Fatalf("got %d %q, want 201 %q", r.status, r.body, "twice")
	}
	if got := r.header.Values("X-Once"); !slices.Equal(got, []string{"second"}) {
		t.Fatalf("X-Once set twice: %q, want the second value only", got)
	}
	if got := r.header.Values("X-Many"); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("X-Many added twice: %q, want both values", got)
	}
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if !strings.Contains(g.logs.String(), "superfluous write_header(500) ignored; the status is already 201") {
			return errors.New("the superfluous write_header is not in the guest log")
		}
		return nil
	})
	if n := metricValue(t, g.metrics, "fermion_traps_total", map[string]string{"function": "rust-faults"}); n != 0 {
		t.Fatalf("%v traps, want none", n)
	}
}

func TestRustRequestBodyTooLarge(t *testing.T) {
	g := newRustGateway(t, rustFaults, nil) // max_request_body = 1KiB
	tests := []struct {
		name       string
		size       int
		wantStatus int
		rejections float64
	}{
		{"at the limit", 1024, http.StatusOK, 0},
		{"over the limit", 1025, http.StatusRequestEntityTooLarge, 1},
		{"far over the limit", 1 << 20, http.StatusRequestEntityTooLarge, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, http.MethodPost, g.url+"/echo", nil, bytes.NewReader(bytes.Repeat([]byte("b"), tt.size)))
			if r.status != tt.wantStatus {
				t.Fatalf("got %d %q, want %d", r.status, r.body, tt.wantStatus)
			}
			if tt.wantStatus == http.StatusOK && (len(r.body) != tt.size || r.header.Get("X-Body-Length") != "1024") {
				t.Fatalf("echoed %d bytes, X-Body-Length %q", len(r.body), r.header.Get("X-Body-Length"))
			}
			if tt.wantStatus != http.StatusOK && !strings.Contains(r.body, "1024") {
				t.Fatalf("413 body %q does not name the limit", r.body)
			}
			waitMetric(t, g.metrics, "fermion_limit_rejections_total",
				map[string]string{"function": "rust-faults", "limit": telemetry.LimitRequestBody}, tt.rejections)
		})
	}
}

func TestRustOutbound(t *testing.T) {
	var hitsB atomic.Int32
	srvA := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte("hello from A"))
	}))
	t.Cleanup(srvA.Close)
	srvB := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hitsB.Add(1) }))
	t.Cleanup(srvB.Close)
	allowA, err := manifest.ParseHostPattern(srvA.URL)
	if err != nil {
		t.Fatal(err)
	}
	g := newRustGateway(t, rustFaults, func(s *sandbox.Spec) {
		s.Capabilities.AllowedOutboundHosts = []manifest.HostPattern{allowA}
	})
	dial := func(target string) response {
		return get(t, g.url+"/dial?url="+url.QueryEscape(target), nil)
	}
	labels := func(result string) map[string]string {
		return map[string]string{"function": "rust-faults", "result": result}
	}

	r := dial(srvA.URL + "/a")
	if r.status != http.StatusAccepted || r.body != "hello from A" || r.header.Get("Content-Type") != "text/plain" {
		t.Fatalf("allowed host: got %d %q %v", r.status, r.body, r.header)
	}
	waitMetric(t, g.metrics, "fermion_outbound_requests_total", labels(telemetry.OutboundOK), 1)

	tests := []struct{ name, url, want string }{
		{"other port", srvB.URL + "/b", "is not in allowed_outbound_hosts"},
		{"other host name", strings.Replace(srvA.URL, "127.0.0.1", "localhost", 1) + "/a", "is not in allowed_outbound_hosts"},
		{"user info", strings.Replace(srvA.URL, "http://", "http://user:pw@", 1) + "/a", "user info are not allowed"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := dial(tt.url)
			if r.status != http.StatusBadGateway || !strings.Contains(r.body, tt.want) {
				t.Fatalf("got %d %q, want 502 containing %q", r.status, r.body, tt.want)
			}
			if strings.Contains(r.body, "pw@") {
				t.Fatalf("the password is in the error: %q", r.body)
			}
			waitMetric(t, g.metrics, "fermion_outbound_requests_total", labels(telemetry.OutboundDenied), float64(i+1))
		})
	}
	// A relative URL is refused by the SDK before it reaches the host.
	if r := dial("/relative"); r.status != http.StatusBadGateway || !strings.Contains(r.body, "is not an absolute URL") {
		t.Fatalf("relative URL: got %d %q", r.status, r.body)
	}
	if n := hitsB.Load(); n != 0 {
		t.Fatalf("server B received %d requests", n)
	}
	// A denied call is the guest's error, not a fault: the instance stays.
	if n := metricValue(t, g.metrics, "fermion_traps_total", map[string]string{"function": "rust-faults"}); n != 0 {
		t.Fatalf("%v traps, want none", n)
	}
}

// TestRustRequestShapes checks that the Rust SDK decodes what the host encodes: repeated
// headers, header bytes that are not UTF-8, escapes in the query, an empty body.
func TestRustRequestShapes(t *testing.T) {
	g := newRustGateway(t, rustFaults, nil)
	h := http.Header{"X-Multi": {"one", "two"}, "X-Bin": {"a\xffb"}}
	r := do(t, http.MethodPut, g.url+"/inspect?q=a+b%2Fc&z", h, bytes.NewReader([]byte("12345")))
	if r.status != http.StatusOK {
		t.Fatalf("got %d %q", r.status, r.body)
	}
	for _, want := range []string{
		"method=PUT\n",
		"uri=/inspect?q=a+b%2Fc&z\n",
		"path=/inspect\n",
		"query=q=a+b%2Fc&z\n",
		"q=Some(\"a b/c\")\n",
		"host=" + strings.TrimPrefix(g.url, "http://") + "\n",
		"remote_ip=127.0.0.1\n",
		"x-multi=[\"one\", \"two\"]\n",
		"x-bin=Some(\"a\uFFFDb\")\n",
		"body=5\n",
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("the guest saw\n%s\nwithout %q", r.body, want)
		}
	}
	r = get(t, g.url+"/inspect", nil)
	if !strings.Contains(r.body, "q=None\n") || !strings.Contains(r.body, "body=0\n") || !strings.Contains(r.body, "query=\n") {
		t.Fatalf("a request with no query or body: %s", r.body)
	}
}

// TestRustLimits: a Rust handler that spins past its deadline, or allocates past its
// memory, is stopped as a Go one is: 504 or 500, the limit counted, the instance
// discarded, and the next request served.
func TestRustLimits(t *testing.T) {
	g := newRustGateway(t, rustFaults, func(s *sandbox.Spec) {
		s.Limits.Timeout = 500 * time.Millisecond
		s.Limits.MemoryBytes = 32 << 20
	})
	tests := []struct {
		name, path, wantBody, limit, reason string
		wantStatus                          int
	}{
		{"deadline", "/loop?loop=1", "exceeded its 500ms timeout", telemetry.LimitTimeout, telemetry.ReasonTimeout, http.StatusGatewayTimeout},
		// Rust's allocator reports "memory allocation of N bytes failed" and aborts; the
		// host reads that as running out of memory, well below the cap.
		{"memory", "/alloc?mib=64", "ran out of memory (limit 32 MiB)", telemetry.LimitMemory, telemetry.ReasonOOM, http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get(t, g.url+tt.path, nil)
			if r.status != tt.wantStatus || !strings.Contains(r.body, tt.wantBody) {
				t.Fatalf("got %d %q, want %d containing %q", r.status, r.body, tt.wantStatus, tt.wantBody)
			}
			waitMetric(t, g.metrics, "fermion_limit_rejections_total", map[string]string{"function": "rust-faults", "limit": tt.limit}, 1)
			waitMetric(t, g.metrics, "fermion_instance_discards_total", map[string]string{"function": "rust-faults", "reason": tt.reason}, 1)
			if r := get(t, g.url+"/alloc?mib=4", nil); r.status != http.StatusOK || r.body != "ok 4" {
				t.Fatalf("the next request: %d %q", r.status, r.body)
			}
		})
	}
}
