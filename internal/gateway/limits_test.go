package gateway_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/gateway"
	"fermion.dev/fermion/internal/telemetry"
)

// limited is a gateway serving hello and echo on a real listener under limits.
type limited struct {
	metrics *telemetry.Metrics
	addr    string
}

func serveLimited(t *testing.T, lim gateway.Limits) *limited {
	t.Helper()
	hello, echo := sharedFunctions(t)
	l := &limited{metrics: telemetry.NewMetrics("test")}
	g := gateway.New(gateway.Config{Metrics: l.metrics, Telemetry: true, Limits: lim, DrainTimeout: 5 * time.Second})
	setRoutes(t, g, gateway.Route{Prefix: "/hello", Target: hello}, gateway.Route{Prefix: "/echo", Target: echo})
	l.addr = gateway.ServeListening(t, g).Addr().String()
	return l
}

func (l *limited) rejections(t *testing.T, reason string) float64 {
	t.Helper()
	return metricValue(t, l.metrics, "fermion_gateway_rejections_total", map[string]string{"reason": reason})
}

// dial opens a raw connection, closed at the end of the test.
func (l *limited) dial(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", l.addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// getOn sends GET path on c (keeping the connection open) and reads the response.
func getOn(t *testing.T, c net.Conn, br *bufio.Reader, path string) *http.Response {
	t.Helper()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// waitClosed waits (at most 30 s: the limits under test are far shorter) for the server
// to close c and returns what it sent first.
func waitClosed(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after 30 s (got %q)", b)
	}
	return string(b)
}

// TestClientTimeouts: clients that send their header or body too slowly, or stop, are cut
// and counted by reason; an upload at a reasonable rate that lasts longer than the body
// timeout is not, nor is a keep-alive connection that simply goes idle; a normal request
// is served meanwhile.
func TestClientTimeouts(t *testing.T) {
	l := serveLimited(t, gateway.Limits{
		MaxConnections: 64,
		HeaderTimeout:  300 * time.Millisecond,
		BodyTimeout:    300 * time.Millisecond,
		MinBodyRate:    1024,
		IdleTimeout:    300 * time.Millisecond,
	})
	trickle := func(c net.Conn, stop <-chan struct{}) {
		tick := time.NewTicker(50 * time.Millisecond) // pacing the slow client, not waiting
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}

	t.Run("silent connection", func(t *testing.T) {
		before := l.rejections(t, telemetry.RejectHeaderTimeout)
		c := l.dial(t)
		if got := waitClosed(t, c); got != "" {
			t.Fatalf("got %q before the close, want nothing", got)
		}
		waitMetric(t, l.metrics, "fermion_gateway_rejections_total", map[string]string{"reason": telemetry.RejectHeaderTimeout}, before+1)
	})
	t.Run("header sent byte by byte", func(t *testing.T) {
		before := l.rejections(t, telemetry.RejectHeaderTimeout)
		c := l.dial(t)
		stop := make(chan struct{})
		defer close(stop)
		fmt.Fprintf(c, "GET /hello HTTP/1.1\r\nHost: test\r\nX-Slow: ")
		go trickle(c, stop)
		waitClosed(t, c)
		waitMetric(t, l.metrics, "fermion_gateway_rejections_total", map[string]string{"reason": telemetry.RejectHeaderTimeout}, before+1)
	})
	t.Run("body trickled below the minimum rate", func(t *testing.T) {
		before := l.rejections(t, telemetry.RejectBodyTimeout)
		c := l.dial(t)
		stop := make(chan struct{})
		defer close(stop)
		fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\n")
		go trickle(c, stop) // 20 bytes/s, each byte well within the body timeout
		got := waitClosed(t, c)
		if !strings.HasPrefix(got, "HTTP/1.1 408 ") || !strings.Contains(got, "1024 bytes/s") {
			t.Fatalf("got %q, want a 408 naming the minimum rate", got)
		}
		waitMetric(t, l.metrics, "fermion_gateway_rejections_total", map[string]string{"reason": telemetry.RejectBodyTimeout}, before+1)
		waitMetric(t, l.metrics, "fermion_request_errors_total", map[string]string{"function": "echo", "reason": telemetry.RejectBodyTimeout}, 1)
	})
	t.Run("body stops", func(t *testing.T) {
		before := l.rejections(t, telemetry.RejectBodyTimeout)
		c := l.dial(t)
		fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\nhalf")
		if got := waitClosed(t, c); !strings.HasPrefix(got, "HTTP/1.1 408 ") {
			t.Fatalf("got %q, want 408", got)
		}
		waitMetric(t, l.metrics, "fermion_gateway_rejections_total", map[string]string{"reason": telemetry.RejectBodyTimeout}, before+1)
	})
	t.Run("steady upload longer than the body timeout", func(t *testing.T) {
		// A server of its own with a body timeout far above the pacing, so a busy
		// machine that delays a write cannot cut an honest upload.
		l := serveLimited(t, gateway.Limits{MaxConnections: 64, BodyTimeout: 2 * time.Second, MinBodyRate: 1024})
		const chunk, chunks = 8 << 10, 40 // 320 KiB over ~2.8 s: ~115 KB/s
		c := l.dial(t)
		c.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n", chunk*chunks)
		tick := time.NewTicker(70 * time.Millisecond)
		defer tick.Stop()
		for range chunks {
			<-tick.C
			if _, err := c.Write([]byte(strings.Repeat("u", chunk))); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("steady upload = %d %s, want 200", resp.StatusCode, b)
		}
	})
	t.Run("idle keep-alive is closed without a rejection", func(t *testing.T) {
		before := l.rejections(t, telemetry.RejectHeaderTimeout)
		c := l.dial(t)
		if resp := getOn(t, c, bufio.NewReader(c), "/hello"); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /hello = %d", resp.StatusCode)
		}
		waitClosed(t, c)
		if got := l.rejections(t, telemetry.RejectHeaderTimeout); got != before {
			t.Fatalf("header timeouts went from %v to %v for a connection that was only idle", before, got)
		}
	})
	t.Run("idle keep-alive that starts its next request and stalls", func(t *testing.T) {
		// Fewer bytes than net/http waits for before it reads a header: the connection
		// is still idle, and closing it is a header timeout.
		before := l.rejections(t, telemetry.RejectHeaderTimeout)
		c := l.dial(t)
		if resp := getOn(t, c, bufio.NewReader(c), "/hello"); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /hello = %d", resp.StatusCode)
		}
		if _, err := io.WriteString(c, "GE"); err != nil {
			t.Fatal(err)
		}
		waitClosed(t, c)
		waitMetric(t, l.metrics, "fermion_gateway_rejections_total", map[string]string{"reason": telemetry.RejectHeaderTimeout}, before+1)
	})
	t.Run("normal request while slow clients trickle", func(t *testing.T) {
		stop := make(chan struct{})
		defer close(stop)
		for range 8 {
			c := l.dial(t)
			fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\n")
			go trickle(c, stop)
		}
		c := l.dial(t)
		if resp := getOn(t, c, bufio.NewReader(c), "/hello"); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /hello = %d while slow clients trickle, want 200", resp.StatusCode)
		}
	})
}

// TestConnectionCap: past the cap, idle keep-alive connections make room for newcomers;
// when none is idle, a newcomer gets a 503 with Retry-After at once, without its request
// being waited for; a normal request is served again once a slot frees.
func TestConnectionCap(t *testing.T) {
	const max = 4
	l := serveLimited(t, gateway.Limits{MaxConnections: max, HeaderTimeout: time.Minute, IdleTimeout: time.Minute})
	open := func(want float64) {
		t.Helper()
		waitMetric(t, l.metrics, "fermion_gateway_connections", nil, want)
	}
	waitMetric(t, l.metrics, "fermion_gateway_connection_limit", nil, max)

	t.Run("idle connections make room", func(t *testing.T) {
		for range max {
			c := l.dial(t)
			if resp := getOn(t, c, bufio.NewReader(c), "/hello"); resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /hello = %d", resp.StatusCode)
			}
		}
		open(max)
		// The server marks a connection idle just after writing its response: a newcomer
		// arriving in between may still be refused, so it tries again.
		fermiontest.WaitFor(t, 10*time.Second, func() error {
			c := l.dial(t)
			if resp := getOn(t, c, bufio.NewReader(c), "/hello"); resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET /hello at the cap with idle connections = %d, want 200", resp.StatusCode)
			}
			return nil
		})
		waitMetric(t, l.metrics, "fermion_gateway_idle_connections_closed_total", nil, 1)
	})

	t.Run("busy connections: the flood gets 503", func(t *testing.T) {
		// The first subtest's connections were closed at its end; until the server has
		// seen them go, a held connection below could be refused in their place.
		open(0)
		// Connections that sent nothing yet are not idle: they hold their slots.
		var held []net.Conn
		for range max {
			held = append(held, l.dial(t))
		}
		open(max)
		// The first subtest's retries may have been refused: count from here.
		refused := metricValue(t, l.metrics, "fermion_gateway_rejections_total", map[string]string{"reason": telemetry.RejectConnections})
		for i := range 3 {
			c := l.dial(t)
			start := time.Now()
			fmt.Fprintf(c, "GET /hello HTTP/1.1\r\nHost: test\r\n\r\n")
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("flood connection %d: %v", i, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" || !strings.Contains(string(b), "connection limit") {
				t.Fatalf("flood connection %d: %d Retry-After %q %q, want 503 with Retry-After 1", i, resp.StatusCode, resp.Header.Get("Retry-After"), b)
			}
			// Generous: the refusal needs no function, no timeout, only a write.
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("503 took %v", d)
			}
		}
		waitMetric(t, l.metrics, "fermion_gateway_rejections_total", map[string]string{"reason": telemetry.RejectConnections}, refused+3)
		open(max)

		held[0].Close()
		open(max - 1)
		c := l.dial(t)
		if resp := getOn(t, c, bufio.NewReader(c), "/hello"); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /hello once a slot freed = %d, want 200", resp.StatusCode)
		}
	})

	t.Run("hammer: slots are all given back", func(t *testing.T) {
		// Connections opened, used, refused and closed at once from many goroutines.
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for i := range 20 {
					c, err := net.DialTimeout("tcp", l.addr, 10*time.Second)
					if err != nil {
						t.Error(err)
						return
					}
					c.SetDeadline(time.Now().Add(30 * time.Second))
					if i%2 == 0 {
						fmt.Fprintf(c, "GET /hello HTTP/1.1\r\nHost: test\r\n\r\n")
						if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
							io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
						}
					}
					c.Close()
				}
			})
		}
		wg.Wait()
		open(0)
	})
}

// TestLimitsValidate: limits that cannot work are refused with the reason.
func TestLimitsValidate(t *testing.T) {
	tests := []struct {
		name    string
		lim     gateway.Limits
		wantErr string
	}{
		{name: "defaults", lim: gateway.Limits{}},
		{name: "all off", lim: gateway.Limits{MaxConnections: -1, HeaderTimeout: -1, BodyTimeout: -1, MinBodyRate: -1, WriteTimeout: -1, IdleTimeout: -1, MaxHeaderBytes: -1}},
		{name: "tiny header cap", lim: gateway.Limits{MaxHeaderBytes: 100}, wantErr: "below 1 KiB"},
		{name: "rate without timeout", lim: gateway.Limits{MinBodyRate: 100, BodyTimeout: -1}, wantErr: "needs a body timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.lim.Validate()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Validate() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// pipeListener hands out the server end of one synchronous in-memory connection: a
// client that does not read blocks every write, whatever the response's size.
type pipeListener struct {
	conn   net.Conn
	once   chan struct{}
	closed chan struct{}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case <-l.once:
		return l.conn, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	select {
	case <-l.closed:
	default:
		close(l.closed)
	}
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// TestWriteTimeout: a client that stops reading its response is cut after the write
// timeout and counted, rather than holding its connection forever. A large response is
// written from the handler, which records the request's error; a small one is written
// by the server once the handler has returned, and the connection counts it.
func TestWriteTimeout(t *testing.T) {
	hello, echo := sharedFunctions(t)
	for _, tc := range []struct {
		name, request string
		// requestErrors is the request's own write-timeout error count.
		requestErrors float64
		function      string
	}{
		{name: "large body", request: "GET /echo?q=" + strings.Repeat("x", 8<<10) + " HTTP/1.1\r\nHost: test\r\n\r\n", requestErrors: 1, function: "echo"},
		{name: "small body", request: "GET /hello HTTP/1.1\r\nHost: test\r\n\r\n", function: "hello"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := telemetry.NewMetrics("test")
			g := gateway.New(gateway.Config{Metrics: m, Telemetry: true, DrainTimeout: 5 * time.Second,
				Limits: gateway.Limits{WriteTimeout: 200 * time.Millisecond}})
			setRoutes(t, g, gateway.Route{Prefix: "/hello", Target: hello}, gateway.Route{Prefix: "/echo", Target: echo})
			server, client := net.Pipe()
			defer client.Close()
			ln := &pipeListener{conn: server, once: make(chan struct{}, 1), closed: make(chan struct{})}
			ln.once <- struct{}{}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- g.Serve(ctx, ln) }()
			defer func() {
				cancel()
				<-done
			}()
			client.SetWriteDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.WriteString(client, tc.request); err != nil {
				t.Fatal(err)
			}
			// The client reads nothing: the response cannot be written.
			waitMetric(t, m, "fermion_gateway_rejections_total", map[string]string{"reason": telemetry.RejectWriteTimeout}, 1)
			// The request is recorded once the handler returns, before the server
			// closes the connection; the connection's count comes after that write.
			waitMetric(t, m, "fermion_requests_total", map[string]string{"function": tc.function, "code": "2xx"}, 1)
			if n := metricValue(t, m, "fermion_request_errors_total", map[string]string{"function": tc.function, "reason": telemetry.RejectWriteTimeout}); n != tc.requestErrors {
				t.Errorf("request write-timeout errors = %v, want %v", n, tc.requestErrors)
			}
			if n := metricValue(t, m, "fermion_gateway_rejections_total", map[string]string{"reason": telemetry.RejectWriteTimeout}); n != 1 {
				t.Errorf("gateway write-timeout rejections = %v, want 1 (counted once)", n)
			}
		})
	}
}

// TestStaleDeadlinesOnKeepAlive: the socket's write deadline is moved lazily, so after a
// pause longer than the write timeout a keep-alive connection carries a deadline that
// has passed. The next response must still be written, and so must an error net/http
// writes itself (431 for a header past the limit), with no write-timeout counted.
func TestStaleDeadlinesOnKeepAlive(t *testing.T) {
	const writeTimeout = 50 * time.Millisecond
	l := serveLimited(t, gateway.Limits{WriteTimeout: writeTimeout, MaxHeaderBytes: 1024})
	c := l.dial(t)
	br := bufio.NewReader(c)
	for i := range 3 {
		if i > 0 {
			// Not waiting for anything: this lets the last response's deadline lapse.
			time.Sleep(3 * writeTimeout)
		}
		if resp := getOn(t, c, br, "/hello"); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d after a pause: %s", i, resp.Status)
		}
	}
	time.Sleep(3 * writeTimeout) // as above
	c.SetDeadline(time.Now().Add(30 * time.Second))
	big := strings.Repeat("x", 16<<10) // past MaxHeaderBytes and net/http's 4 KiB of slack
	if _, err := fmt.Fprintf(c, "GET /hello HTTP/1.1\r\nHost: test\r\nX-Big: %s\r\n\r\n", big); err != nil {
		t.Fatal(err)
	}
	if got := waitClosed(t, c); !strings.Contains(got, "431") {
		t.Fatalf("a header past the limit after a pause got %q, want a 431", got)
	}
	if n := l.rejections(t, telemetry.RejectWriteTimeout); n != 0 {
		t.Fatalf("%v write timeouts counted, want none", n)
	}
}

// TestWriteDeadlineOverTLS: with the gateway terminating TLS, responses are written
// under the write timeout (moved on the tracked connection beneath the TLS one, or
// through the ResponseController when that is not found): keep-alive requests over one
// HTTPS connection are answered, and none counts a write timeout, including after a
// pause longer than the timeout.
func TestWriteDeadlineOverTLS(t *testing.T) {
	const writeTimeout = 50 * time.Millisecond
	hello, _ := sharedFunctions(t)
	m := telemetry.NewMetrics("test")
	certs := httptest.NewUnstartedServer(nil)
	certs.StartTLS() // for its certificate and a client that trusts it
	t.Cleanup(certs.Close)
	g := gateway.New(gateway.Config{Metrics: m, Telemetry: true, DrainTimeout: 5 * time.Second,
		Limits: gateway.Limits{WriteTimeout: writeTimeout},
		TLS:    func(ln net.Listener) net.Listener { return tls.NewListener(ln, certs.TLS) }})
	setRoutes(t, g, gateway.Route{Prefix: "/hello", Target: hello})
	ln := gateway.ServeListening(t, g)
	client := certs.Client()
	for i := range 3 {
		if i == 2 {
			// Not waiting for anything: this lets the last response's deadline lapse.
			time.Sleep(3 * writeTimeout)
		}
		resp, err := client.Get("https://" + ln.Addr().String() + "/hello")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Hello") {
			t.Fatalf("request %d: %s %q %v", i, resp.Status, body, err)
		}
	}
	if n := metricValue(t, m, "fermion_gateway_rejections_total", map[string]string{"reason": telemetry.RejectWriteTimeout}); n != 0 {
		t.Fatalf("%v write timeouts counted, want none", n)
	}
}

// TestKeepAliveExchangeReuse: a keep-alive connection reuses one exchange (ids,
// header values, the response's buffer) for its requests. Each response must still
// carry exactly its own request id, trace context and body, whatever the sizes and
// routes before it, including a 404 in between.
func TestKeepAliveExchangeReuse(t *testing.T) {
	l := serveLimited(t, gateway.Limits{})
	c := l.dial(t)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	for i, n := range []int{1500, 3, 3000, 0, 40, 1900, 2} {
		id := fmt.Sprintf("req-%d-%s", i, strings.Repeat("i", i*7))
		path := "/echo?q=" + strings.Repeat(string(rune('a'+i)), n)
		if i == 3 {
			path = "/nowhere"
		}
		if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: test\r\nX-Request-Id: %s\r\n\r\n", path, id); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got := resp.Header.Get("X-Request-Id"); got != id {
			t.Fatalf("request %d: X-Request-Id %q, want %q", i, got, id)
		}
		if tp := resp.Header.Get("Traceparent"); len(tp) != 55 {
			t.Fatalf("request %d: traceparent %q", i, tp)
		}
		if i == 3 {
			if resp.StatusCode != http.StatusNotFound {
				t.Fatalf("request %d: %s, want 404", i, resp.Status)
			}
			continue
		}
		var echo struct {
			Query   string
			Headers map[string][]string
		}
		if err := json.Unmarshal(body, &echo); err != nil || echo.Query != "q="+strings.Repeat(string(rune('a'+i)), n) {
			t.Fatalf("request %d: echoed %q (%v)", i, body, err)
		}
		if got := echo.Headers["X-Request-Id"]; len(got) != 1 || got[0] != id {
			t.Fatalf("request %d: the guest saw X-Request-Id %q, want %q", i, got, id)
		}
	}
}

// TestContentLengthOnOwnServer: on the gateway's own server, every response declares
// its body's exact length, whoever writes it (net/http for a body left in its buffer,
// the gateway for larger ones, which are flushed before the handler returns), never
// chunked, and a HEAD response declares what the guest answered.
func TestContentLengthOnOwnServer(t *testing.T) {
	l := serveLimited(t, gateway.Limits{})
	c := l.dial(t)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	var small, large bool
	for _, n := range []int{0, 10, 1700, 1800, 1900, 2000, 2100, 5000, 70000} {
		path := "/echo?q=" + strings.Repeat("a", n)
		for _, method := range []string{"GET", "HEAD"} {
			if _, err := fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: test\r\n\r\n", method, path); err != nil {
				t.Fatal(err)
			}
			req := &http.Request{Method: method}
			resp, err := http.ReadResponse(br, req)
			if err != nil {
				t.Fatalf("%s q=%d: %v", method, n, err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("%s q=%d: %v", method, n, err)
			}
			if resp.StatusCode != 200 || len(resp.TransferEncoding) != 0 {
				t.Fatalf("%s q=%d: %s, transfer encoding %q", method, n, resp.Status, resp.TransferEncoding)
			}
			if got := resp.Header.Values("Content-Length"); len(got) != 1 {
				t.Fatalf("%s q=%d: Content-Length %q, want one", method, n, got)
			}
			if method == "HEAD" {
				if len(body) != 0 || resp.ContentLength <= 0 {
					t.Fatalf("HEAD q=%d: %d body bytes, Content-Length %d", n, len(body), resp.ContentLength)
				}
				continue
			}
			if resp.ContentLength != int64(len(body)) {
				t.Fatalf("GET q=%d: Content-Length %d for %d bytes", n, resp.ContentLength, len(body))
			}
			small = small || len(body) <= 2048
			large = large || len(body) > 2048
		}
	}
	if !small || !large {
		t.Fatalf("bodies small %v, large %v: want both sides of net/http's buffer", small, large)
	}
}

// TestOwnServerHeaderNames: on the gateway's own server the guest gets the client's
// header names canonical however the client spelled them, though the sandbox no longer
// canonicalises them itself there (sandbox.Request.CanonicalHeader): net/http's parsing
// has.
func TestOwnServerHeaderNames(t *testing.T) {
	l := serveLimited(t, gateway.Limits{})
	c := l.dial(t)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(c, "GET /echo HTTP/1.1\r\nHost: test\r\nx-lower-case: a\r\nX-MiXed-CASE: b\r\nx-request-id: caller-id\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var echo struct{ Headers map[string][]string }
	if err := json.NewDecoder(resp.Body).Decode(&echo); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"X-Lower-Case": "a", "X-Mixed-Case": "b", "X-Request-Id": "caller-id"} {
		if got := echo.Headers[name]; len(got) != 1 || got[0] != want {
			t.Errorf("the guest saw %s %q, want [%s] (headers %v)", name, got, want, echo.Headers)
		}
	}
}

// TestContentLengthOverHTTP2: over TLS the gateway's own server speaks HTTP/2, whose
// streams also declare a buffered body's length when the handler returns: every
// response declares its exact length there too, and HEAD what the guest answered.
func TestContentLengthOverHTTP2(t *testing.T) {
	_, echo := sharedFunctions(t)
	certs := httptest.NewUnstartedServer(nil)
	certs.EnableHTTP2 = true
	certs.StartTLS() // for its certificate and a client that trusts it and offers h2
	t.Cleanup(certs.Close)
	g := gateway.New(gateway.Config{DrainTimeout: 5 * time.Second,
		TLS: func(ln net.Listener) net.Listener { return tls.NewListener(ln, certs.TLS) }})
	setRoutes(t, g, gateway.Route{Prefix: "/echo", Target: echo})
	ln := gateway.ServeListening(t, g)
	client := certs.Client()
	client.Timeout = 30 * time.Second
	base := "https://" + ln.Addr().String() + "/echo?q="
	for _, n := range []int{0, 1800, 2100, 5000} { // bodies on both sides of 2 KiB
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			req, err := http.NewRequest(method, base+strings.Repeat("a", n), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s q=%d: %v", method, n, err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
				t.Fatalf("%s q=%d: %s over %s, %v", method, n, resp.Status, resp.Proto, err)
			}
			want := int64(len(body))
			if method == http.MethodHead {
				want = resp.ContentLength // any, but declared
				if want <= 0 {
					t.Fatalf("HEAD q=%d: Content-Length %d, want the guest's body's", n, want)
				}
			}
			if resp.ContentLength != want {
				t.Fatalf("%s q=%d: Content-Length %d for %d bytes", method, n, resp.ContentLength, len(body))
			}
		}
	}
}
