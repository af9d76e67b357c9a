package gateway

import (
	"context"
	"net"
	"testing"
)

// ServeListening serves g on its own server (g.Serve: the connection limiter, the
// gateway's timeouts, TLS if configured) on a 127.0.0.1 port until the test ends, and
// returns the listener. Exported for the external tests too.
func ServeListening(t *testing.T, g *Gateway) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln
}
