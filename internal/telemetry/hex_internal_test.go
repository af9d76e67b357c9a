package telemetry

import (
	"encoding/hex"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

// TestEncodeHex: encodeHex writes what hex.Encode writes, for every byte value and
// for the lengths the gateway formats.
func TestEncodeHex(t *testing.T) {
	var all [256]byte
	for i := range all {
		all[i] = byte(i)
	}
	for _, n := range []int{0, 1, 8, 16, 256} {
		src := all[256-n:]
		got, want := make([]byte, 2*n), make([]byte, 2*n)
		encodeHex(got, src)
		hex.Encode(want, src)
		if string(got) != string(want) {
			t.Errorf("encodeHex of %d bytes = %q, hex.Encode gives %q", n, got, want)
		}
	}
}

// BenchmarkTraceparentAndRequestID is the ids a request without a caller's id gets:
// a span context's traceparent and a new request id, in one string.
func BenchmarkTraceparentAndRequestID(b *testing.B) {
	sc := NewSpanContext(trace.SpanContext{})
	b.ReportAllocs()
	for b.Loop() {
		tpSink, idSink = TraceparentAndRequestID(sc)
	}
}

var tpSink, idSink string
