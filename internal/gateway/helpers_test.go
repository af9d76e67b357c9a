package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/trace"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/gateway"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

// cacheDir is a compilation cache shared by every engine of this test binary and the
// other packages' (fermiontest.CompileCacheDir), so each guest is compiled once.
var cacheDir string

func TestMain(m *testing.M) {
	dir, err := fermiontest.CompileCacheDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cacheDir = dir
	code := m.Run()
	shared.close()
	os.Exit(code)
}

// shared is an engine with the hello and echo examples loaded once for the whole test
// binary; tests put their own gateways (with their own metrics and logs) in front.
var shared sharedGuests

type sharedGuests struct {
	once        sync.Once
	engine      *sandbox.Engine
	hello, echo *sandbox.Function
	err         error
}

func sharedFunctions(t *testing.T) (hello, echo *sandbox.Function) {
	t.Helper()
	shared.once.Do(func() {
		root := fermiontest.Root(t)
		helloWasm := fermiontest.Guest(t, "examples/hello", true)
		echoWasm := fermiontest.Guest(t, "examples/echo", true)
		shared.engine, shared.err = sandbox.NewEngine(sandbox.EngineConfig{CacheDir: cacheDir})
		if shared.err != nil {
			return
		}
		if shared.hello, shared.err = loadSpec(shared.engine, root, "examples/hello", helloWasm, nil); shared.err != nil {
			return
		}
		shared.echo, shared.err = loadSpec(shared.engine, root, "examples/echo", echoWasm, nil)
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.hello, shared.echo
}

func (s *sharedGuests) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, f := range []*sandbox.Function{s.hello, s.echo} {
		if f != nil {
			f.Close(ctx)
		}
	}
	if s.engine != nil {
		s.engine.Close(ctx)
	}
}

// loadSpec loads the guest in dir (relative to root) with its manifest's limits, changed
// by edit when it is not nil.
func loadSpec(e *sandbox.Engine, root, dir string, wasm []byte, edit func(*sandbox.Spec)) (*sandbox.Function, error) {
	m, err := manifest.Load(filepath.Join(root, dir))
	if err != nil {
		return nil, err
	}
	spec := sandbox.SpecFromManifest(m, wasm)
	if edit != nil {
		edit(&spec)
	}
	// Loading compiles (in a child process) and snapshots: generous, since a busy
	// machine can take tens of seconds to compile a Go guest.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return e.Load(ctx, spec)
}

// client is bounded so that no test can hang on a request.
var client = &http.Client{Timeout: 30 * time.Second}

var (
	hexID       = regexp.MustCompile(`^[0-9a-f]{32}$`)
	traceparent = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$`)
)

// syncBuffer is a logger's output that a test decodes (records) while it is written.
type syncBuffer struct{ fermiontest.SyncBuffer }

// records decodes the JSON log lines whose msg is msg.
func (s *syncBuffer) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", line, err)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

type engineOptions struct {
	metrics *telemetry.Metrics
	tracer  trace.Tracer
}

func newEngine(t *testing.T, o engineOptions) *sandbox.Engine {
	t.Helper()
	e, err := sandbox.NewEngine(sandbox.EngineConfig{CacheDir: cacheDir, Metrics: o.metrics, Tracer: o.tracer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e
}

// sharedEngine returns the engine of the shared guests, for tests that need no metrics
// or tracer of their own in the sandbox.
func sharedEngine(t *testing.T) *sandbox.Engine {
	t.Helper()
	sharedFunctions(t)
	return shared.engine
}

// loadGuest loads the reactor guest in dir (relative to the repository root) with the
// limits of its fermion.toml, changed by edit when it is not nil, until the test ends.
func loadGuest(t *testing.T, e *sandbox.Engine, dir string, edit func(*sandbox.Spec)) *sandbox.Function {
	t.Helper()
	f, err := loadSpec(e, fermiontest.Root(t), dir, fermiontest.Guest(t, dir, true), edit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		f.Close(ctx)
	})
	return f
}

// serve starts a real HTTP server on 127.0.0.1 for g and returns its base URL.
func serve(t *testing.T, g *gateway.Gateway) string {
	t.Helper()
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return srv.URL
}

func setRoutes(t *testing.T, g *gateway.Gateway, routes ...gateway.Route) {
	t.Helper()
	if err := g.SetRoutes(routes); err != nil {
		t.Fatal(err)
	}
}

type response struct {
	status int
	header http.Header
	body   string
}

// do sends one request and reads the whole response.
func do(t *testing.T, method, url string, header http.Header, body io.Reader) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func get(t *testing.T, url string, header http.Header) response {
	t.Helper()
	return do(t, http.MethodGet, url, header, nil)
}

// echoed is the JSON document of the echo guest.
type echoed struct {
	Method  string              `json:"method"`
	Path    string              `json:"path"`
	Query   string              `json:"query"`
	Host    string              `json:"host"`
	Headers map[string][]string `json:"headers"`
	Body    string              `json:"body"`
}

func decodeEcho(t *testing.T, r response) echoed {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("echo status %d: %s", r.status, r.body)
	}
	var e echoed
	if err := json.Unmarshal([]byte(r.body), &e); err != nil {
		t.Fatalf("echo body is not JSON: %v\n%s", err, r.body)
	}
	return e
}

// header returns the guest's view of one request header.
func (e echoed) header(name string) string {
	for k, vs := range e.Headers {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}

// metricValue returns a counter's or gauge's value, or a histogram's sample count, for
// the series of name whose labels include labels (0 when there is none).
func metricValue(t *testing.T, m *telemetry.Metrics, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, s := range mf.GetMetric() {
			if !hasLabels(s, labels) {
				continue
			}
			switch {
			case s.Counter != nil:
				return s.Counter.GetValue()
			case s.Gauge != nil:
				return s.Gauge.GetValue()
			case s.Histogram != nil:
				return float64(s.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

// waitMetric waits for metricValue to be want: the gateway records a request just
// after writing its response, so a client can read the response first.
func waitMetric(t *testing.T, m *telemetry.Metrics, name string, labels map[string]string, want float64) {
	t.Helper()
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if got := metricValue(t, m, name, labels); got != want {
			return fmt.Errorf("%s%v = %v, want %v", name, labels, got, want)
		}
		return nil
	})
}

func hasLabels(s *dto.Metric, want map[string]string) bool {
	n := 0
	for _, lp := range s.GetLabel() {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// checkIDs checks that a response carries a request id and a W3C traceparent and
// returns the trace id.
func checkIDs(t *testing.T, r response) (requestID, traceID string) {
	t.Helper()
	requestID = r.header.Get("X-Request-Id")
	if requestID == "" {
		t.Fatalf("response has no X-Request-Id; headers %v", r.header)
	}
	tp := r.header.Get("Traceparent")
	m := traceparent.FindStringSubmatch(tp)
	if m == nil {
		t.Fatalf("response traceparent %q is not W3C trace context", tp)
	}
	return requestID, m[1]
}

func newLogger(buf io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
