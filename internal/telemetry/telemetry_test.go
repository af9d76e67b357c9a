package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/trace"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/telemetry"
)

func TestNewLogger(t *testing.T) {
	tests := []struct {
		level   string
		want    []string // messages that are written, of debug, info, warn, error
		wantErr bool
	}{
		{level: "", want: []string{"info", "warn", "error"}},
		{level: "info", want: []string{"info", "warn", "error"}},
		{level: "INFO", want: []string{"info", "warn", "error"}},
		{level: "debug", want: []string{"debug", "info", "warn", "error"}},
		{level: "warn", want: []string{"warn", "error"}},
		{level: "warning", want: []string{"warn", "error"}},
		{level: "error", want: []string{"error"}},
		{level: "verbose", wantErr: true},
		{level: "trace", wantErr: true},
		{level: " info", wantErr: true},
	}
	for _, tt := range tests {
		t.Run("level "+tt.level, func(t *testing.T) {
			var buf bytes.Buffer
			l, err := telemetry.NewLogger(&buf, tt.level)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("NewLogger(%q) succeeded, want an error", tt.level)
				}
				if !strings.Contains(err.Error(), tt.level) || !strings.Contains(err.Error(), "debug, info, warn or error") {
					t.Fatalf("error %q does not name the level and the choices", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			l.Debug("debug")
			l.Info("info", "k", "v")
			l.Warn("warn")
			l.Error("error")
			var got []string
			dec := json.NewDecoder(&buf)
			for {
				var rec map[string]any
				if err := dec.Decode(&rec); errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					t.Fatalf("log output is not JSON lines: %v", err)
				}
				got = append(got, rec["msg"].(string))
				if rec["msg"] == "info" && rec["k"] != "v" {
					t.Fatalf("attribute missing from %v", rec)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("level %q logged %v, want %v", tt.level, got, tt.want)
			}
		})
	}
}

func TestDiscard(t *testing.T) {
	if telemetry.Discard.Enabled(context.Background(), 12) {
		t.Fatal("Discard is enabled")
	}
	telemetry.Discard.Error("nothing happens")
}

func TestAdminHandler(t *testing.T) {
	m := telemetry.NewMetrics("1.2.3")
	m.Function("hello", "0.1.0").Request(0, 200, 0.01)
	notReady := errors.New("functions still loading")
	tests := []struct {
		name       string
		metrics    *telemetry.Metrics
		ready      func() error
		profiling  bool
		method     string
		path       string
		accept     string
		wantStatus int
		want       []string
	}{
		{name: "metrics", metrics: m, method: "GET", path: "/metrics", wantStatus: 200, want: []string{
			`fermion_build_info{goversion="go`, `version="1.2.3"} 1`,
			`fermion_requests_total{code="2xx",function="hello",version="0.1.0"} 1`,
			`fermion_request_duration_seconds_count{function="hello",version="0.1.0"} 1`,
			"go_goroutines", "process_",
		}},
		{name: "metrics as openmetrics", metrics: m, method: "GET", path: "/metrics", accept: "application/openmetrics-text; version=1.0.0", wantStatus: 200, want: []string{
			"fermion_requests_total", "# EOF",
		}},
		{name: "no metrics", metrics: nil, method: "GET", path: "/metrics", wantStatus: 404},
		{name: "healthz", metrics: m, method: "GET", path: "/healthz", wantStatus: 200, want: []string{"ok"}},
		{name: "healthz without metrics", metrics: nil, method: "GET", path: "/healthz", wantStatus: 200, want: []string{"ok"}},
		{name: "healthz head", metrics: m, method: "HEAD", path: "/healthz", wantStatus: 200},
		{name: "healthz post", metrics: m, method: "POST", path: "/healthz", wantStatus: 405},
		{name: "readyz without check", metrics: m, method: "GET", path: "/readyz", wantStatus: 200, want: []string{"ready"}},
		{name: "readyz ready", metrics: m, ready: func() error { return nil }, method: "GET", path: "/readyz", wantStatus: 200, want: []string{"ready"}},
		{name: "readyz not ready", metrics: m, ready: func() error { return notReady }, method: "GET", path: "/readyz", wantStatus: 503, want: []string{"not ready: functions still loading"}},
		{name: "unknown path", metrics: m, method: "GET", path: "/debug", wantStatus: 404},
		{name: "no profiles by default", metrics: m, method: "GET", path: "/debug/pprof/", wantStatus: 404},
		{name: "no heap profile by default", metrics: m, method: "GET", path: "/debug/pprof/heap", wantStatus: 404},
		{name: "profile index", metrics: m, profiling: true, method: "GET", path: "/debug/pprof/", wantStatus: 200, want: []string{"goroutine", "heap", "allocs"}},
		{name: "heap profile", metrics: m, profiling: true, method: "GET", path: "/debug/pprof/heap?debug=1", wantStatus: 200, want: []string{"heap profile:"}},
		{name: "goroutines", metrics: m, profiling: true, method: "GET", path: "/debug/pprof/goroutine?debug=1", wantStatus: 200, want: []string{"goroutine profile: total"}},
		{name: "cpu profile", metrics: m, profiling: true, method: "GET", path: "/debug/pprof/profile?seconds=1", wantStatus: 200, want: []string{"\x1f\x8b"}},
		{name: "unknown profile", metrics: m, profiling: true, method: "GET", path: "/debug/pprof/nope", wantStatus: 404},
		{name: "command line withheld", metrics: m, profiling: true, method: "GET", path: "/debug/pprof/cmdline", wantStatus: 404, want: []string{"may hold secrets"}},
		{name: "profiles beside metrics", metrics: m, profiling: true, method: "GET", path: "/metrics", wantStatus: 200, want: []string{"fermion_requests_total"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(telemetry.AdminHandler(telemetry.Admin{Gatherer: tt.metrics.Gatherer(), Ready: tt.ready, Profiling: tt.profiling}))
			defer srv.Close()
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("%s %s = %d %q, want %d", tt.method, tt.path, resp.StatusCode, b, tt.wantStatus)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(b), w) {
					t.Fatalf("%s %s body does not contain %q:\n%s", tt.method, tt.path, w, b)
				}
			}
		})
	}
}

func TestNewRequestID(t *testing.T) {
	format := regexp.MustCompile(`^[0-9a-f]{32}$`)
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := telemetry.NewRequestID()
		if !format.MatchString(id) {
			t.Fatalf("request id %q is not 32 lower-case hex digits", id)
		}
		if seen[id] {
			t.Fatalf("request id %q repeated", id)
		}
		seen[id] = true
	}
}

func TestNewSpanContext(t *testing.T) {
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	state, err := trace.ParseTraceState("vendor=abc")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		parent    trace.SpanContext
		continues bool
		wantFlags trace.TraceFlags
	}{
		{name: "no parent starts a sampled trace", parent: trace.SpanContext{}, wantFlags: trace.FlagsSampled},
		{name: "sampled parent", parent: trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled, TraceState: state, Remote: true,
		}), continues: true, wantFlags: trace.FlagsSampled},
		{name: "unsampled parent keeps its decision", parent: trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: traceID, SpanID: spanID, Remote: true,
		}), continues: true, wantFlags: 0},
		{name: "parent with only a trace id is invalid", parent: trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID}),
			wantFlags: trace.FlagsSampled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := telemetry.NewSpanContext(tt.parent)
			if !sc.IsValid() {
				t.Fatalf("span context %v is not valid", sc)
			}
			if sc.IsRemote() {
				t.Fatal("new span context is marked remote")
			}
			if tt.continues {
				if sc.TraceID() != tt.parent.TraceID() {
					t.Fatalf("trace id %s, want the parent's %s", sc.TraceID(), tt.parent.TraceID())
				}
				if sc.TraceState().String() != tt.parent.TraceState().String() {
					t.Fatalf("trace state %q, want the parent's %q", sc.TraceState(), tt.parent.TraceState())
				}
			} else if sc.TraceID() == traceID {
				t.Fatal("a new trace reused the invalid parent's trace id")
			}
			if sc.SpanID() == tt.parent.SpanID() {
				t.Fatal("span id is the parent's")
			}
			if sc.TraceFlags() != tt.wantFlags {
				t.Fatalf("flags %v, want %v", sc.TraceFlags(), tt.wantFlags)
			}
			if other := telemetry.NewSpanContext(tt.parent); other.SpanID() == sc.SpanID() {
				t.Fatal("two span contexts have the same span id")
			}
		})
	}
}

// counter returns the value of the series of name with exactly labels, and whether it
// exists.
func counter(t *testing.T, m *telemetry.Metrics, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	s := series(t, m, name, labels)
	if s == nil {
		return 0, false
	}
	return value(s), true
}

// series returns the series of name whose labels are exactly labels, or nil.
func series(t *testing.T, m *telemetry.Metrics, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, s := range mf.GetMetric() {
			if len(s.GetLabel()) != len(labels) {
				continue
			}
			for _, lp := range s.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			return s
		}
	}
	return nil
}

func value(s *dto.Metric) float64 {
	switch {
	case s.Counter != nil:
		return s.Counter.GetValue()
	case s.Gauge != nil:
		return s.Gauge.GetValue()
	case s.Histogram != nil:
		return float64(s.Histogram.GetSampleCount())
	}
	return 0
}

func TestFunctionMetricsRequest(t *testing.T) {
	tests := []struct {
		status int
		class  string
	}{
		{100, "1xx"}, {200, "2xx"}, {204, "2xx"}, {301, "3xx"}, {404, "4xx"}, {499, "4xx"},
		{500, "5xx"}, {503, "5xx"}, {599, "5xx"}, {999, "5xx"}, {0, "5xx"}, {99, "5xx"},
	}
	for _, tt := range tests {
		t.Run(tt.class+" "+http.StatusText(tt.status), func(t *testing.T) {
			m := telemetry.NewMetrics("test")
			m.Function("f", "1").Request(0, tt.status, 0.002)
			for _, class := range []string{"1xx", "2xx", "3xx", "4xx", "5xx"} {
				got, ok := counter(t, m, "fermion_requests_total", map[string]string{"function": "f", "version": "1", "code": class})
				if !ok {
					t.Fatalf("no %s series", class)
				}
				want := 0.0
				if class == tt.class {
					want = 1
				}
				if got != want {
					t.Fatalf("status %d: %s = %v, want %v", tt.status, class, got, want)
				}
			}
			if got, _ := counter(t, m, "fermion_request_duration_seconds", map[string]string{"function": "f", "version": "1"}); got != 1 {
				t.Fatalf("duration count %v, want 1", got)
			}
		})
	}
}

func TestFunctionMetricsRecorders(t *testing.T) {
	m := telemetry.NewMetrics("test")
	f := m.Function("f", "1")
	f.Error(telemetry.ReasonTrap)
	f.ColdStart()
	f.InstanceStarted(telemetry.StartPrewarm, 0.001, 0.002)
	f.Instances(func() telemetry.Pool { return telemetry.Pool{Warm: 1, Desired: 2, MemoryBytes: 4 << 20} })
	f.Instances(func() telemetry.Pool { return telemetry.Pool{Busy: 1, Desired: 1, MemoryBytes: 2 << 20} }) // a second pool of the same version adds up
	f.Discard(telemetry.ReasonIdle)
	f.Trap()
	f.LimitRejection(telemetry.LimitConcurrency)
	f.Outbound(telemetry.OutboundDenied)
	f.LogDropped(10)
	f.LogDropped(0)
	f.LogDropped(-5)
	f.Compiled(0.5)
	m.InFlightAdd(0, 1)
	fl := map[string]string{"function": "f", "version": "1"}
	with := func(k, v string) map[string]string {
		out := map[string]string{k: v}
		for lk, lv := range fl {
			out[lk] = lv
		}
		return out
	}
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"fermion_request_errors_total", with("reason", "trap"), 1},
		{"fermion_cold_starts_total", fl, 1},
		{"fermion_instance_start_seconds", with("phase", "instantiate"), 1},
		{"fermion_instance_start_seconds", with("phase", "init"), 1},
		{"fermion_instances", with("state", "warm"), 1},
		{"fermion_instances", with("state", "busy"), 1},
		{"fermion_instance_memory_bytes", fl, 6 << 20},
		{"fermion_instances_desired", fl, 3},
		{"fermion_instance_discards_total", with("reason", "idle"), 1},
		{"fermion_traps_total", fl, 1},
		{"fermion_limit_rejections_total", with("limit", "concurrency"), 1},
		{"fermion_outbound_requests_total", with("result", "denied"), 1},
		{"fermion_guest_log_dropped_bytes_total", fl, 10},
		{"fermion_compile_seconds", fl, 1},
		{"fermion_gateway_in_flight_requests", map[string]string{}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := counter(t, m, tt.name, tt.labels)
			if !ok || got != tt.want {
				t.Fatalf("%s%v = %v (present %v), want %v", tt.name, tt.labels, got, ok, tt.want)
			}
		})
	}
}

// TestNilMetrics: telemetry can be off without branches at call sites.
func TestNilMetrics(t *testing.T) {
	var m *telemetry.Metrics
	f := m.Function("f", "1")
	if f != nil {
		t.Fatal("nil Metrics gave a FunctionMetrics")
	}
	if m.Series("f", "1") != nil {
		t.Fatal("nil Metrics gave series")
	}
	m.Forget("f", "1")
	m.InFlightAdd(0, 1)
	f.Request(0, 200, 1)
	f.Error("x")
	f.ColdStart()
	f.InstanceStarted(telemetry.StartRequest, 1, 1)
	f.Instances(func() telemetry.Pool { return telemetry.Pool{Warm: 1, Busy: 1} })
	f.Discard("x")
	f.Trap()
	f.LimitRejection("x")
	f.Outbound("x")
	f.LogDropped(1)
	f.Compiled(1)
}

func TestForget(t *testing.T) {
	requests := func(m *telemetry.Metrics, version string) bool {
		_, ok := counter(t, m, "fermion_requests_total", map[string]string{"function": "f", "version": version, "code": "2xx"})
		return ok
	}
	t.Run("forget removes the series", func(t *testing.T) {
		m := telemetry.NewMetrics("test")
		m.Function("f", "1").Request(0, 200, 1)
		m.Function("f", "2").Request(0, 200, 1)
		m.Forget("f", "1")
		if requests(m, "1") {
			t.Fatal("f@1 series remain after Forget")
		}
		if !requests(m, "2") {
			t.Fatal("Forget of f@1 removed f@2")
		}
	})
	t.Run("a version loaded twice keeps its series until both forget", func(t *testing.T) {
		m := telemetry.NewMetrics("test")
		old := m.Function("f", "1")
		old.Request(0, 200, 1)
		next := m.Function("f", "1")
		m.Forget("f", "1") // the old instance of the version closes
		next.Request(0, 200, 1)
		got, ok := counter(t, m, "fermion_requests_total", map[string]string{"function": "f", "version": "1", "code": "2xx"})
		if !ok || got != 2 {
			t.Fatalf("f@1 2xx = %v (present %v) after the old holder forgot, want 2", got, ok)
		}
		m.Forget("f", "1")
		if requests(m, "1") {
			t.Fatal("f@1 series remain after both holders forgot")
		}
	})
	t.Run("forget removes the instance gauges", func(t *testing.T) {
		m := telemetry.NewMetrics("test")
		m.Function("f", "1").Instances(func() telemetry.Pool { return telemetry.Pool{Warm: 2, Busy: 1} })
		warm := map[string]string{"function": "f", "version": "1", "state": "warm"}
		if got, ok := counter(t, m, "fermion_instances", warm); !ok || got != 2 {
			t.Fatalf("warm = %v (present %v), want 2 from the pool", got, ok)
		}
		m.Forget("f", "1")
		if _, ok := counter(t, m, "fermion_instances", warm); ok {
			t.Fatal("f@1 instance gauges remain after Forget")
		}
	})
	t.Run("series does not hold", func(t *testing.T) {
		m := telemetry.NewMetrics("test")
		m.Function("f", "1")
		m.Series("f", "1").Request(0, 200, 1)
		m.Forget("f", "1")
		if requests(m, "1") {
			t.Fatal("Series kept f@1 after its only holder forgot")
		}
	})
	t.Run("forget without function", func(t *testing.T) {
		m := telemetry.NewMetrics("test")
		m.Series("f", "1").Request(0, 200, 1)
		m.Forget("f", "1")
		m.Forget("f", "1")
		if requests(m, "1") {
			t.Fatal("f@1 series remain after Forget")
		}
		m.Function("f", "1").Request(0, 200, 1)
		if !requests(m, "1") {
			t.Fatal("f@1 not recorded after extra Forgets")
		}
	})
}

func clearOTelEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
		"OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
		"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"} {
		t.Setenv(k, "")
	}
}

func TestNewTracing(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		exporting bool
	}{
		{name: "no endpoint", exporting: false},
		{name: "endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, exporting: true},
		{name: "traces endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1/v1/traces"}, exporting: true},
		{name: "exporter none", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_TRACES_EXPORTER": "none"}, exporting: false},
		{name: "sdk disabled", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_SDK_DISABLED": "TRUE"}, exporting: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearOTelEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			tr, err := telemetry.NewTracing(ctx, "svc", "1.0.0", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tr.Exporting != tt.exporting {
				t.Fatalf("Exporting = %v, want %v", tr.Exporting, tt.exporting)
			}
			_, span := tr.Tracer("test").Start(ctx, "op")
			if span.IsRecording() != tt.exporting {
				t.Fatalf("span recording = %v, want %v", span.IsRecording(), tt.exporting)
			}
			// Not sent anywhere: end nothing, so Shutdown has nothing to export.
			if err := tr.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
		})
	}
}

// TestNewTracingExports: spans reach an OTLP/HTTP collector named by the environment.
func TestNewTracingExports(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	var sizes []int
	col := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		paths = append(paths, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
		sizes = append(sizes, len(b))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer col.Close()
	clearOTelEnv(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", col.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tr, err := telemetry.NewTracing(ctx, "svc", "1.0.0", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.Tracer("test").Start(ctx, "op")
	span.End()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) == 0 {
		t.Fatal("the collector received nothing")
	}
	for i, p := range paths {
		if p != "POST /v1/traces application/x-protobuf" || sizes[i] == 0 {
			t.Fatalf("collector got %q with %d bytes, want a protobuf POST to /v1/traces", p, sizes[i])
		}
	}
}

// TestNewTracingSpoolsThroughAnOutage: with a spool, spans ended while the collector is
// down reach it once it is back, through the real OTLP exporter, and the spool's metrics
// are there for /metrics.
func TestNewTracingSpoolsThroughAnOutage(t *testing.T) {
	var down atomic.Bool
	var mu sync.Mutex
	var bodies [][]byte
	col := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		bodies = append(bodies, b)
		mu.Unlock()
	}))
	defer col.Close()
	clearOTelEnv(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", col.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dir := t.TempDir()
	tr, err := telemetry.NewTracing(ctx, "svc", "1.0.0", &telemetry.SpoolConfig{Dir: dir, Retry: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(ctx)
	if len(tr.Collectors()) == 0 {
		t.Fatal("no spool metrics to register")
	}
	flush := tr.Provider.(interface{ ForceFlush(context.Context) error }).ForceFlush
	down.Store(true)
	_, span := tr.Tracer("test").Start(ctx, "during-the-outage")
	span.End()
	if err := flush(ctx); err != nil {
		t.Fatalf("flush while the collector is down: %v (the spool should have taken it)", err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*.otlp")); len(files) != 1 {
		t.Fatalf("%d spooled exports, want 1", len(files))
	}
	down.Store(false)
	_, span = tr.Tracer("test").Start(ctx, "after-the-outage")
	span.End()
	if err := flush(ctx); err != nil {
		t.Fatal(err)
	}
	arrived := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, b := range bodies {
			if bytes.Contains(b, []byte("during-the-outage")) {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(10 * time.Second); !arrived(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the span ended during the outage has not arrived")
		}
	}
}

// TestNewTracingReplaysAnEarlierBacklogWithoutTraffic: a process that starts with spans
// spooled by an earlier run, and ends none of its own, still sends them once the
// collector answers, with the exporter's headers (learned from an empty export, which is
// never spooled itself).
func TestNewTracingReplaysAnEarlierBacklogWithoutTraffic(t *testing.T) {
	var down atomic.Bool
	var mu sync.Mutex
	var got []string // Authorization header of each non-empty export
	var empties, refusedEmpties atomic.Int32
	col := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if down.Load() {
			if len(b) == 0 {
				refusedEmpties.Add(1)
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if len(b) == 0 {
			empties.Add(1)
			return
		}
		if bytes.Contains(b, []byte("from-the-first-run")) {
			mu.Lock()
			got = append(got, r.Header.Get("Authorization"))
			mu.Unlock()
		}
	}))
	defer col.Close()
	clearOTelEnv(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", col.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20s3cret")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	cfg := &telemetry.SpoolConfig{Dir: dir, Retry: 20 * time.Millisecond}
	spooled := func() int {
		files, _ := filepath.Glob(filepath.Join(dir, "*.otlp"))
		return len(files)
	}

	down.Store(true)
	first, err := telemetry.NewTracing(ctx, "svc", "1.0.0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, span := first.Tracer("test").Start(ctx, "from-the-first-run")
	span.End()
	if err := first.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if n := spooled(); n != 1 {
		t.Fatalf("%d spooled exports after the first run, want 1", n)
	}

	second, err := telemetry.NewTracing(ctx, "svc", "1.0.0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Shutdown(ctx)
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if n := refusedEmpties.Load(); n < 3 {
			return fmt.Errorf("%d empty exports refused while the collector is down, want 3", n)
		}
		return nil
	})
	if n := spooled(); n != 1 {
		t.Fatalf("%d spooled exports while the collector is down, want 1: the empty export was kept", n)
	}
	down.Store(false)
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(got) == 0 {
			return errors.New("the first run's span has not arrived")
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "Bearer s3cret" {
		t.Fatalf("replayed with Authorization %q, want one replay with the exporter's header", got)
	}
	if n := spooled(); n != 0 || empties.Load() == 0 {
		t.Fatalf("%d exports still spooled, %d empty exports seen", n, empties.Load())
	}
}
