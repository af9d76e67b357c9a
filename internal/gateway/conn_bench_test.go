package gateway

import (
	"net"
	"net/http"
	"os"
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
// One simplification: net/http's background read is pending when it sets the read
// deadline in the past to end it; here that Read comes after the deadline, on the
// same goroutine, and the connection underneath fails it at once. The socket sees the
// same deadline changes either way (two per request: the past one, then none).
func BenchmarkConnRequest(b *testing.B) {
	epoch := time.Now()
	// One limiter for all the connections, as on a listener.
	l := &connLimiter{epoch: epoch, writeSlack: DefaultWriteTimeout / 4}
	for _, tc := range []struct {
		name string
		conn func(c net.Conn) (net.Conn, func(http.ConnState))
	}{
		{"raw", func(c net.Conn) (net.Conn, func(http.ConnState)) { return c, nil }},
		{"tracked", func(c net.Conn) (net.Conn, func(http.ConnState)) {
			tc, _ := l.admit(c)
			return tc, func(s http.ConnState) { connState(tc, s) }
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				serveConnRequests(pb, epoch, tc.conn)
			})
		})
	}
}

// serveConnRequests makes net/http's calls for one keep-alive request per pb.Next on
// a connection of its own, from conn (see BenchmarkConnRequest).
func serveConnRequests(pb *testing.PB, epoch time.Time, conn func(net.Conn) (net.Conn, func(http.ConnState))) {
	c, hook := conn(&nopConn{past: epoch.Add(time.Millisecond)})
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
// a timeout when its read deadline is before past, as a socket's does.
type nopConn struct {
	net.Conn
	past time.Time
	rd   time.Time
}

func (c *nopConn) Read(p []byte) (int, error) {
	if !c.rd.IsZero() && c.rd.Before(c.past) {
		return 0, os.ErrDeadlineExceeded
	}
	return len(p), nil
}

func (c *nopConn) Write(p []byte) (int, error)        { return len(p), nil }
func (c *nopConn) SetReadDeadline(t time.Time) error  { c.rd = t; return nil }
func (c *nopConn) SetWriteDeadline(t time.Time) error { return nil }
func (c *nopConn) Close() error                       { return nil }
