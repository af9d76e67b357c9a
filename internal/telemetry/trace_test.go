package telemetry_test

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"fermion.dev/fermion/internal/telemetry"
)

// The gateway formats the traceparent itself; it must be what the propagator writes,
// also when it comes with a request id in one string.
func TestTraceparentMatchesPropagator(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	prevID := ""
	for i := 0; i < 2000; i++ {
		var cfg trace.SpanContextConfig
		for j := range cfg.TraceID {
			cfg.TraceID[j] = byte(r.Uint32())
		}
		for j := range cfg.SpanID {
			cfg.SpanID[j] = byte(r.Uint32())
		}
		cfg.TraceFlags = trace.TraceFlags(r.Uint32())
		sc := trace.NewSpanContext(cfg)
		if !sc.IsValid() {
			continue
		}
		h := http.Header{}
		telemetry.Propagator.Inject(trace.ContextWithSpanContext(context.Background(), sc), propagation.HeaderCarrier(h))
		got := telemetry.Traceparent(sc)
		if want := h.Get("Traceparent"); got != want {
			t.Fatalf("Traceparent(%v) = %q, propagator wrote %q", cfg, got, want)
		}
		if got[3:35] != sc.TraceID().String() {
			t.Fatalf("trace id of %q is not %s", got, sc.TraceID())
		}
		tp, id := telemetry.TraceparentAndRequestID(sc)
		if tp != got {
			t.Fatalf("TraceparentAndRequestID(%v) traceparent = %q, Traceparent gave %q", cfg, tp, got)
		}
		if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" || id == prevID {
			t.Fatalf("request id %q (previous %q): want 32 new lower-case hex digits", id, prevID)
		}
		prevID = id
		back := telemetry.Propagator.Extract(context.Background(), propagation.HeaderCarrier(h))
		if bsc := trace.SpanContextFromContext(back); bsc.TraceID() != sc.TraceID() || bsc.SpanID() != sc.SpanID() {
			t.Fatalf("%q does not parse back to %v", got, sc)
		}
	}
}

// RequestCarrier must extract what propagation.HeaderCarrier extracts from the headers
// net/http hands the gateway.
func TestRequestCarrierMatchesHeaderCarrier(t *testing.T) {
	for _, raw := range []map[string]string{
		{},
		{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", "tracestate": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"},
		{"Traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03", "TRACESTATE": "a=1"},
		{"traceparent": "garbage", "tracestate": "a=1"},
		{"traceparent": "00-00000000000000000000000000000000-b7ad6b7169203331-01"},
	} {
		h := http.Header{}
		for k, v := range raw {
			h.Set(k, v) // canonical, as net/http stores incoming headers
		}
		want := trace.SpanContextFromContext(telemetry.Propagator.Extract(context.Background(), propagation.HeaderCarrier(h)))
		got := trace.SpanContextFromContext(telemetry.Propagator.Extract(context.Background(), telemetry.RequestCarrier(h)))
		if !got.Equal(want) || got.TraceState().String() != want.TraceState().String() {
			t.Fatalf("%v: RequestCarrier extracted %v, HeaderCarrier %v", raw, got, want)
		}
	}
}
