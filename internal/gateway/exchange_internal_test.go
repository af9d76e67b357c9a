package gateway

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
)

// TestExchangeReleased: a keep-alive connection keeps its exchange between requests,
// but nothing of the last request in it: not its header map or body (which may be up
// to the function's body limit) nor the response's views, so an idle connection pins
// only a small buffer.
func TestExchangeReleased(t *testing.T) {
	g := New(Config{})
	spec := sandbox.Spec{Name: "fixed", Version: "1", Limits: manifest.Limits{MaxRequestBody: 1 << 20}}
	if err := g.SetRoutes([]Route{{Prefix: "/hello", Target: &fixedTarget{spec: spec}}}); err != nil {
		t.Fatal(err)
	}
	conn := &trackedConn{l: &connLimiter{epoch: time.Now()}}
	ctx := context.WithValue(context.Background(), connKey{}, conn)
	for i := range 2 {
		r, err := http.NewRequestWithContext(ctx, "POST", "http://test/hello", strings.NewReader(strings.Repeat("b", 64<<10)))
		if err != nil {
			t.Fatal(err)
		}
		w := &discardWriter{h: http.Header{}}
		g.ServeHTTP(w, r)
		x := conn.x
		if x == nil {
			t.Fatalf("request %d: the connection kept no exchange", i)
		}
		if x.req.Body != nil || x.req.Header != nil || x.resp.Body != nil || x.resp.Header != nil {
			t.Fatalf("request %d: the kept exchange still holds the request (body %d bytes, header %v) or the response (body %q)",
				i, len(x.req.Body), x.req.Header, x.resp.Body)
		}
		if got := w.h.Get("X-Request-Id"); got == "" {
			t.Fatalf("request %d: no request id in the response", i)
		}
	}
}
