package gateway

import (
	"context"
	"net/http"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
)

// TestTraceParent: a response continues the trace its request came with, from a
// traceparent header or, for a request handed over by another handler, from a span
// in its context; a request of the gateway's own server without a traceparent (whose
// Extract the gateway skips) starts a trace of its own every time. With and without a
// recording tracer.
func TestTraceParent(t *testing.T) {
	const (
		inTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
		inTP    = "00-" + inTrace + "-00f067aa0ba902b7-01"
	)
	ctxTrace, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	ctxSpan, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	spec := sandbox.Spec{Name: "fixed", Version: "1", Limits: manifest.Limits{MaxRequestBody: 1 << 20}}
	tests := []struct {
		name      string
		own       bool // the gateway's own server hands the request over
		header    string
		ctxParent bool
		want      string // the trace id the response must carry; "" a new one
	}{
		{name: "own server, none", own: true},
		{name: "own server, traceparent", own: true, header: inTP, want: inTrace},
		{name: "own server, empty traceparent", own: true, header: " "},
		{name: "elsewhere, none"},
		{name: "elsewhere, traceparent", header: inTP, want: inTrace},
		{name: "elsewhere, span in context", ctxParent: true, want: ctxTrace.String()},
		{name: "elsewhere, traceparent over span in context", header: inTP, ctxParent: true, want: inTrace},
	}
	for _, recording := range []bool{false, true} {
		cfg := Config{}
		if recording {
			tp := sdktrace.NewTracerProvider()
			t.Cleanup(func() { tp.Shutdown(context.Background()) })
			cfg = Config{Telemetry: true, Tracer: tp.Tracer("test")}
		}
		g := New(cfg)
		if err := g.SetRoutes([]Route{{Prefix: "/hello", Target: &fixedTarget{spec: spec}}}); err != nil {
			t.Fatal(err)
		}
		for _, tt := range tests {
			name := tt.name
			if recording {
				name += ", recording"
			}
			t.Run(name, func(t *testing.T) {
				seen := map[string]bool{}
				for range 3 {
					var r *http.Request
					if tt.own {
						r = ownServerRequest(t, 1)
					} else {
						r = httpRequest(t)
					}
					if tt.ctxParent {
						sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: ctxTrace, SpanID: ctxSpan, TraceFlags: trace.FlagsSampled})
						r = r.WithContext(trace.ContextWithSpanContext(r.Context(), sc))
					}
					if tt.header != "" {
						r.Header.Set("Traceparent", tt.header)
					}
					w := new(fermiontest.ServerWriter)
					g.ServeHTTP(w, r)
					tp := w.Header().Get("Traceparent")
					if len(tp) != 55 {
						t.Fatalf("Traceparent %q is no W3C traceparent", tp)
					}
					got := tp[3:35]
					if tt.want != "" && got != tt.want {
						t.Fatalf("trace id %s, want %s continued", got, tt.want)
					}
					if tt.want == "" {
						if got == inTrace || got == ctxTrace.String() || seen[got] {
							t.Fatalf("trace id %s is not a new one", got)
						}
						seen[got] = true
					}
					w.Finish()
				}
			})
		}
	}
}

// BenchmarkNoParent is a request of the gateway's own server without a traceparent
// (whose Extract and context walk the gateway skips), through ServeHTTP into a header
// map cleared between requests, with nothing recording spans.
func BenchmarkNoParent(b *testing.B) {
	g := New(Config{})
	spec := sandbox.Spec{Name: "fixed", Version: "1", Limits: manifest.Limits{MaxRequestBody: 1 << 20}}
	if err := g.SetRoutes([]Route{{Prefix: "/hello", Target: &fixedTarget{spec: spec}}}); err != nil {
		b.Fatal(err)
	}
	// The context of a request of net/http's server: its values and two cancels.
	ctx := context.WithValue(context.Background(), http.ServerContextKey, &http.Server{})
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, nil)
	ctx = context.WithValue(ctx, connKey{}, &trackedConn{l: &connLimiter{epoch: time.Now()}})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ctx, cancel2 := context.WithCancel(ctx)
	defer cancel2()
	r := ownServerRequest(b, 1).WithContext(ctx)
	w := &headerWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		g.ServeHTTP(w, r)
	}
}
