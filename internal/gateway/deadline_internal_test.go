package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"
)

// countingConn counts the write deadlines set on the socket under a trackedConn.
type countingConn struct {
	net.Conn
	sets []time.Time
}

func (c *countingConn) SetWriteDeadline(t time.Time) error {
	c.sets = append(c.sets, t)
	return c.Conn.SetWriteDeadline(t)
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// drainedConn returns the server end of a loopback TCP connection whose client end
// reads and discards everything until the test closes both: writes never block.
func drainedConn(t *testing.T) net.Conn {
	t.Helper()
	server, client := tcpPair(t)
	go func() {
		b := make([]byte, 512)
		for {
			if _, err := client.Read(b); err != nil {
				return
			}
		}
	}()
	return server
}

// TestLazyWriteDeadline: the socket's write deadline follows the one asked for only
// when something is written, and is kept while it falls at most writeSlack before it;
// a deadline that has passed is set at once.
func TestLazyWriteDeadline(t *testing.T) {
	const slack = time.Minute
	epoch := time.Now()
	at := func(d time.Duration) time.Time { return epoch.Add(d) }
	type step struct {
		set    *time.Time // a deadline asked for (nil: a write)
		socket []time.Time
	}
	ask := func(t time.Time) step { return step{set: &t} }
	write := func(socket ...time.Time) step { return step{socket: socket} }
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"set on the first write", []step{ask(at(time.Hour)), write(at(time.Hour))}},
		{"kept within the slack", []step{
			ask(at(time.Hour)), write(at(time.Hour)),
			ask(time.Time{}), // as each response ends
			ask(at(time.Hour + slack/2)), write(),
			ask(at(time.Hour + slack)), write(),
		}},
		{"moved past the slack", []step{
			ask(at(time.Hour)), write(at(time.Hour)),
			ask(at(time.Hour + slack + time.Second)), write(at(time.Hour + slack + time.Second)),
		}},
		{"moved when earlier", []step{
			ask(at(time.Hour)), write(at(time.Hour)),
			ask(at(time.Hour - time.Second)), write(at(time.Hour - time.Second)),
		}},
		{"cleared before a write without one", []step{
			ask(at(time.Hour)), write(at(time.Hour)),
			ask(time.Time{}), write(time.Time{}),
			write(),
		}},
		{"nothing asked, nothing set", []step{write(), write()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server := drainedConn(t)
			cc := &countingConn{Conn: server}
			c := &trackedConn{Conn: cc, l: &connLimiter{epoch: epoch, writeSlack: slack}}
			for i, s := range tc.steps {
				if s.set != nil {
					if err := c.SetWriteDeadline(*s.set); err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
					continue
				}
				cc.sets = nil
				if _, err := c.Write([]byte("x")); err != nil {
					t.Fatalf("step %d: write: %v", i, err)
				}
				if !equalTimes(cc.sets, s.socket) {
					t.Fatalf("step %d: socket deadlines set %v, want %v", i, cc.sets, s.socket)
				}
			}
		})
	}
}

func equalTimes(a, b []time.Time) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// TestLazyWriteDeadlineAborts: a deadline set in the past reaches the socket at once,
// so it stops a write that is blocked on a client that reads nothing.
func TestLazyWriteDeadlineAborts(t *testing.T) {
	server, _ := tcpPair(t)
	c := &trackedConn{Conn: server, l: &connLimiter{epoch: time.Now(), writeSlack: time.Hour}}
	if err := c.SetWriteDeadline(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		big := make([]byte, 1<<20)
		for {
			if _, err := c.Write(big); err != nil {
				done <- err
				return
			}
		}
	}()
	// Not a sleep to wait for something: however soon this runs, the write loop is
	// either blocked or about to block on the full socket buffer, and must stop.
	if err := c.SetWriteDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("write ended with %v, want a deadline error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a deadline in the past did not stop the blocked write")
	}
}

// readCountingConn counts the read deadlines set on the socket under a trackedConn.
type readCountingConn struct {
	net.Conn
	sets []time.Time
}

func (c *readCountingConn) SetReadDeadline(t time.Time) error {
	c.sets = append(c.sets, t)
	return c.Conn.SetReadDeadline(t)
}

// TestLazyReadDeadline: a Read runs under exactly the read deadline last asked for, put
// on the socket only when it differs from the socket's; a deadline in the past (net/http's
// abort) with no Read pending fails the next Read at once, without reaching the socket.
// The sequence is net/http's for one keep-alive
// request.
func TestLazyReadDeadline(t *testing.T) {
	server, client := tcpPair(t)
	rc := &readCountingConn{Conn: server}
	c := &trackedConn{Conn: rc, l: &connLimiter{epoch: time.Now()}}
	idle, hdr := time.Now().Add(time.Hour), time.Now().Add(time.Minute)
	past := time.Unix(1, 0) // net/http's aLongTimeAgo
	buf := make([]byte, 64)
	read := func(step string, want ...time.Time) {
		t.Helper()
		rc.sets = nil
		if _, err := client.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("%s: read: %v", step, err)
		}
		if len(rc.sets) != len(want) {
			t.Fatalf("%s: socket read deadlines %v, want %v", step, rc.sets, want)
		}
		for i := range want {
			// A deadline is stored in ns from the epoch: compare at that resolution.
			if d := rc.sets[i].Sub(want[i]); d < -time.Microsecond || d > time.Microsecond {
				t.Fatalf("%s: socket read deadline %v, want %v", step, rc.sets[i], want[i])
			}
		}
	}
	c.SetReadDeadline(idle)
	read("idle wait", idle)
	c.SetReadDeadline(hdr) // the header is already buffered: no read under it
	c.SetReadDeadline(time.Time{})
	c.SetReadDeadline(time.Time{})
	read("background read", time.Time{})
	rc.sets = nil
	c.SetReadDeadline(past)
	if len(rc.sets) != 0 {
		t.Fatalf("a passed deadline with no Read pending set %d times on the socket, want none before a Read", len(rc.sets))
	}
	if _, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a Read after a passed deadline: %v, want a deadline error at once", err)
	}
	if len(rc.sets) != 0 {
		t.Fatalf("socket read deadlines %v, want none: a deadline in the past fails the Read without reaching the socket", rc.sets)
	}
	c.SetReadDeadline(time.Time{})
	c.SetReadDeadline(idle)
	read("next idle wait", idle)
	read("same deadline again")
}

// TestLazyReadDeadlineAborts: a passed read deadline ends a pending Read at once, as
// net/http's abortPendingRead needs.
func TestLazyReadDeadlineAborts(t *testing.T) {
	server, _ := tcpPair(t)
	c := &trackedConn{Conn: server, l: &connLimiter{epoch: time.Now()}}
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		done <- err
	}()
	// However soon this runs, the Read is pending or about to be, and must end.
	if err := c.SetReadDeadline(time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read ended with %v, want a deadline error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a passed deadline did not end the pending read")
	}
}

// TestDeadlinePassed: deadlines count from the limiter's epoch; one at or before it
// (net/http's aLongTimeAgo) has passed without a clock reading, the zero time is no
// deadline, and any other is compared with the monotonic clock.
func TestDeadlinePassed(t *testing.T) {
	l := &connLimiter{epoch: time.Now().Add(-time.Minute)}
	for _, tc := range []struct {
		name string
		t    time.Time
		want bool
	}{
		{"none", time.Time{}, false},
		{"a long time ago", time.Unix(1, 0), true},
		{"the epoch", l.epoch, true},
		{"after the epoch, passed", time.Now().Add(-time.Second), true},
		{"now", time.Now(), true},
		{"ahead", time.Now().Add(time.Hour), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := l.passed(l.deadline(tc.t)); got != tc.want {
				t.Fatalf("passed(%v) = %v, want %v", tc.t, got, tc.want)
			}
		})
	}
}

// TestArmWrite: armWrite asks for the deadline timeout from now, which the next write
// puts on the socket, as SetWriteDeadline(time.Now().Add(timeout)) would.
func TestArmWrite(t *testing.T) {
	server := drainedConn(t)
	cc := &countingConn{Conn: server}
	c := &trackedConn{Conn: cc, l: &connLimiter{epoch: time.Now(), writeSlack: time.Second}}
	before := time.Now()
	c.armWrite(time.Hour)
	after := time.Now()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if len(cc.sets) != 1 || cc.sets[0].Before(before.Add(time.Hour-time.Microsecond)) || cc.sets[0].After(after.Add(time.Hour+time.Microsecond)) {
		t.Fatalf("socket write deadlines %v, want one an hour after %v–%v", cc.sets, before, after)
	}
}

// TestConnOf: a request finds the tracked connection it came on, also beneath TLS, and
// none when another server's connection carries it.
func TestConnOf(t *testing.T) {
	server, _ := tcpPair(t)
	tc := &trackedConn{Conn: server, l: &connLimiter{epoch: time.Now()}}
	for _, c := range []struct {
		name string
		conn net.Conn
		want *trackedConn
	}{
		{"plain", tc, tc},
		{"TLS", tls.Server(tc, &tls.Config{}), tc},
		{"another server's", server, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r = r.WithContext(connContext(r.Context(), c.conn))
			if got := connOf(r); got != c.want {
				t.Fatalf("connOf = %p, want %p", got, c.want)
			}
		})
	}
}

// readDeadlineConn records the read deadlines set on the socket under a trackedConn
// that fall in the future: each arms a runtime timer.
type readDeadlineConn struct {
	net.Conn
	mu     sync.Mutex
	future int
}

func (c *readDeadlineConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	if t.After(time.Now()) {
		c.future++
	}
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

type readDeadlineListener struct {
	net.Listener
	conns chan *readDeadlineConn
}

func (l readDeadlineListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	rc := &readDeadlineConn{Conn: c}
	l.conns <- rc
	return rc, nil
}

// serveRaw serves h through a gateway with lim on ln until the test ends, and returns a
// raw client connection to it, with a 30 s deadline so that a hung server fails the test
// instead of stalling it.
func serveRaw(t *testing.T, ln net.Listener, lim Limits, h http.HandlerFunc) (net.Conn, *bufio.Reader) {
	t.Helper()
	g := New(Config{Limits: lim})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.ServeHandler(ctx, ln, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c, bufio.NewReader(c)
}

// TestKeepAliveArmsNoReadTimer: requests on a keep-alive connection under the default
// limits (idle and header timeouts on) put no future read deadline on the socket after
// the first request's header: the idle timeout is the limiter's sweeper, not a
// deadline moved per request, and the header deadline only reaches the socket when a
// header has to be waited for.
func TestKeepAliveArmsNoReadTimer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dl := readDeadlineListener{Listener: ln, conns: make(chan *readDeadlineConn, 1)}
	c, br := serveRaw(t, dl, Limits{}, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})
	const requests = 20
	for i := range requests {
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	rc := <-dl.conns
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.future > 1 {
		t.Fatalf("%d future read deadlines set on the socket over %d keep-alive requests, want at most 1 (the first request's header)", rc.future, requests)
	}
}

// TestArmWriteFrom: a write deadline counted from a time read earlier (the guest
// call's end) reaches the socket as that time plus the timeout, exactly.
func TestArmWriteFrom(t *testing.T) {
	server := drainedConn(t)
	cc := &countingConn{Conn: server}
	c := &trackedConn{Conn: cc, l: &connLimiter{epoch: time.Now().Add(-time.Minute), writeSlack: time.Second}}
	from := time.Now().Add(-time.Second)
	c.armWriteFrom(from, time.Hour)
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if want := from.Add(time.Hour); len(cc.sets) != 1 || cc.sets[0].Sub(want).Abs() > time.Microsecond {
		t.Fatalf("socket write deadlines %v, want one at %v", cc.sets, want)
	}
}

// TestIdleSweepSparesActive: the idle sweeper closes only idle connections: a request
// that runs far past the idle timeout is answered, and its connection is closed once
// it has then been idle for the timeout.
func TestIdleSweepSparesActive(t *testing.T) {
	const idle = 50 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, br := serveRaw(t, ln, Limits{IdleTimeout: idle}, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(6 * idle) // the request's own work, well past the idle timeout
		io.WriteString(w, "ok")
	})
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("a request longer than the idle timeout: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok" {
		t.Fatalf("body %q", body)
	}
	// Idle now: the sweeper closes it (the read ends, within the 30 s deadline set above).
	if _, err := br.ReadByte(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("idle connection not closed by the sweeper: %v", err)
	}
}
