package gateway

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
)

// BenchmarkResponseDateConn is the Date header's two ways on the gateway's own server
// (ServeHandler: its limiter, trackedConn and server configuration) over a keep-alive
// connection per GOMAXPROCS, real loopback TCP ("tcp/…") or an in-memory net.Pipe
// ("pipe/…": net/http's whole per-request work without the system calls, whose
// kernel time swamps a difference this small on a shared machine): "cached" puts the dateCache's value
// in the handler's header map, as serve does; "server" leaves Date to net/http (a
// clock reading and a formatting per response). Both handlers otherwise set what
// serve sets for a small response (request id, traceparent, one guest header) and
// read the clock once, as the sandbox does at the guest call's end. The client's work
// is the same for both, so the difference in cpu-ns/op is the Date's.
func BenchmarkResponseDateConn(b *testing.B) {
	for _, tc := range []struct {
		name   string
		pipe   bool
		cached bool
	}{{"pipe/cached", true, true}, {"pipe/server", true, false}, {"tcp/cached", false, true}, {"tcp/server", false, false}} {
		b.Run(tc.name, func(b *testing.B) {
			var dc dateCache
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				end := time.Now() // the sandbox's reading at the guest call's end
				wh := w.Header()
				wh[headerRequestID] = benchIDVals[0:1:1]
				wh["Traceparent"] = benchIDVals[1:2:2]
				wh["Content-Type"] = benchIDVals[2:3:3]
				if tc.cached {
					wh["Date"] = dc.at(end)
				}
				w.WriteHeader(200)
				w.Write(fixedBody)
			})
			loadHandler(b, h, tc.pipe)
		})
	}
}

var benchIDVals = []string{"b6ktg7f1v2ch7brq7n3g", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "text/plain; charset=utf-8"}

// loadHandler serves h on the gateway's own server (default limits) on a loopback
// listener, or on one of in-memory pipes with pipe set, and sends it b.N keep-alive
// GETs from a raw client on each of GOMAXPROCS connections, reporting the process's
// CPU per request (cpu-ns/op).
func loadHandler(b *testing.B, h http.Handler, pipe bool) {
	g := New(Config{})
	var ln net.Listener
	dial := func() (net.Conn, error) { return net.Dial("tcp", ln.Addr().String()) }
	if pipe {
		pl := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
		ln, dial = pl, pl.dial
	} else {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); g.ServeHandler(ctx, ln, h) }()
	defer func() { cancel(); <-done }()
	b.ReportAllocs()
	start := cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		c, err := dial()
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		br := bufio.NewReaderSize(c, 4096)
		for pb.Next() {
			if err := fermiontest.RawGet(c, br); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// pipeListener is a listener whose connections are the server ends of net.Pipes that
// dial makes.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

// dial returns the client end of a new pipe whose server end Accept returns.
func (l *pipeListener) dial() (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// BenchmarkGatewayPipe is the gateway's own share of a request (telemetry off) with
// net/http's real server around it: Gateway.ServeHTTP in front of a target that runs
// no guest ("gateway") against a handler that sets the same guest header and writes
// the same body ("handler"), each on the gateway's server over in-memory pipes (see
// BenchmarkResponseDateConn). Unlike BenchmarkServeHTTPFixed, net/http's own header
// work (the map's copy at WriteHeader, the sort, the value cleaning, Date and
// Content-Length) is the real one.
func BenchmarkGatewayPipe(b *testing.B) {
	for _, tc := range []struct {
		name string
		h    func(b *testing.B) http.Handler
	}{
		{"gateway", func(b *testing.B) http.Handler { return fixedGateway(b) }},
		{"handler", func(b *testing.B) http.Handler { return fixedHandler }},
	} {
		b.Run(tc.name, func(b *testing.B) { loadHandler(b, tc.h(b), true) })
	}
}
