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

// TestIdleBefore: transitions to idle are ordered by their number modulo the
// sequence's width, across its wrap.
func TestIdleBefore(t *testing.T) {
	const top = 1<<(64-idleBits) - 1 // the last number before the wrap
	for _, tt := range []struct {
		name string
		a, b uint64
		want bool
	}{
		{"earlier", 1, 2, true},
		{"later", 2, 1, false},
		{"same", 5, 5, false},
		{"before the wrap", top, 0, true},
		{"after the wrap", 0, top, false},
		{"far apart", 1, 1 << 30, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := idleBefore(tt.a, tt.b); got != tt.want {
				t.Fatalf("idleBefore(%d, %d) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

// TestIdleOrderAndSweep: admit at the cap takes the slot of the connection that went
// idle first, by the transitions' numbers alone; the sweeper stamps an idle period the
// first time it sees it and closes the connection once a whole idle timeout has passed
// since, not when it has served a request in between. The sweeps are driven with
// explicit times: no clock, no sleep.
func TestIdleOrderAndSweep(t *testing.T) {
	const timeout = 8 * time.Second
	l := &connLimiter{max: 3, epoch: time.Now(), idleTimeout: timeout}
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
	// Idle in the order b, a, c; a goes active and idle again, after c.
	for _, tc := range []*trackedConn{b, a, c} {
		tc.setState(http.StateIdle)
	}
	a.setState(http.StateActive)
	a.setState(http.StateIdle)
	if n := l.idleCount(); n != 3 {
		t.Fatalf("idle count %d, want 3", n)
	}

	// At the cap, a newcomer takes the slot of b, idle first.
	server, client := net.Pipe()
	t.Cleanup(func() { server.Close(); client.Close() })
	d, victim := l.admit(server)
	if d == nil || victim != b {
		t.Fatalf("admit at the cap took %p, want b (%p), the first to go idle", victim, b)
	}
	victim.Conn.Close()
	if n := l.idleCount(); n != 2 {
		t.Fatalf("idle count %d after the takeover, want 2", n)
	}

	// First sweep: a and c stamped at 1 s, nothing closed.
	ns := func(d time.Duration) int64 { return int64(d) }
	l.closeIdle(ns(time.Second))
	if a.closed || c.closed || l.idleCount() != 2 {
		t.Fatalf("first sweep closed something (a %v, c %v, idle %d)", a.closed, c.closed, l.idleCount())
	}
	// c serves a request and goes idle again: a new period, stamped at the next look.
	c.setState(http.StateActive)
	c.setState(http.StateIdle)
	l.closeIdle(ns(time.Second + timeout - 1))
	if l.idleCount() != 2 {
		t.Fatalf("a sweep before the timeout closed something: idle %d", l.idleCount())
	}
	// A whole timeout after a's stamp: a is closed, c (stamped later) is kept.
	l.closeIdle(ns(time.Second + timeout))
	if err := readErr(peers[0]); err == nil {
		t.Fatal("a, idle for the timeout, is still open")
	}
	if got := http.ConnState(c.state.Load()); got != http.StateIdle {
		t.Fatalf("c, idle again since, is %v, want idle", got)
	}
	if n := l.idleCount(); n != 1 {
		t.Fatalf("idle count %d after the sweep, want 1 (c)", n)
	}
	l.closeIdle(ns(time.Second + 2*timeout - 1)) // c was stamped at 1 s + timeout − 1
	if err := readErr(peers[2]); err == nil {
		t.Fatal("c, idle for the timeout since its stamp, is still open")
	}
	if n := l.idleCount(); n != 0 {
		t.Fatalf("idle count %d, want 0", n)
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
		done := make(chan error, 1)
		go func() {
			var b [1]byte
			_, err := c.Read(b[:])
			done <- err
		}()
		yield(i)
		c.SetReadDeadline(aLongTimeAgo)
		select {
		case err := <-done:
			if !isTimeout(err) {
				t.Fatalf("round %d: read ended with %v, want a timeout", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: a read deadline in the past did not end the pending read", i)
		}

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
