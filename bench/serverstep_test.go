package bench

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"fermion.dev/fermion/internal/gateway"
)

// BenchmarkServerStep is the ladder's first step (fermion-bench gateway -ladder, rung 2
// less rung 1) without a guest: one fixed small response served over loopback TCP,
// keep-alive, by a default http.Server ("default") and by the gateway's own server
// configuration and connection limiter (Gateway.ServeHandler: header timeout,
// ConnState, ConnContext, trackedConn's lazy deadlines, the idle sweeper; "gateway").
// The client is BenchmarkGatewayConn's raw HTTP/1.1 loop on each of GOMAXPROCS
// connections, the same for both, so the difference in cpu-ns/op is what the
// gateway's server adds per request.
func BenchmarkServerStep(b *testing.B) {
	body := []byte("hello from fermion\n")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"text/plain; charset=utf-8"}
		w.Write(body)
	})
	for _, tc := range []struct {
		name  string
		serve func(b *testing.B) string
	}{
		{"default", func(b *testing.B) string {
			ln := listenLoopback(b)
			hs := &http.Server{Handler: h}
			go hs.Serve(ln)
			b.Cleanup(func() { hs.Close() })
			return ln.Addr().String()
		}},
		{"gateway", func(b *testing.B) string {
			ln := listenLoopback(b)
			g := gateway.New(gateway.Config{})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- g.ServeHandler(ctx, ln, h) }()
			b.Cleanup(func() {
				cancel()
				if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
					b.Error(err)
				}
			})
			return ln.Addr().String()
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			loadRawClients(b, tc.serve(b))
		})
	}
}
