package gateway

import (
	"errors"
	"net"
	"net/http"
	"os"
	"runtime"
	"testing"
	"time"
)

// TestIdleOrderAndSweep: admit at the cap takes the slot of the connection idle for
// longest; after a walk that found none idle it refuses without walking for
// idleRescan; the sweeper closes connections idle for the timeout, not one that has
// served a request since. The idle stamps and the sweeps' times are set explicitly:
// no clock, no sleep.
func TestIdleOrderAndSweep(t *testing.T) {
	const timeout = 8 * time.Second
	l := &connLimiter{max: 3, epoch: time.Now().Add(-time.Hour), idleTimeout: timeout}
	conns := make([]*trackedConn, 3)
	peers := make([]net.Conn, 3)
	for i := range conns {
		server, client := net.Pipe()
		t.Cleanup(func() { server.Close(); client.Close() })
		tc, victim := l.admit(server)
		if tc == nil || victim != nil {
			t.Fatalf("admit %d under the cap: %v, victim %v", i, tc, victim)
		}
		conns[i], peers[i] = tc, client
		tc.setState(http.StateNew)
		tc.setState(http.StateActive)
	}
	a, b, c := conns[0], conns[1], conns[2]
	ns := func(d time.Duration) int64 { return int64(d) }
	idleAt := func(tc *trackedConn, at time.Duration) {
		tc.setState(http.StateIdle)
		tc.idleSince.Store(ns(at))
	}

	// None idle: refused, and the next newcomer within idleRescan is refused without
	// a walk, even though a has gone idle meanwhile.
	server, client := net.Pipe()
	t.Cleanup(func() { server.Close(); client.Close() })
	if tc, victim := l.admit(server); tc != nil || victim != nil {
		t.Fatalf("admit at the cap with none idle took %p (victim %p)", tc, victim)
	}
	idleAt(a, time.Second)
	if tc, victim := l.admit(server); tc != nil || victim != nil {
		t.Fatalf("admit within idleRescan of a walk that found none took %p (victim %p)", tc, victim)
	}
	l.noIdleUntil = 0 // as if idleRescan had passed

	// Idle since 1 s (a), 2 s (b), 3 s (c): a newcomer takes a's slot.
	idleAt(b, 2*time.Second)
	idleAt(c, 3*time.Second)
	d, victim := l.admit(server)
	if d == nil || victim != a {
		t.Fatalf("admit at the cap took %p, want a (%p), idle for longest", victim, a)
	}
	victim.Conn.Close()

	// c serves a request and goes idle again at 5 s.
	c.setState(http.StateActive)
	idleAt(c, 5*time.Second)
	l.closeIdle(ns(2*time.Second + timeout - 1))
	if got := http.ConnState(b.state.Load()); got != http.StateIdle {
		t.Fatalf("b, idle for less than the timeout, is %v", got)
	}
	// The timeout after b went idle: b is closed, c (idle again since) is kept.
	l.closeIdle(ns(2*time.Second + timeout))
	if err := readErr(peers[1]); err == nil {
		t.Fatal("b, idle for the timeout, is still open")
	}
	if got := http.ConnState(c.state.Load()); got != http.StateIdle {
		t.Fatalf("c, idle again since, is %v, want idle", got)
	}
	l.closeIdle(ns(5*time.Second + timeout))
	if err := readErr(peers[2]); err == nil {
		t.Fatal("c, idle for the timeout, is still open")
	}
}

// readErr reads from the peer of a closed or open pipe end: an error at once when its
// other end is closed; for one still open, the short deadline ends the read.
func readErr(peer net.Conn) error {
	peer.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	var b [1]byte
	_, err := peer.Read(b[:])
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	return err
}

// TestDeadlineAbortHammer: a deadline in the past, asked for while a Read or Write is
// starting on another goroutine, always ends it, however the two interleave: the
// lock-free paths of Read and Write count themselves under way before they look at the
// deadline, and SetReadDeadline/SetWriteDeadline store it before they look at the
// count. A lost abort blocks its Read or Write until the peer's cleanup.
func TestDeadlineAbortHammer(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 50
	}
	server, _ := tcpPair(t) // the client end never reads: writes fill the buffers
	c := &trackedConn{Conn: server, l: &connLimiter{epoch: time.Now(), writeSlack: time.Second}}
	big := make([]byte, 8<<20) // more than the socket buffers take: the Write blocks
	for i := range n {
		c.SetReadDeadline(time.Time{})
		done := startRead(c)
		yield(i)
		c.SetReadDeadline(aLongTimeAgo)
		awaitRead(t, i, done, isTimeout)

		c.SetWriteDeadline(time.Time{})
		go func() {
			_, err := c.Write(big)
			done <- err
		}()
		yield(i)
		c.SetWriteDeadline(aLongTimeAgo)
		select {
		case err := <-done:
			if !isTimeout(err) {
				t.Fatalf("round %d: write ended with %v, want a timeout", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: a write deadline in the past did not end the pending write", i)
		}
	}
}

// yield lets the goroutine just started run for a while, longer in some rounds than
// in others, so that the rounds see it at every stage: not started, looking at the
// deadline, blocked in the socket.
func yield(round int) {
	for range round % 8 {
		runtime.Gosched()
	}
}

// aLongTimeAgo is what net/http sets to end a pending read.
var aLongTimeAgo = time.Unix(1, 0)
