package telemetry

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Propagator is the W3C trace-context propagator used on every hop.
var Propagator = propagation.TraceContext{}

// Tracing is a tracer and the function that flushes and stops it.
type Tracing struct {
	Provider trace.TracerProvider
	// Exporting is true when spans leave the process (an OTLP endpoint is configured).
	Exporting bool
	shutdown  func(context.Context) error
	spool     *Spool // nil without export or without a spool
}

// Collectors are the metrics of the export path (the spool's), for the registry that
// serves /metrics; none without a spool.
func (t *Tracing) Collectors() []prometheus.Collector {
	if t.spool == nil {
		return nil
	}
	return t.spool.Collectors()
}

// Tracer returns the named tracer.
func (t *Tracing) Tracer(name string) trace.Tracer { return t.Provider.Tracer(name) }

// Shutdown flushes buffered spans and stops the exporter; with a spool, what the
// collector did not take stays on disk for the next run.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t.shutdown == nil {
		return nil
	}
	err := t.shutdown(ctx)
	if t.spool != nil {
		t.spool.Close()
	}
	return err
}

// NewTracing returns an OTLP/HTTP tracer provider when OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (and OTEL_TRACES_EXPORTER is not "none");
// the exporter reads the rest of the standard OTEL_EXPORTER_OTLP_* variables itself.
// Otherwise it returns a no-op provider: the gateway still propagates trace context.
// With spool, exports the collector cannot take wait on disk (see spool.go).
func NewTracing(ctx context.Context, service, version string, spool *SpoolConfig) (*Tracing, error) {
	if !otlpConfigured() {
		return &Tracing{Provider: noop.NewTracerProvider()}, nil
	}
	var opts []otlptracehttp.Option
	var sp *Spool
	if spool != nil {
		var err error
		if sp, err = NewSpool(*spool, nil); err != nil {
			return nil, err
		}
		opts = append(opts, otlptracehttp.WithHTTPClient(&http.Client{Transport: sp}))
	}
	client := otlptracehttp.NewClient(opts...)
	exp, err := otlptrace.New(ctx, client) // starts the client
	if err != nil {
		if sp != nil {
			sp.Close()
		}
		return nil, fmt.Errorf("create otlp trace exporter: %w", err)
	}
	if sp != nil {
		sp.SetProbe(func(ctx context.Context) error { return client.UploadTraces(ctx, nil) })
	}
	// The SDK's defaults, then service name and version, then the environment
	// (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES), each overriding the one before: an
	// operator's naming wins over the binary's. Schemaless, so the merge never fails on a
	// semconv schema mismatch with the SDK's default resource.
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceName(service), semconv.ServiceVersion(version)))
	if err == nil {
		res, err = resource.Merge(res, resource.Environment())
	}
	if err != nil {
		res = resource.Default()
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &Tracing{Provider: tp, Exporting: true, shutdown: tp.Shutdown, spool: sp}, nil
}

func otlpConfigured() bool {
	if strings.EqualFold(os.Getenv("OTEL_TRACES_EXPORTER"), "none") || strings.EqualFold(os.Getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// NewSpanContext returns a sampled span context that continues parent's trace (or starts
// a new one), for when the tracer does not record and so makes no ids of its own: every
// response still carries a traceparent a caller can correlate with logs.
func NewSpanContext(parent trace.SpanContext) trace.SpanContext {
	cfg := trace.SpanContextConfig{TraceFlags: trace.FlagsSampled}
	if parent.IsValid() {
		cfg.TraceID = parent.TraceID()
		cfg.TraceFlags = parent.TraceFlags()
		cfg.TraceState = parent.TraceState()
	} else {
		binary.BigEndian.PutUint64(cfg.TraceID[:8], rand.Uint64())
		binary.BigEndian.PutUint64(cfg.TraceID[8:], rand.Uint64()|1)
	}
	binary.BigEndian.PutUint64(cfg.SpanID[:], rand.Uint64()|1)
	return trace.NewSpanContext(cfg)
}

// NewRequestID returns a random 16-byte hex id.
func NewRequestID() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], rand.Uint64())
	binary.BigEndian.PutUint64(b[8:], rand.Uint64())
	var out [32]byte
	encodeHex(out[:], b[:])
	return string(out[:])
}

// Traceparent formats sc as a W3C traceparent header value (version 00), byte for byte
// as Propagator.Inject does, keeping only the spec's flags (sampled and random); the
// trace id is the value's [3:35]. sc must be valid.
func Traceparent(sc trace.SpanContext) string {
	var b [55]byte
	formatTraceparent(&b, sc)
	return string(b[:])
}

func formatTraceparent(b *[55]byte, sc trace.SpanContext) {
	tid, sid := sc.TraceID(), sc.SpanID()
	flags := [1]byte{byte(sc.TraceFlags() & (trace.FlagsSampled | trace.FlagsRandom))}
	b[0], b[1], b[2], b[35], b[52] = '0', '0', '-', '-', '-'
	encodeHex(b[3:35], tid[:])
	encodeHex(b[36:52], sid[:])
	encodeHex(b[53:55], flags[:])
}

// encodeHex writes src to dst in lower-case hex, as hex.Encode does, one table load
// and one two-byte store a byte: every request formats 41 bytes (trace id, span id,
// flags, and its request id), ~70 ns with hex.Encode's two loads and two stores a
// byte against ~32 (BenchmarkTraceparentAndRequestID). dst holds 2*len(src) bytes.
func encodeHex(dst, src []byte) {
	if len(src) == 0 {
		return
	}
	_ = dst[2*len(src)-1]
	for i, c := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], hexPairs[c])
	}
}

// hexPairs holds each byte's two hex digits, the first in the low byte (stored
// little-endian, it comes first).
var hexPairs = func() (t [256]uint16) {
	const digits = "0123456789abcdef"
	for i := range t {
		t[i] = uint16(digits[i>>4]) | uint16(digits[i&15])<<8
	}
	return t
}()

// TraceparentAndRequestID returns sc's traceparent (as Traceparent formats it) and a new
// request id (as NewRequestID makes one), cut from one string: a request that needs both
// pays one allocation for them. sc must be valid.
func TraceparentAndRequestID(sc trace.SpanContext) (traceparent, id string) {
	var b [55 + 32]byte
	formatTraceparent((*[55]byte)(b[:55]), sc)
	var r [16]byte
	binary.BigEndian.PutUint64(r[:8], rand.Uint64())
	binary.BigEndian.PutUint64(r[8:], rand.Uint64())
	encodeHex(b[55:], r[:])
	s := string(b[:])
	return s[:55], s[55:]
}

// RequestCarrier reads the trace context from an incoming request's headers, which
// net/http has already canonicalised. propagation.HeaderCarrier canonicalises the
// propagator's lower-case names on every Get, allocating "Traceparent" and "Tracestate"
// anew for each request; this looks them up as they are stored.
type RequestCarrier http.Header

// Get implements propagation.TextMapCarrier.
func (c RequestCarrier) Get(key string) string {
	var vs []string
	switch key {
	case "traceparent":
		vs = c["Traceparent"]
	case "tracestate":
		vs = c["Tracestate"]
	default:
		return http.Header(c).Get(key)
	}
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// Set implements propagation.TextMapCarrier.
func (c RequestCarrier) Set(key, value string) { http.Header(c).Set(key, value) }

// Keys implements propagation.TextMapCarrier.
func (c RequestCarrier) Keys() []string { return propagation.HeaderCarrier(c).Keys() }
