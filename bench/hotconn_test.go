package bench

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"testing"

	"fermion.dev/fermion/bench/internal/bare"
	"fermion.dev/fermion/internal/fermiontest"
)

// BenchmarkGatewayConn is the ABI-only guest served over loopback TCP, keep-alive, by
// the gateway's own server (Gateway.Serve: its limits, deadlines and connection cap)
// and, in the same run, by a bare wazero server (a plain http.Server calling the same
// guest from a pool, as fermion-bench's bare target does). The client is a raw HTTP/1.1
// loop on each of GOMAXPROCS connections, the same for every target, so the difference
// in cpu-ns/op between targets is the server's: what BenchmarkGatewayMinimal, which
// skips the socket, cannot show (deadlines, timers, connection tracking, flushes).
// Compare fermion-off with bare for issue 17's platform budget.
func BenchmarkGatewayConn(b *testing.B) {
	wasm := fermiontest.Guest(b, "examples/testdata/abi/minimal", true)
	for _, tc := range []struct {
		name  string
		serve func(b *testing.B) string // returns the server's address
	}{
		{"fermion-on", func(b *testing.B) string { return serveGateway(b, true) }},
		{"fermion-off", func(b *testing.B) string { return serveGateway(b, false) }},
		{"bare", func(b *testing.B) string { return serveBare(b, wasm) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			loadRawClients(b, tc.serve(b))
		})
	}
}

// serveGateway serves the minimal guest from a Gateway on a loopback listener until
// the benchmark ends.
func serveGateway(b *testing.B, on bool) string {
	g := minimalGateway(b, on)
	ln := listenLoopback(b)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); g.Serve(ctx, ln) }()
	b.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// serveBare serves wasm the way fermion-bench's bare target does (bench/internal/bare):
// no gateway, sandbox limits, ids or telemetry.
func serveBare(b *testing.B, wasm []byte) string {
	ctx := context.Background()
	srv, err := bare.New(ctx, wasm, 4)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close(ctx) })
	ln := listenLoopback(b)
	hs := &http.Server{Handler: srv}
	go hs.Serve(ln)
	b.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

// loadRawClients sends b.N requests to addr from a raw client on each of GOMAXPROCS
// keep-alive connections and reports the process's CPU per request (cpu-ns/op): the
// client's work is the same for every server, so a difference is the server's.
func loadRawClients(b *testing.B, addr string) {
	b.ReportAllocs()
	start := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		c, err := newRawClient(addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.close()
		for pb.Next() {
			if err := c.get(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// listenLoopback listens on a random loopback port.
func listenLoopback(b *testing.B) net.Listener {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	return ln
}

// rawClient sends GET /hello on one keep-alive connection and reads each response,
// with as little work of its own as HTTP/1.1 allows.
type rawClient struct {
	c net.Conn
	r *bufio.Reader
}

func newRawClient(addr string) (*rawClient, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &rawClient{c: c, r: bufio.NewReaderSize(c, 4096)}, nil
}

func (c *rawClient) close() { c.c.Close() }

// get sends one request and reads its response to the end of the body.
func (c *rawClient) get() error { return fermiontest.RawGet(c.c, c.r) }
