package gateway

import (
	"context"
	"crypto/tls"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
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
		w := new(fermiontest.ServerWriter)
		g.ServeHTTP(w, r)
		x := conn.x
		if x == nil {
			t.Fatalf("request %d: the connection kept no exchange", i)
		}
		if x.req.Body != nil || x.req.Header != nil || x.resp.Body != nil || x.resp.Header != nil {
			t.Fatalf("request %d: the kept exchange still holds the request (body %d bytes, header %v) or the response (body %q)",
				i, len(x.req.Body), x.req.Header, x.resp.Body)
		}
		if got := w.Header().Get("X-Request-Id"); got == "" {
			t.Fatalf("request %d: no request id in the response", i)
		}
	}
}

// recordTarget answers 200 and keeps what it was asked: the request's header map and
// the fields the gateway added, copied before the exchange is reused.
type recordTarget struct {
	fixedTarget
	header http.Header
	added  sandbox.Header
}

func (t *recordTarget) Invoke(ctx context.Context, req *sandbox.Request) (*sandbox.Response, error) {
	t.header, t.added = req.Header.Clone(), slices.Clone(req.Added)
	return t.fixedTarget.Invoke(ctx, req)
}

// TestIDsBesideHeaderMap: the gateway hands the guest its ids beside the request's
// header map, which it leaves as the client sent it, and gives the client the same
// values.
func TestIDsBesideHeaderMap(t *testing.T) {
	g := New(Config{})
	rt := &recordTarget{fixedTarget: fixedTarget{spec: sandbox.Spec{Name: "fixed", Version: "1", Limits: manifest.Limits{MaxRequestBody: 1 << 20}}}}
	if err := g.SetRoutes([]Route{{Prefix: "/hello", Target: rt}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		header http.Header
		tls    bool
		want   []string // names of the added fields, in order
	}{
		{name: "none sent", header: http.Header{}, want: []string{"X-Request-Id", "Traceparent"}},
		{name: "client's ids", header: http.Header{"X-Request-Id": {"bad id"}, "Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
			"Tracestate": {"a=b"}, "Accept": {"*/*"}}, want: []string{"X-Request-Id", "Traceparent", "Tracestate"}},
		{name: "tls", header: http.Header{"X-Forwarded-Proto": {"http"}}, tls: true, want: []string{"X-Request-Id", "Traceparent", "X-Forwarded-Proto"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := http.NewRequest("GET", "http://test/hello", nil)
			if err != nil {
				t.Fatal(err)
			}
			r.Header = tt.header.Clone()
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			w := new(fermiontest.ServerWriter)
			g.ServeHTTP(w, r)
			if !reflect.DeepEqual(rt.header, tt.header) {
				t.Errorf("the target's header map is %v, want the client's %v", rt.header, tt.header)
			}
			var names []string
			for _, kv := range rt.added {
				names = append(names, kv.Name)
				if kv.Name == "X-Forwarded-Proto" {
					if kv.Value != "https" {
						t.Errorf("X-Forwarded-Proto = %q, want https", kv.Value)
					}
					continue
				}
				if got := w.Header()[kv.Name]; len(got) != 1 || got[0] != kv.Value {
					t.Errorf("the guest gets %s %q, the client %q", kv.Name, kv.Value, got)
				}
			}
			if !slices.Equal(names, tt.want) {
				t.Errorf("added fields %v, want %v", names, tt.want)
			}
		})
	}
}
