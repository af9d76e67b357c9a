package sandbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

// version is the version every test function is loaded with; metrics are labelled with it.
const version = "1.0.0"

// cacheDir is a compilation cache shared by every engine of this test binary and the
// other packages' (fermiontest.CompileCacheDir), so each guest is compiled by wazero
// once rather than once per test.
var cacheDir string

func TestMain(m *testing.M) {
	// Engines built with workerEngine re-run this binary as their compile worker.
	if len(os.Args) > 1 && os.Args[1] == sandbox.CompileWorkerArg {
		os.Exit(sandbox.CompileWorkerMain(os.Args[2:], os.Stdin, os.Stderr))
	}
	dir, err := fermiontest.CompileCacheDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cacheDir = dir
	os.Exit(m.Run())
}

// Guest directories, relative to the repository root.
const (
	guestHello  = "examples/hello"
	guestEcho   = "examples/echo"
	guestEnrich = "examples/enrich"
	guestCGI    = "examples/cgi"
	guestLoop   = "examples/testdata/faults/loop"
	guestOOM    = "examples/testdata/faults/oom"
	guestPanic  = "examples/testdata/faults/panic"
	guestFlood  = "examples/testdata/faults/flood"
	guestFile   = "examples/testdata/faults/file"
	guestDial   = "examples/testdata/faults/dial"
	guestSlow   = "examples/testdata/faults/slow"
	guestBadCGI = "examples/testdata/faults/badcgi"
)

// reactor builds (once per test binary) a reactor guest.
func reactor(t *testing.T, dir string) []byte {
	t.Helper()
	return fermiontest.Guest(t, dir, true)
}

// command builds (once per test binary) a WASI command guest.
func command(t *testing.T, dir string) []byte {
	t.Helper()
	return fermiontest.Guest(t, dir, false)
}

// spec returns a Spec with roomy limits, no warm instances and no capabilities.
func spec(name string, wasm []byte) sandbox.Spec {
	return sandbox.Spec{
		Name: name, Version: version, Wasm: wasm,
		Limits: manifest.Limits{MemoryBytes: 64 << 20, Timeout: 5 * time.Second, MaxRequestBody: 1 << 20,
			MaxResponseBody: 1 << 20, MaxConcurrency: 4, QueueTimeout: 100 * time.Millisecond},
		Scaling: manifest.Scaling{MinWarm: 0, MaxInstances: 4, IdleTimeout: time.Minute},
	}
}

// newEngine returns an engine recording into fresh metrics, logging into a buffer that
// the returned logs reads.
func newEngine(t *testing.T) (*sandbox.Engine, *telemetry.Metrics) {
	t.Helper()
	e, m, _ := newEngineWithLogs(t)
	return e, m
}

func newEngineWithLogs(t *testing.T) (*sandbox.Engine, *telemetry.Metrics, *fermiontest.SyncBuffer) {
	t.Helper()
	m := telemetry.NewMetrics("test")
	logs := &fermiontest.SyncBuffer{}
	e, err := sandbox.NewEngine(sandbox.EngineConfig{
		CacheDir: cacheDir, CompileWorkers: 2, Metrics: m,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e, m, logs
}

func load(t *testing.T, e *sandbox.Engine, s sandbox.Spec) *sandbox.Function {
	t.Helper()
	f, err := e.Load(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := f.Close(ctx); err != nil {
			t.Errorf("close %s: %v", s.Name, err)
		}
	})
	return f
}

func get(uri string) *sandbox.Request {
	return &sandbox.Request{ID: "t", Method: "GET", URI: uri, Host: "localhost", RemoteAddr: "127.0.0.1:1234", Header: http.Header{}}
}

func post(uri string, body []byte) *sandbox.Request {
	r := get(uri)
	r.Method = "POST"
	r.Body = body
	r.Header.Set("Content-Type", "application/json")
	return r
}

// invoke runs one request, bounded in time whatever the function's limits.
func invoke(t *testing.T, f *sandbox.Function, req *sandbox.Request) (*sandbox.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return f.Invoke(ctx, req)
}

// wantOK invokes req and fails unless the function answers 200 with a body containing want.
func wantOK(t *testing.T, f *sandbox.Function, req *sandbox.Request, want string) *sandbox.Response {
	t.Helper()
	resp, err := invoke(t, f, req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URI, err)
	}
	if resp.Status != http.StatusOK || !strings.Contains(string(resp.Body), want) {
		t.Fatalf("%s %s: got %d %q, want 200 containing %q", req.Method, req.URI, resp.Status, truncate(resp.Body), want)
	}
	return resp
}

// wantError fails unless err is a *sandbox.Error with status and reason.
func wantError(t *testing.T, resp *sandbox.Response, err error, status int, reason string) *sandbox.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got response %d %q, want error %d %s", resp.Status, truncate(resp.Body), status, reason)
	}
	var se *sandbox.Error
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *sandbox.Error", err, err)
	}
	if se.Status != status || se.Reason != reason {
		t.Fatalf("error %q: status %d reason %q, want %d %q", se.Error(), se.Status, se.Reason, status, reason)
	}
	if se.Msg == "" {
		t.Fatalf("error with status %d has no message for the client", se.Status)
	}
	return se
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// toFloat64 reads a counter or gauge, like prometheus/testutil.ToFloat64 (which this
// module cannot import without a new go.sum entry for its diff dependency).
func toFloat64(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	go func() { c.Collect(ch); close(ch) }()
	var out float64
	n := 0
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			panic(err)
		}
		switch {
		case pb.Counter != nil:
			out = pb.Counter.GetValue()
		case pb.Gauge != nil:
			out = pb.Gauge.GetValue()
		case pb.Untyped != nil:
			out = pb.Untyped.GetValue()
		default:
			panic("toFloat64: not a counter or gauge")
		}
		n++
	}
	if n != 1 {
		panic(fmt.Sprintf("toFloat64: collected %d metrics, want 1", n))
	}
	return out
}

// Metric readers; name is the function name, the version is always version.

func traps(m *telemetry.Metrics, name string) float64 {
	return toFloat64(m.Traps.WithLabelValues(name, version))
}

func discards(m *telemetry.Metrics, name, reason string) float64 {
	return toFloat64(m.Discards.WithLabelValues(name, version, reason))
}

func rejections(m *telemetry.Metrics, name, limit string) float64 {
	return toFloat64(m.LimitRejections.WithLabelValues(name, version, limit))
}

func outbound(m *telemetry.Metrics, name, result string) float64 {
	return toFloat64(m.Outbound.WithLabelValues(name, version, result))
}

func coldStarts(m *telemetry.Metrics, name string) float64 {
	return toFloat64(m.ColdStarts.WithLabelValues(name, version))
}

func logDropped(m *telemetry.Metrics, name string) float64 {
	return toFloat64(m.GuestLogDropped.WithLabelValues(name, version))
}

func warmGauge(m *telemetry.Metrics, name string) float64 { return instanceGauge(m, name, "warm") }

func busyGauge(m *telemetry.Metrics, name string) float64 { return instanceGauge(m, name, "busy") }

// instanceGauge scrapes fermion_instances{function=name,state=state}, as Prometheus would
// (the gauge is read from the pool at each scrape); -1 when the series does not exist.
func instanceGauge(m *telemetry.Metrics, name, state string) float64 {
	return scrapeGauge(m, "fermion_instances", map[string]string{"function": name, "version": version, "state": state})
}

// memoryGauge scrapes fermion_instance_memory_bytes{function=name}; -1 when absent.
func memoryGauge(m *telemetry.Metrics, name string) float64 {
	return scrapeGauge(m, "fermion_instance_memory_bytes", map[string]string{"function": name, "version": version})
}

func scrapeGauge(m *telemetry.Metrics, metric string, want map[string]string) float64 {
	mfs, err := m.Registry.Gather()
	if err != nil {
		panic(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != metric {
			continue
		}
	series:
		for _, s := range mf.GetMetric() {
			for _, lp := range s.GetLabel() {
				if want[lp.GetName()] != lp.GetValue() {
					continue series
				}
			}
			return s.GetGauge().GetValue()
		}
	}
	return -1
}

// wantMetric fails unless got equals want.
func wantMetric(t *testing.T, what string, got, want float64) {
	t.Helper()
	if got != want {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

// wantStats waits until the pool settles to want: discards and top-ups finish in the
// background after a request returns.
func wantStats(t *testing.T, f *sandbox.Function, want sandbox.Stats) {
	t.Helper()
	fermiontest.WaitFor(t, 5*time.Second, func() error {
		if s := f.Stats(); s != want {
			return fmt.Errorf("stats %+v, want %+v", s, want)
		}
		return nil
	})
}

func TestHelloReactor(t *testing.T) {
	e, m := newEngine(t)
	s := spec("hello", reactor(t, guestHello))
	s.Scaling.MinWarm = 1
	f := load(t, e, s)
	if f.ABI() != sandbox.ABIReactor {
		t.Fatalf("abi = %s", f.ABI())
	}
	for i := 0; i < 3; i++ {
		resp := wantOK(t, f, get("/hello"), "Hello from Fermion!")
		if resp.Cold {
			t.Fatal("prewarmed instance reported cold")
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
			t.Fatalf("content-type %q", ct)
		}
	}
	wantStats(t, f, sandbox.Stats{Warm: 1, Total: 1})
	wantMetric(t, "cold starts", coldStarts(m, "hello"), 0)
	wantMetric(t, "warm gauge", warmGauge(m, "hello"), 1)
	wantMetric(t, "busy gauge", busyGauge(m, "hello"), 0)
}

// TestReply: responses decoded into one Request.Reply, request after request, each
// carry exactly their own body and headers, whatever the sizes before them (a buffer
// kept from a smaller or larger response is never read past its own); without a
// Reply, an earlier response stays intact after later ones.
func TestReply(t *testing.T) {
	e, _ := newEngine(t)
	f := load(t, e, spec("echo", reactor(t, guestEcho)))
	var reply sandbox.Response
	var kept []*sandbox.Response
	for i, n := range []int{10, 1500, 5000, 3, 1900, 0} {
		body := []byte(strings.Repeat(string(rune('a'+i)), n))
		for _, useReply := range []bool{true, false} {
			req := post("/echo", body)
			if useReply {
				req.Reply = &reply
			}
			resp, err := f.Invoke(context.Background(), req)
			if err != nil {
				t.Fatalf("body of %d bytes: %v", n, err)
			}
			if useReply != (resp == &reply) {
				t.Fatalf("body of %d bytes, reply %v: response decoded into the reply = %v", n, useReply, resp == &reply)
			}
			var got struct{ Body string }
			if err := json.Unmarshal(resp.Body, &got); err != nil || got.Body != string(body) {
				t.Fatalf("body of %d bytes, reply %v: echoed %q (%v)", n, useReply, resp.Body, err)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("body of %d bytes, reply %v: content-type %q", n, useReply, ct)
			}
			if !useReply {
				kept = append(kept, resp)
			}
		}
	}
	for i, resp := range kept {
		var got struct{ Body string }
		if err := json.Unmarshal(resp.Body, &got); err != nil || (len(got.Body) > 0 && got.Body[0] != byte('a'+i)) {
			t.Fatalf("response %d without a reply changed after later requests: %q", i, resp.Body)
		}
	}
}
