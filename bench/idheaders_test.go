package bench

import (
	"context"
	"net/http"
	"testing"

	"fermion.dev/fermion/bench/internal/bare"
	"fermion.dev/fermion/internal/fermiontest"
)

// BenchmarkGuestIDHeaders is bare wazero serving the ABI-only guest in-process, without
// and with the two headers the gateway adds to every request and response (request id,
// traceparent): what those ids cost the guest, which decodes every header, and the
// server, apart from the gateway's code that makes them (fermion-bench's ladder, rung 3).
func BenchmarkGuestIDHeaders(b *testing.B) {
	wasm := fermiontest.Guest(b, "examples/testdata/abi/minimal", true)
	ctx := context.Background()
	srv, err := bare.New(ctx, wasm, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close(ctx)
	for _, tc := range []struct {
		name string
		ids  bool
	}{{"without", false}, {"with", true}} {
		b.Run(tc.name, func(b *testing.B) {
			r, err := http.NewRequest("GET", "http://bench/hello", nil)
			if err != nil {
				b.Fatal(err)
			}
			w := discardWriter{h: make(http.Header, 4)}
			b.ReportAllocs()
			reportCPU(b, func() {
				clear(r.Header)
				r.Header["User-Agent"] = benchUA
				clear(w.h)
				if tc.ids {
					r.Header["X-Request-Id"], r.Header["Traceparent"] = benchID, benchTP
					w.h["X-Request-Id"], w.h["Traceparent"] = benchID, benchTP
				}
				srv.ServeHTTP(&w, r)
			})
		})
	}
}

var (
	benchUA = []string{"wrk"}
	benchID = []string{"0123456789abcdef0123456789abcdef"}
	benchTP = []string{"00-0123456789abcdef0123456789abcdef-0123456789abcdef-01"}
)
