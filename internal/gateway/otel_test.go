package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/gateway"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

func spanAttr(s sdktrace.ReadOnlySpan, key string) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// TestTracingSpans records spans with the OpenTelemetry SDK: one request gives a server
// span that continues the caller's trace, with the sandbox's spans as its children.
func TestTracingSpans(t *testing.T) {
	const (
		parentTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
		parentSpan  = "00f067aa0ba902b7"
	)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	metrics := telemetry.NewMetrics("test")
	e := newEngine(t, engineOptions{metrics: metrics, tracer: tp.Tracer("fermion/sandbox")})
	warm := loadGuest(t, e, "examples/hello", nil)
	cold := loadGuest(t, e, "examples/hello", func(s *sandbox.Spec) { s.Name = "cold"; s.Scaling.MinWarm = 0 })
	g := gateway.New(gateway.Config{Metrics: metrics, Tracer: tp.Tracer("fermion/gateway"), Telemetry: true})
	setRoutes(t, g,
		gateway.Route{Prefix: "/hello", Target: warm},
		gateway.Route{Prefix: "/cold", Target: cold},
	)
	url := serve(t, g)

	tests := []struct {
		name     string
		path     string
		function string
		cold     bool
	}{
		{name: "warm instance", path: "/hello", function: "hello"},
		{name: "cold start", path: "/cold", function: "cold", cold: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exp.Reset()
			h := http.Header{}
			h.Set("Traceparent", "00-"+parentTrace+"-"+parentSpan+"-01")
			r := get(t, url+tt.path, h)
			if r.status != 200 {
				t.Fatalf("GET %s = %d %q", tt.path, r.status, r.body)
			}
			_, traceID := checkIDs(t, r)
			if traceID != parentTrace {
				t.Fatalf("response trace %s, want the caller's %s", traceID, parentTrace)
			}

			// The server span ends after the response is written.
			byName := map[string]sdktrace.ReadOnlySpan{}
			fermiontest.WaitFor(t, 10*time.Second, func() error {
				byName = map[string]sdktrace.ReadOnlySpan{}
				for _, s := range exp.GetSpans().Snapshots() {
					if s.SpanContext().TraceID().String() == parentTrace {
						byName[s.Name()] = s
					}
				}
				if _, ok := byName["HTTP GET "+tt.path]; !ok {
					return fmt.Errorf("no server span yet; spans %v", names(byName))
				}
				return nil
			})
			server := byName["HTTP GET "+tt.path]
			if server.SpanKind() != trace.SpanKindServer {
				t.Fatalf("server span kind %v", server.SpanKind())
			}
			if got := server.Parent().SpanID().String(); got != parentSpan || !server.Parent().IsRemote() {
				t.Fatalf("server span parent %s (remote %v), want the caller's span %s", got, server.Parent().IsRemote(), parentSpan)
			}
			if want := "00-" + parentTrace + "-" + server.SpanContext().SpanID().String() + "-01"; r.header.Get("Traceparent") != want {
				t.Fatalf("response traceparent %q, want the server span's %q", r.header.Get("Traceparent"), want)
			}
			for key, want := range map[string]attribute.Value{
				"http.response.status_code": attribute.IntValue(200),
				"http.route":                attribute.StringValue(tt.path),
				"fermion.function":          attribute.StringValue(tt.function),
				"fermion.request_id":        attribute.StringValue(r.header.Get("X-Request-Id")),
				"fermion.cold":              attribute.BoolValue(tt.cold),
			} {
				if got, ok := spanAttr(server, key); !ok || got != want {
					t.Fatalf("server span %s = %v, want %v", key, got.Emit(), want.Emit())
				}
			}
			if server.Status().Code == codes.Error {
				t.Fatalf("server span status %v for a 200", server.Status())
			}
			for _, child := range []string{"acquire instance", "guest execute"} {
				s, ok := byName[child]
				if !ok {
					t.Fatalf("no %q span in the request's trace; spans %v", child, names(byName))
				}
				if s.Parent().SpanID() != server.SpanContext().SpanID() {
					t.Fatalf("%q span's parent is %s, want the server span %s", child, s.Parent().SpanID(), server.SpanContext().SpanID())
				}
			}
			create, created := byName["create instance"]
			if created != tt.cold {
				t.Fatalf("create instance span present = %v, want %v; spans %v", created, tt.cold, names(byName))
			}
			if created && create.Parent().SpanID() != byName["acquire instance"].SpanContext().SpanID() {
				t.Fatal("create instance span is not a child of acquire instance")
			}
		})
	}
}

func names(m map[string]sdktrace.ReadOnlySpan) []string {
	var out []string
	for n := range m {
		out = append(out, n)
	}
	return out
}

// otlpCollector is a fake OTLP/HTTP collector that records what it is sent.
type otlpCollector struct {
	mu    sync.Mutex
	posts []otlpPost
}

type otlpPost struct {
	method, path, contentType string
	size                      int
	body                      []byte // an ExportTraceServiceRequest
}

func (c *otlpCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.posts = append(c.posts, otlpPost{method: r.Method, path: r.URL.Path, contentType: r.Header.Get("Content-Type"), size: len(b), body: b})
	c.mu.Unlock()
	// An empty ExportTraceServiceResponse is an empty protobuf message.
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

func (c *otlpCollector) received() []otlpPost {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]otlpPost(nil), c.posts...)
}

// TestOTLPExport proves telemetry.NewTracing wires an OTLP/HTTP exporter from the
// standard environment variables: after a request and Shutdown, the collector has the
// spans.
func TestOTLPExport(t *testing.T) {
	tests := []struct {
		name        string
		env         string // variable that names the collector
		path        string // appended to the collector's URL in env
		serviceName string // OTEL_SERVICE_NAME
		wantPath    string
		wantService string // service.name in the payload's resource
	}{
		{name: "OTEL_EXPORTER_OTLP_ENDPOINT", env: "OTEL_EXPORTER_OTLP_ENDPOINT", wantPath: "/v1/traces", wantService: "fermion-test"},
		{name: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", env: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", path: "/custom/traces", wantPath: "/custom/traces", wantService: "fermion-test"},
		{name: "OTEL_SERVICE_NAME wins", env: "OTEL_EXPORTER_OTLP_ENDPOINT", serviceName: "edge-gateway", wantPath: "/v1/traces", wantService: "edge-gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			col := &otlpCollector{}
			srv := httptest.NewServer(col)
			t.Cleanup(srv.Close)
			for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
				"OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
				"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_COMPRESSION",
				"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_RESOURCE_ATTRIBUTES"} {
				t.Setenv(k, "")
			}
			t.Setenv("OTEL_SERVICE_NAME", tt.serviceName)
			t.Setenv(tt.env, srv.URL+tt.path)

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			tracing, err := telemetry.NewTracing(ctx, "fermion-test", "test", nil)
			if err != nil {
				t.Fatal(err)
			}
			if !tracing.Exporting {
				t.Fatal("NewTracing is not exporting with an OTLP endpoint set")
			}
			e := newEngine(t, engineOptions{tracer: tracing.Tracer("fermion/sandbox")})
			hello := loadGuest(t, e, "examples/hello", nil)
			g := gateway.New(gateway.Config{Tracer: tracing.Tracer("fermion/gateway"), Telemetry: true})
			setRoutes(t, g, gateway.Route{Prefix: "/hello", Target: hello})
			gw := httptest.NewServer(g)
			t.Cleanup(gw.Close)

			if r := get(t, gw.URL+"/hello", nil); r.status != 200 {
				t.Fatalf("GET /hello = %d", r.status)
			}
			// The server span ends just after the response is written; closing the server
			// waits for the handler, so the span has ended before Shutdown flushes.
			gw.Close()
			if err := tracing.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			if len(col.received()) == 0 {
				t.Fatal("collector received nothing")
			}
			for _, p := range col.received() {
				if p.method != http.MethodPost || p.path != tt.wantPath || p.size == 0 {
					t.Fatalf("collector got %s %s with %d bytes, want a non-empty POST to %s", p.method, p.path, p.size, tt.wantPath)
				}
				if p.contentType != "application/x-protobuf" {
					t.Fatalf("collector got content type %q, want application/x-protobuf", p.contentType)
				}
				// The resource's service.name is a string value in the message: an
				// uncompressed payload holds its bytes as they are.
				if !bytes.Contains(p.body, []byte(tt.wantService)) {
					t.Fatalf("payload does not name service %q", tt.wantService)
				}
				if tt.wantService != "fermion-test" && bytes.Contains(p.body, []byte("fermion-test")) {
					t.Fatalf("payload still names the binary's service fermion-test despite OTEL_SERVICE_NAME")
				}
			}
		})
	}
}

// TestNewStartsNoSpan: creating a gateway records no span (it once started a "probe" span
// to see whether the tracer made ids, and every process start exported it as a stray
// root span), and the gateway still tells a recording tracer from a no-op one: the first
// records one server span per request, the second gets ids made by the gateway.
func TestNewStartsNoSpan(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	tests := []struct {
		name   string
		tracer trace.Tracer
		spans  int // recorded by one request
	}{
		{name: "sdk tracer", tracer: tp.Tracer("fermion/gateway"), spans: 1},
		{name: "no-op tracer", tracer: noop.NewTracerProvider().Tracer("fermion/gateway"), spans: 0},
		{name: "no tracer", tracer: nil, spans: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exp.Reset()
			g := gateway.New(gateway.Config{Tracer: tt.tracer, Telemetry: true})
			if got := exp.GetSpans(); len(got) != 0 {
				t.Fatalf("gateway.New recorded %d spans, the first named %q; want none", len(got), got[0].Name)
			}
			url := serve(t, g)
			r := get(t, url+"/nowhere", nil)
			if r.status != http.StatusNotFound {
				t.Fatalf("GET /nowhere = %d, want 404 (no routes)", r.status)
			}
			_, traceID := checkIDs(t, r)
			got := exp.GetSpans()
			if len(got) != tt.spans {
				t.Fatalf("one request recorded %d spans, want %d", len(got), tt.spans)
			}
			if tt.spans > 0 && got[0].SpanContext.TraceID().String() != traceID {
				t.Fatalf("span trace %s, response trace %s", got[0].SpanContext.TraceID(), traceID)
			}
		})
	}
}

// TestProcessStartExportsNoSpan: what `fermion run` and `fermion agent` do at start,
// the OTLP exporter set up from the environment and a gateway made on it, sends the
// collector nothing until a request comes (it once got a root span named "probe").
func TestProcessStartExportsNoSpan(t *testing.T) {
	col := &otlpCollector{}
	srv := httptest.NewServer(col)
	t.Cleanup(srv.Close)
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED",
		"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		t.Setenv(k, "")
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tracing, err := telemetry.NewTracing(ctx, "fermion-test", "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	gateway.New(gateway.Config{Tracer: tracing.Tracer("fermion/gateway"), Telemetry: true})
	if err := tracing.Shutdown(ctx); err != nil { // flushes whatever was recorded
		t.Fatalf("Shutdown: %v", err)
	}
	if got := col.received(); len(got) != 0 {
		t.Fatalf("the collector got %d exports from a start without requests, want none", len(got))
	}
}

// TestSandboxSpansUnderGatewayIDs: when the gateway records no spans but the sandbox
// does, the sandbox's spans still belong to the trace the client gets back (the
// gateway's ids reach a tracing function through the request's context), whether the
// gateway made the trace id or the caller sent it.
func TestSandboxSpansUnderGatewayIDs(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	e := newEngine(t, engineOptions{tracer: tp.Tracer("fermion/sandbox")})
	f := loadGuest(t, e, "examples/hello", nil)
	if !f.Traces() {
		t.Fatal("a function on an engine with a tracer says it does not trace")
	}
	g := gateway.New(gateway.Config{}) // no tracer: the gateway makes ids only
	setRoutes(t, g, gateway.Route{Prefix: "/hello", Target: f})
	url := serve(t, g)
	for _, tc := range []struct{ name, parent string }{
		{"ids made by the gateway", ""},
		{"caller's trace", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exp.Reset()
			h := http.Header{}
			if tc.parent != "" {
				h.Set("Traceparent", tc.parent)
			}
			r := get(t, url+"/hello", h)
			if r.status != 200 {
				t.Fatalf("GET /hello = %d %q", r.status, r.body)
			}
			_, traceID := checkIDs(t, r)
			spans := exp.GetSpans()
			if len(spans) == 0 {
				t.Fatal("the sandbox recorded no span")
			}
			for _, s := range spans {
				if got := s.SpanContext.TraceID().String(); got != traceID {
					t.Errorf("sandbox span %q in trace %s, want the response's %s", s.Name, got, traceID)
				}
			}
		})
	}
}
