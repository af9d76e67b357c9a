package bench

import (
	"context"
	"net/http"
	"testing"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/bench/internal/bare"
	"fermion.dev/fermion/internal/fermiontest"
)

// BenchmarkPlatformMinimal is issue 17's platform budget in process: the ABI-only
// guest (which allocates nothing) served by bare wazero's handler and by the gateway
// and sandbox (telemetry off), each request the same, with no socket and no client in
// the figures. The writer does what net/http's server does with a handler's header
// map per response (fermiontest.ServerWriter), since the headers Fermion adds cost most there.
// Without a connection of the gateway's own server each request allocates its
// exchange, which a keep-alive connection keeps: the allocation count is one higher
// than over a socket. Profile "fermion" with -cpuprofile against "bare".
func BenchmarkPlatformMinimal(b *testing.B) {
	srv := warmBareMinimal(b, 1)
	g := minimalGateway(b, false)
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{{"bare", srv}, {"fermion", g}} {
		b.Run(tc.name, func(b *testing.B) {
			r, cancel := serverRequest()
			defer cancel()
			r.Host, r.RemoteAddr = "bench", "127.0.0.1:1234"
			w := new(fermiontest.ServerWriter)
			for range 20000 { // the sandbox's instance grows as bare's did in Warm
				serveOne(b, tc.h, w, r)
			}
			b.ReportAllocs()
			reportCPU(b, func() { serveOne(b, tc.h, w, r) })
		})
	}
}

// warmBareMinimal starts bare wazero serving the ABI-only guest with the given number
// of instances, each grown as the sandbox's instance grows during its first requests
// (bare.Server.Warm); it is closed when b ends.
func warmBareMinimal(b *testing.B, instances int) *bare.Server {
	wasm := fermiontest.Guest(b, "examples/testdata/abi/minimal", true)
	ctx := context.Background()
	srv, err := bare.New(ctx, wasm, instances)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close(ctx) })
	if err := srv.Warm(ctx, 20000, &abi.Request{Method: "GET", URI: "/hello", Host: "bench",
		Headers: []abi.Header{{Name: "User-Agent", Value: "wrk"}}}); err != nil {
		b.Fatal(err)
	}
	return srv
}

func serveOne(b *testing.B, h http.Handler, w *fermiontest.ServerWriter, r *http.Request) {
	// net/http makes both maps per request: the request's sized for its fields.
	r.Header = make(http.Header, 1)
	r.Header["User-Agent"] = []string{"wrk"}
	h.ServeHTTP(w, r)
	if code := w.Finish(); code != 200 {
		b.Fatal(code)
	}
}
