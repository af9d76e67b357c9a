package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/telemetry"
)

// TestConnLimiterHammer: connections opened, used, left idle, taken over and closed from
// many goroutines at once (run it with -race) leave the limiter's accounting exact: every
// slot given back, no connection left listed. No wasm guest: a plain handler.
//
// The sweeping case also runs the idle sweeper with a 4 ms timeout, so that it looks at
// and closes idle connections while requests make them active and idle again.
func TestConnLimiterHammer(t *testing.T) {
	for _, tt := range []struct {
		name string
		idle time.Duration // the sweeper's idle timeout; 0: no sweeper
	}{
		{"cap", 0},
		{"cap and sweeping", 4 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) { hammerLimiter(t, tt.idle) })
	}
}

func hammerLimiter(t *testing.T, idle time.Duration) {
	m := telemetry.NewMetrics("test")
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := newConnLimiter(raw, 4, true, m)
	if idle > 0 {
		ln.sweepIdle(idle)
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }),
		ConnState:         connState,
		ReadHeaderTimeout: 10 * time.Second,
	}
	served := make(chan struct{})
	go func() { srv.Serve(ln); close(served) }()
	defer func() { srv.Close(); <-served }()

	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 30 {
				c, err := net.DialTimeout("tcp", raw.Addr().String(), 10*time.Second)
				if err != nil {
					t.Error(err)
					return
				}
				c.SetDeadline(time.Now().Add(30 * time.Second))
				br := bufio.NewReader(c)
				// Some ask twice on one connection (idle in between), some once, some never.
				for range (g + i) % 3 {
					if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
						break
					}
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						break // taken over while idle, or refused and closed
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				c.Close()
			}
		})
	}
	wg.Wait()
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		ln.mu.Lock()
		defer ln.mu.Unlock()
		if ln.open != 0 || ln.conns != nil {
			return fmt.Errorf("%d slots held, listed %v, want none", ln.open, ln.conns != nil)
		}
		return nil
	})
}
