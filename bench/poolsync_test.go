package bench

import (
	"context"
	"net/http"
	"testing"

	"fermion.dev/fermion/internal/sandbox"
)

// BenchmarkInvokeParallel is the ABI-only guest called in parallel, without HTTP: one
// goroutine per -cpu, each its own request, through bare wazero's instance pool (one
// buffered channel) and through the sandbox (telemetry off), whose concurrency slot and
// instance pool every request takes and gives back. Run with -cpu 1,2: with two
// goroutines on two cores, what requests share moves between the cores' caches, and
// cpu-ns/op shows what that costs beside the single-core figure. The sandbox's pool
// grows to one instance per goroutine before the timer starts.
func BenchmarkInvokeParallel(b *testing.B) {
	srv := warmBareMinimal(b, 2)
	f := loadMinimal(b, nil)
	for _, tc := range []struct {
		name string
		t    interface {
			Invoke(context.Context, *sandbox.Request) (*sandbox.Response, error)
		}
	}{{"bare", srv.Target(f.Spec())}, {"fermion", f}} {
		b.Run(tc.name, func(b *testing.B) {
			// b.Error, not b.Fatal: it runs on goroutines of its own.
			call := func(req *sandbox.Request) bool {
				resp, err := tc.t.Invoke(context.Background(), req)
				if err != nil || resp.Status != http.StatusOK {
					b.Error(resp, err)
					return false
				}
				return true
			}
			// Every instance grown as bare's were in Warm, and one per goroutine.
			warm := make(chan struct{})
			for range 2 {
				go func() {
					defer func() { warm <- struct{}{} }()
					req := invokeRequest()
					for i := 0; i < 20000 && call(req); i++ {
					}
				}()
			}
			<-warm
			<-warm
			b.ReportAllocs()
			start := cpuTime()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req := invokeRequest()
				for pb.Next() && call(req) {
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		})
	}
}

// invokeRequest is one goroutine's request, with a reply of its own to decode into, as
// the gateway keeps one per connection.
func invokeRequest() *sandbox.Request {
	return &sandbox.Request{ID: "x", Method: "GET", URI: "/hello", Host: "bench", RemoteAddr: "127.0.0.1:1234",
		Header: http.Header{"User-Agent": {"wrk"}}, CanonicalHeader: true, Reply: new(sandbox.Response)}
}
