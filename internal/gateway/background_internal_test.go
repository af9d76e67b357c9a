package gateway

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
)

// socketDeadlines counts the read deadlines set on the sockets under trackedConns.
type socketDeadlines struct{ n atomic.Int64 }

type deadlineCountConn struct {
	net.Conn
	count *socketDeadlines
}

func (c *deadlineCountConn) SetReadDeadline(t time.Time) error {
	c.count.n.Add(1)
	return c.Conn.SetReadDeadline(t)
}

type deadlineCountListener struct {
	net.Listener
	count *socketDeadlines
}

func (l deadlineCountListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &deadlineCountConn{Conn: c, count: l.count}, nil
}

// serveGrace serves h as the gateway's server does (ServeHandler: the limiter, its
// hooks, the header timeout, no idle timeout) with the background read's grace set to
// grace, on a loopback port, until the test ends. It returns the listener's address and
// the count of socket read deadlines.
func serveGrace(t *testing.T, grace time.Duration, h http.HandlerFunc) (string, *socketDeadlines) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	count := &socketDeadlines{}
	cl := newConnLimiter(deadlineCountListener{Listener: ln, count: count}, 0, true, nil)
	cl.grace = grace
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: DefaultHeaderTimeout,
		ConnState:         connState,
		ConnContext:       connContext,
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(cl) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String(), count
}

// dialRaw opens a raw client connection to addr, with a 30 s deadline so that a hung
// server fails the test instead of stalling it.
func dialRaw(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c, bufio.NewReader(c)
}

// readBody reads one response from br and returns its status and body.
func readBody(br *bufio.Reader) (int, string, error) {
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b), err
}

// waitUntil polls cond from a handler (no testing.T to fail there) for up to 30 s.
func waitUntil(cond func() bool) bool {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return true
		}
	}
	return false
}

// TestBackgroundReadOffSocket counts the read deadlines put on the socket over many
// keep-alive requests on one connection. Before, net/http's abort of its background
// read put two there per request (the past one, then none); now neither, whether the
// abort comes before the read (a fast handler) or while it is parked (a handler that
// waits for it to park): only the first request's header deadline and its clearing
// remain.
func TestBackgroundReadOffSocket(t *testing.T) {
	const requests = 50
	for _, tc := range []struct {
		name string
		wait bool // the handler waits for the background read to park
	}{
		{"abort first", false},
		{"parked", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, count := serveGrace(t, time.Hour, func(w http.ResponseWriter, r *http.Request) {
				if tc.wait {
					c := connOf(r)
					if !waitUntil(func() bool { return c.bg.Load() == bgParked }) {
						http.Error(w, "background read never parked", http.StatusInternalServerError)
						return
					}
				}
				io.WriteString(w, "ok")
			})
			c, br := dialRaw(t, addr)
			for i := range requests {
				if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				if status, body, err := readBody(br); err != nil || status != 200 || body != "ok" {
					t.Fatalf("request %d: %d %q %v", i, status, body, err)
				}
			}
			// Before: at least 2 per request. The first request's header deadline and
			// the clearing after it are the 2 left.
			if n := count.n.Load(); n > 4 {
				t.Fatalf("%d read deadlines put on the socket over %d keep-alive requests, want at most 4 (none per request)", n, requests)
			}
		})
	}
}

// TestBackgroundReadEnds: a parked background read is ended, off the socket, by a
// passed deadline (net/http's abort: the deadline error it takes for its own) and by
// Close (an error that is no timeout: the client is gone), and reads from the socket
// once the grace has passed. Reads that are not the background read go to the socket
// at once.
func TestBackgroundReadEnds(t *testing.T) {
	for _, tc := range []struct {
		name  string
		grace time.Duration
		read  int              // bytes asked for
		state http.ConnState   // the connection's
		setup func(c net.Conn) // before the read, on the client end
		end   func(t *testing.T, c *trackedConn)
		check func(t *testing.T, n int, err error, sets int64)
	}{
		{
			name: "abort", grace: time.Hour, read: 1, state: http.StateActive,
			end: func(t *testing.T, c *trackedConn) {
				if err := c.SetReadDeadline(time.Unix(1, 0)); err != nil {
					t.Error(err)
				}
			},
			check: func(t *testing.T, n int, err error, sets int64) {
				// As net/http's backgroundRead tests it: a type assertion, not errors.As.
				if ne, ok := err.(net.Error); !ok || !ne.Timeout() || n != 0 {
					t.Fatalf("aborted read: %d, %v; want a timeout net.Error, as net/http's abort expects", n, err)
				}
				if sets != 0 {
					t.Fatalf("%d read deadlines put on the socket, want none", sets)
				}
			},
		},
		{
			name: "close", grace: time.Hour, read: 1, state: http.StateActive,
			end: func(t *testing.T, c *trackedConn) { c.Close() },
			check: func(t *testing.T, n int, err error, sets int64) {
				if err == nil || isTimeout(err) || !errors.Is(err, net.ErrClosed) {
					t.Fatalf("read parked at Close: %d, %v; want the closed connection's error", n, err)
				}
			},
		},
		{
			name: "grace", grace: time.Millisecond, read: 1, state: http.StateActive,
			setup: func(c net.Conn) { c.Write([]byte("x")) },
			check: func(t *testing.T, n int, err error, sets int64) {
				if n != 1 || err != nil {
					t.Fatalf("read after the grace: %d, %v; want the client's byte", n, err)
				}
			},
		},
		{
			name: "client gone past grace", grace: time.Millisecond, read: 1, state: http.StateActive,
			setup: func(c net.Conn) { c.Close() },
			check: func(t *testing.T, n int, err error, sets int64) {
				if err != io.EOF {
					t.Fatalf("read after the grace from a closed client: %d, %v; want EOF", n, err)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server, client := tcpPair(t)
			count := &socketDeadlines{}
			l := &connLimiter{epoch: time.Now(), grace: tc.grace, open: 1}
			c := &trackedConn{Conn: &deadlineCountConn{Conn: server, count: count}, l: l}
			c.setState(tc.state)
			if tc.setup != nil {
				tc.setup(client)
			}
			type result struct {
				n   int
				err error
			}
			done := make(chan result, 1)
			go func() {
				n, err := c.Read(make([]byte, tc.read))
				done <- result{n, err}
			}()
			if tc.end != nil {
				fermiontest.WaitFor(t, 30*time.Second, func() error {
					if c.bg.Load() != bgParked {
						return errors.New("background read not parked")
					}
					return nil
				})
				tc.end(t, c)
			}
			select {
			case r := <-done:
				tc.check(t, r.n, r.err, count.n.Load())
			case <-time.After(30 * time.Second):
				t.Fatal("read did not end")
			}
			if p := c.bg.Load(); p == bgParked {
				t.Fatalf("phase %d after the read ended", p)
			}
		})
	}
}

// TestNotBackgroundRead: reads that are not net/http's background read (larger, on a
// connection that is not active, or under a read deadline) go to the socket at once,
// even with a grace longer than the test.
func TestNotBackgroundRead(t *testing.T) {
	for _, tc := range []struct {
		name     string
		read     int
		state    http.ConnState
		deadline time.Time
	}{
		{"two bytes", 2, http.StateActive, time.Time{}},
		{"idle", 1, http.StateIdle, time.Time{}},
		{"new", 1, http.StateNew, time.Time{}},
		{"under a deadline", 1, http.StateActive, time.Now().Add(time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server, client := tcpPair(t)
			c := &trackedConn{Conn: server, l: &connLimiter{epoch: time.Now(), grace: time.Hour}}
			c.setState(tc.state)
			c.SetReadDeadline(tc.deadline)
			client.Write([]byte("xy"))
			done := make(chan error, 1)
			go func() {
				_, err := c.Read(make([]byte, tc.read))
				done <- err
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("read waited: taken for the background read")
			}
		})
	}
}

// TestBackgroundReadClientGone: a client that closes its connection while its request
// runs still cancels the request, through the gateway's own server with the default
// grace: the parked background read goes to the socket after the grace and sees EOF.
func TestBackgroundReadClientGone(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	canceled := make(chan struct{})
	c, _ := serveRaw(t, ln, Limits{}, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-r.Context().Done():
			close(canceled)
		case <-time.After(time.Minute):
		}
	})
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	<-started
	c.Close()
	select {
	case <-canceled:
	case <-time.After(30 * time.Second):
		t.Fatal("a client that left did not cancel its request")
	}
}

// TestPipelinedRequests: HTTP/1 requests pipelined on one connection are all answered,
// in order: written at once, or the next one while the first is handled with its
// background read parked, or already past the grace (then the background read takes
// the next request's first byte).
func TestPipelinedRequests(t *testing.T) {
	for _, tc := range []struct {
		name     string
		grace    time.Duration
		together bool
		wait     func(c *trackedConn, atStart int64) bool // what the first handler waits for
	}{
		{name: "together", grace: time.Hour, together: true},
		{name: "parked", grace: time.Hour, wait: func(c *trackedConn, _ int64) bool { return c.bg.Load() == bgParked }},
		{name: "past grace", grace: time.Millisecond, wait: func(c *trackedConn, atStart int64) bool {
			return c.bytesRead() != atStart // the background read took a byte
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inFirst := make(chan struct{})
			sent := make(chan struct{})
			addr, _ := serveGrace(t, tc.grace, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/1" && !tc.together {
					at := connOf(r).bytesRead()
					close(inFirst)
					<-sent
					if !waitUntil(func() bool { return tc.wait(connOf(r), at) }) {
						http.Error(w, "never saw the background read", http.StatusInternalServerError)
						return
					}
				}
				io.WriteString(w, r.URL.Path)
			})
			c, br := dialRaw(t, addr)
			req := func(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: test\r\n\r\n" }
			if tc.together {
				io.WriteString(c, req("/1")+req("/2")+req("/3"))
			} else {
				io.WriteString(c, req("/1"))
				<-inFirst
				io.WriteString(c, req("/2")+req("/3"))
				close(sent)
			}
			for _, want := range []string{"/1", "/2", "/3"} {
				if status, body, err := readBody(br); err != nil || status != 200 || body != want {
					t.Fatalf("response: %d %q %v, want 200 %q", status, body, err, want)
				}
			}
		})
	}
}

// TestBackgroundReadHammer: many requests on several keep-alive connections, with
// handlers that return at once, wait for their background read to park, or outlast a
// tiny grace (the read goes to the socket), and clients that leave mid-request. Every
// request on a connection that stays is answered in order, every request whose client
// left is canceled, and no goroutine is left over. Run it with -race.
func TestBackgroundReadHammer(t *testing.T) {
	conns, requests := 6, 150
	if testing.Short() {
		conns, requests = 3, 40
	}
	before := runtime.NumGoroutine()
	var canceled atomic.Int64
	addr, _ := serveGrace(t, 200*time.Microsecond, func(w http.ResponseWriter, r *http.Request) {
		switch mode := r.URL.Query().Get("m"); mode {
		case "park":
			c := connOf(r)
			waitUntil(func() bool { return c.bg.Load() != bgNone || c.rd.Load()&readMask != 0 })
		case "sleep":
			time.Sleep(time.Millisecond) // past the grace: the background read reaches the socket
		case "leave":
			select {
			case <-r.Context().Done():
				canceled.Add(1)
			case <-time.After(30 * time.Second):
			}
			return
		}
		io.WriteString(w, r.URL.Path)
	})
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	left := 0
	for i := range conns {
		leaves := i%3 == 2 // some connections end with a client leaving mid-request
		if leaves {
			left++
		}
		wg.Go(func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(60 * time.Second))
			br := bufio.NewReader(c)
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for j := range requests {
				path := fmt.Sprintf("/c%d/r%d", i, j)
				mode := []string{"", "", "park", "sleep"}[rng.IntN(4)]
				// Sometimes two requests pipelined.
				pipe := rng.IntN(8) == 0
				msg := "GET " + path + "?m=" + mode + " HTTP/1.1\r\nHost: test\r\n\r\n"
				if pipe {
					msg += "GET " + path + "b HTTP/1.1\r\nHost: test\r\n\r\n"
				}
				if _, err := io.WriteString(c, msg); err != nil {
					errs <- fmt.Errorf("conn %d request %d: %w", i, j, err)
					return
				}
				wants := []string{path}
				if pipe {
					wants = append(wants, path+"b")
				}
				for _, want := range wants {
					if status, body, err := readBody(br); err != nil || status != 200 || body != want {
						errs <- fmt.Errorf("conn %d: %d %q %v, want 200 %q", i, status, body, err, want)
						return
					}
				}
			}
			if leaves {
				// Closed by the defer right after: the request still arrives, and its
				// handler must see its context canceled.
				io.WriteString(c, "GET /leave?m=leave HTTP/1.1\r\nHost: test\r\n\r\n")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		if n := canceled.Load(); n != int64(left) {
			return fmt.Errorf("%d of %d requests whose client left were canceled", n, left)
		}
		return nil
	})
	// The clients are gone and each server goroutine ends on its connection's EOF.
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		if n := runtime.NumGoroutine(); n > before+2 {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			return fmt.Errorf("%d goroutines, %d before the hammer:\n%s", n, before, firstLines(string(buf), 40))
		}
		return nil
	})
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

// TestBackgroundAbortHammer: net/http's abort, asked for while its background read is
// starting on another goroutine, always ends it, however the two interleave (before
// the read looks at the deadline, between that and parking, parked), and never puts a
// deadline on the socket; Close, likewise, always ends it. The grace is longer than
// the test, so a lost wake-up hangs the read and fails the round.
func TestBackgroundAbortHammer(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 50
	}
	t.Run("abort", func(t *testing.T) {
		server, _ := tcpPair(t)
		count := &socketDeadlines{}
		c := &trackedConn{Conn: &deadlineCountConn{Conn: server, count: count}, l: &connLimiter{epoch: time.Now(), grace: time.Hour}}
		c.setState(http.StateActive)
		for i := range n {
			c.SetReadDeadline(time.Time{}) // startBackgroundRead
			done := startRead(c)
			yield(i)
			c.SetReadDeadline(aLongTimeAgo)
			awaitRead(t, i, done, func(err error) bool {
				ne, ok := err.(net.Error) // as net/http's backgroundRead tests it
				return ok && ne.Timeout()
			})
			if p := c.bg.Load(); p != bgNone {
				t.Fatalf("round %d: phase %d after the abort, want none", i, p)
			}
		}
		c.SetReadDeadline(time.Time{})
		if n := count.n.Load(); n != 0 {
			t.Fatalf("%d read deadlines put on the socket, want none", n)
		}
	})
	// The narrowest interleavings, made to happen: the abort or Close after the read
	// has found no deadline but before it parks.
	for _, tc := range []struct {
		name string
		end  func(c *trackedConn)
		want func(error) bool
	}{
		{"abort before parking", func(c *trackedConn) { c.SetReadDeadline(aLongTimeAgo) }, isTimeout},
		{"close before parking", func(c *trackedConn) { c.Close() }, func(err error) bool { return errors.Is(err, net.ErrClosed) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server, _ := tcpPair(t)
			count := &socketDeadlines{}
			l := &connLimiter{epoch: time.Now(), grace: time.Hour, open: 1}
			c := &trackedConn{Conn: &deadlineCountConn{Conn: server, count: count}, l: l}
			l.beforePark = tc.end
			c.setState(http.StateActive)
			awaitRead(t, 0, startRead(c), tc.want)
			if n := count.n.Load(); n != 0 {
				t.Fatalf("%d read deadlines put on the socket, want none", n)
			}
		})
	}
	t.Run("close", func(t *testing.T) {
		for i := range max(n/6, 8) {
			server, _ := tcpPair(t)
			c := &trackedConn{Conn: server, l: &connLimiter{epoch: time.Now(), grace: time.Hour, open: 1}}
			c.setState(http.StateActive)
			done := startRead(c)
			yield(i)
			c.Close()
			awaitRead(t, i, done, func(err error) bool { return errors.Is(err, net.ErrClosed) })
			// Closed for good: a later background read does not park.
			awaitRead(t, i, startRead(c), func(err error) bool { return errors.Is(err, net.ErrClosed) })
		}
	})
}

// TestBackgroundReadOverTLS: over TLS, net/http's 1-byte background read reaches the
// tracked connection as the tls.Conn's record reads (at least 512 bytes), which go to
// the socket at once: a TLS connection is watched for its client from the start, as
// before, even with a grace longer than the test.
func TestBackgroundReadOverTLS(t *testing.T) {
	ca := fermiontest.NewCA(t)
	certFile, keyFile := ca.Issue(t, t.TempDir(), 2, time.Now().Add(time.Hour))
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	server, client := tcpPair(t)
	c := &trackedConn{Conn: server, l: &connLimiter{epoch: time.Now(), grace: time.Hour}}
	c.setState(http.StateActive)
	sc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
	cc := tls.Client(client, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	handshake := make(chan error, 1)
	go func() { handshake <- cc.Handshake() }()
	if err := sc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-handshake; err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := sc.Read(b[:]) // net/http's background read, over TLS
		done <- err
	}()
	cc.Close() // the client leaves: close_notify, then EOF
	select {
	case err := <-done:
		if err != io.EOF {
			t.Fatalf("background read over TLS after the client left: %v, want EOF", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("background read over TLS parked: a client leaving was not seen")
	}
}

// TestBackgroundGraceRace: the grace running out as net/http's abort comes, at every
// interleaving the rounds reach: whichever wins, the read ends with the abort's
// timeout (from the socket when the grace won), never hangs, and the connection's
// next read is served.
func TestBackgroundGraceRace(t *testing.T) {
	n := 200
	if testing.Short() {
		n = 40
	}
	server, client := tcpPair(t)
	c := &trackedConn{Conn: server, l: &connLimiter{epoch: time.Now(), grace: 20 * time.Microsecond}}
	c.setState(http.StateActive)
	for i := range n {
		c.SetReadDeadline(time.Time{})
		done := startRead(c)
		for deadline := time.Now().Add(time.Duration(i%5) * 10 * time.Microsecond); time.Now().Before(deadline); {
			runtime.Gosched()
		}
		c.SetReadDeadline(aLongTimeAgo)
		awaitRead(t, i, done, isTimeout)
		if p := c.bg.Load(); p != bgNone {
			t.Fatalf("round %d: phase %d, want none", i, p)
		}
	}
	c.SetReadDeadline(time.Time{})
	client.Write([]byte("xy"))
	var b [2]byte
	if _, err := io.ReadFull(c, b[:]); err != nil || string(b[:]) != "xy" {
		t.Fatalf("read after the rounds: %q, %v", b, err)
	}
}

// startRead starts a 1-byte Read of c, as net/http's background read is, and returns
// where its error comes.
func startRead(c *trackedConn) chan error {
	done := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := c.Read(b[:])
		done <- err
	}()
	return done
}

// awaitRead fails the test unless the read behind done (startRead) ends, within a
// bound no healthy run nears, with an error want accepts.
func awaitRead(t *testing.T, round int, done chan error, want func(error) bool) {
	t.Helper()
	select {
	case err := <-done:
		if !want(err) {
			t.Fatalf("round %d: read ended with %v", round, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("round %d: the read was not ended", round)
	}
}
