package gateway

import (
	"net"
	"net/http"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkConnRequest is what net/http (Go 1.26, conn.serve) does to its connection
// per keep-alive request on the gateway's server, with a bare handler: the limiter's
// and trackedConn's share of the ladder's first step (rung 2 − rung 1), without the
// socket or the HTTP parsing, which are the same with a default server. "raw" makes
// the same calls on the connection directly (a default server: no ConnState hook, no
// wrapper); "tracked" through a trackedConn under a limiter. The difference is what
// limits.go adds per request. Each of GOMAXPROCS goroutines serves a connection of
// its own (RunParallel), all under one limiter, as on a loaded listener.
//
// One simplification: net/http's background read is often pending when it sets the
// read deadline in the past to end it; here that Read comes after the deadline, on
// the same goroutine (the more common case: see background.go), and the connection
// underneath fails it at once.
//
// "raw" and "tracked" run over a connection whose deadline changes cost nothing;
// "raw-poller" and "tracked-poller" also pass every deadline change, and the reads
// they fail, to a real loopback TCP socket, so that the runtime poller's share (a
// timer change per deadline moved) counts as on a server. sockrd/op is the read
// deadlines put on the connection underneath per request.
func BenchmarkConnRequest(b *testing.B) {
	epoch := time.Now()
	// One limiter for all the connections, as on a listener.
	l := &connLimiter{epoch: epoch, writeSlack: DefaultWriteTimeout / 4}
	raw := func(c net.Conn) (net.Conn, func(http.ConnState)) { return c, nil }
	tracked := func(c net.Conn) (net.Conn, func(http.ConnState)) {
		tc, _ := l.admit(c)
		return tc, func(s http.ConnState) { connState(tc, s) }
	}
	for _, tc := range []struct {
		name   string
		conn   func(c net.Conn) (net.Conn, func(http.ConnState))
		poller bool
	}{
		{"raw", raw, false},
		{"tracked", tracked, false},
		{"raw-poller", raw, true},
		{"tracked-poller", tracked, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var ln net.Listener
			if tc.poller {
				var err error
				if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
					b.Fatal(err)
				}
				defer ln.Close()
			}
			var sets atomic.Int64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				nc := &nopConn{past: epoch.Add(time.Millisecond)}
				if ln != nil {
					client, err := net.Dial("tcp", ln.Addr().String())
					if err != nil {
						b.Error(err)
						return
					}
					defer client.Close()
					if nc.sock, err = ln.Accept(); err != nil {
						b.Error(err)
						return
					}
					defer nc.sock.Close()
				}
				serveConnRequests(pb, epoch, nc, tc.conn)
				sets.Add(nc.rdSets)
			})
			b.ReportMetric(float64(sets.Load())/float64(b.N), "sockrd/op")
		})
	}
}

// serveConnRequests makes net/http's calls for one keep-alive request per pb.Next on
// nc, through conn (see BenchmarkConnRequest).
func serveConnRequests(pb *testing.PB, epoch time.Time, nc *nopConn, conn func(net.Conn) (net.Conn, func(http.ConnState))) {
	c, hook := conn(nc)
	state := func(s http.ConnState) {
		if hook != nil {
			hook(s)
		}
	}
	state(http.StateNew)
	buf := make([]byte, 4096)
	resp := make([]byte, 128)
	for pb.Next() {
		// serve: after the previous response.
		c.SetWriteDeadline(time.Time{})
		state(http.StateIdle)
		c.SetReadDeadline(time.Time{})
		c.Read(buf) // bufr.Peek(4): the whole request
		if hook != nil {
			// ReadHeaderTimeout, on the gateway's server only.
			c.SetReadDeadline(epoch.Add(DefaultHeaderTimeout))
		}
		c.SetReadDeadline(time.Time{}) // readRequest: the whole request's (none)
		state(http.StateActive)
		c.SetReadDeadline(time.Time{}) // startBackgroundRead
		// finishRequest: the response, then abortPendingRead.
		c.Write(resp)
		c.SetReadDeadline(time.Unix(1, 0))
		c.Read(buf[:1]) // the background read, ended by the deadline
		c.SetReadDeadline(time.Time{})
	}
}

// nopConn is a connection whose reads and writes complete at once: a read fails with
// a timeout when its read deadline is before past, as a socket's does. With sock set,
// deadlines are also put on sock, and reads that fail are failed by sock (at once,
// by the runtime poller, without a system call).
type nopConn struct {
	net.Conn
	past   time.Time
	rd     time.Time
	sock   net.Conn
	rdSets int64 // read deadlines set
}

func (c *nopConn) Read(p []byte) (int, error) {
	if !c.rd.IsZero() && c.rd.Before(c.past) {
		if c.sock != nil {
			return c.sock.Read(p)
		}
		return 0, os.ErrDeadlineExceeded
	}
	return len(p), nil
}

func (c *nopConn) Write(p []byte) (int, error) { return len(p), nil }

func (c *nopConn) SetReadDeadline(t time.Time) error {
	c.rd = t
	c.rdSets++
	if c.sock != nil {
		return c.sock.SetReadDeadline(t)
	}
	return nil
}

func (c *nopConn) SetWriteDeadline(t time.Time) error {
	if c.sock != nil {
		return c.sock.SetWriteDeadline(t)
	}
	return nil
}

func (c *nopConn) Close() error { return nil }

// BenchmarkBackgroundReadPending is net/http's background read in the case where it
// starts while the handler still runs (the other case, aborted before it starts, is
// BenchmarkConnRequest's): per op, on a trackedConn over a real loopback socket with
// nothing to read, the read is started on a goroutine of its own and runs until it
// waits (runtime.Gosched hands it the only P with -cpu 1), then net/http's abort
// ends it and clears the deadline. Run it with -test.cpu 1: with more Ps the read
// may not have started when the abort comes.
func BenchmarkBackgroundReadPending(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	defer server.Close()
	l := &connLimiter{epoch: time.Now()}
	c, _ := l.admit(server)
	connState(c, http.StateActive)
	past := time.Unix(1, 0)
	done := make(chan error, 1)
	var buf [1]byte
	read := func() {
		_, err := c.Read(buf[:])
		done <- err
	}
	b.ReportAllocs()
	for b.Loop() {
		c.SetReadDeadline(time.Time{}) // startBackgroundRead
		go read()
		runtime.Gosched()
		c.SetReadDeadline(past) // abortPendingRead
		if err := <-done; !isTimeout(err) {
			b.Fatalf("background read ended with %v, want its abort's timeout", err)
		}
		c.SetReadDeadline(time.Time{})
	}
}
