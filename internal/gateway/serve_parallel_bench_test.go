package gateway

import (
	"context"
	"net/http"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/telemetry"
)

// BenchmarkServeHTTPParallel is BenchmarkServeHTTPFixed's gateway and handler from
// GOMAXPROCS goroutines at once, each with a keep-alive connection of its own: run with
// -cpu 1,2, it shows what requests on two cores cost each other through the words they
// all write (cache lines moving between the cores), which one goroutine never sees.
// ns/op is wall time per request; cpu-ns/op, the process's CPU per request, is what
// to compare on a shared machine.
func BenchmarkServeHTTPParallel(b *testing.B) {
	// Telemetry on: metrics (the in-flight gauge among them), no spans, no log lines.
	on := New(Config{Telemetry: true, Metrics: telemetry.NewMetrics("bench")})
	if err := on.SetRoutes(fixedGateway(b).Routes()); err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{{"gateway", fixedGateway(b)}, {"gateway-telemetry", on}, {"handler", fixedHandler}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			start := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				r := parallelRequest(b.Context())
				w := new(fermiontest.ServerWriter)
				for pb.Next() {
					clear(r.Header)
					r.Header["User-Agent"] = []string{"wrk"}
					tc.h.ServeHTTP(w, r)
					if w.Finish() != http.StatusOK {
						panic("request failed") // b.Fatal belongs to the benchmark's goroutine
					}
				}
			})
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		})
	}
}

// parallelRequest is ownServerRequest's HTTP/1 request, on a connection of its own,
// for a goroutine that may not call b.Fatal.
func parallelRequest(ctx context.Context) *http.Request {
	conn := &trackedConn{l: &connLimiter{epoch: time.Now()}}
	r, err := http.NewRequestWithContext(context.WithValue(ctx, connKey{}, conn), "GET", "http://bench/hello", nil)
	if err != nil {
		panic(err)
	}
	r.RemoteAddr = "127.0.0.1:1234"
	r.Header = http.Header{"User-Agent": {"wrk"}}
	return r
}
