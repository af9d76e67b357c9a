package gateway

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
)

// uriTarget answers 200 and sends every request's URI, as the guest would get it.
type uriTarget struct {
	fixedTarget
	uris chan string
}

func (t *uriTarget) Invoke(ctx context.Context, req *sandbox.Request) (*sandbox.Response, error) {
	t.uris <- req.URI
	return t.fixedTarget.Invoke(ctx, req)
}

// TestRequestURI: the guest is given the request target's path and query exactly as
// net/url's RequestURI gives them, whether the gateway takes the target as received
// (origin form, kept bytes) or asks net/url (anything else), over the gateway's own
// server and for requests built elsewhere.
func TestRequestURI(t *testing.T) {
	g := New(Config{})
	rt := &uriTarget{fixedTarget: fixedTarget{spec: sandbox.Spec{Name: "fixed", Version: "1", Limits: manifest.Limits{MaxRequestBody: 1 << 20}}}, uris: make(chan string, 1)}
	if err := g.SetRoutes([]Route{{Prefix: "/hello", Target: rt}}); err != nil {
		t.Fatal(err)
	}
	ln := ServeListening(t, g)
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)

	tests := []struct {
		name, target string
		want         string // what the guest gets
		kept         bool   // taken as received, without net/url
	}{
		{name: "plain", target: "/hello", want: "/hello", kept: true},
		{name: "query", target: "/hello/a?x=1&y=%20z&w=ä", want: "/hello/a?x=1&y=%20z&w=ä", kept: true},
		{name: "empty query", target: "/hello?", want: "/hello?", kept: true},
		{name: "percent-encoded path", target: "/hello/a%20b/c%2Fd/%7e", want: "/hello/a%20b/c%2Fd/%7e", kept: true},
		{name: "sub-delims", target: "/hello/!$&'()*+,;=:@[]~", want: "/hello/!$&'()*+,;=:@[]~", kept: true},
		{name: "raw UTF-8 path", target: "/hello/ä", want: "/hello/%C3%A4"},
		{name: "quote in path", target: "/hello/a\"b?q", want: "/hello/a%22b?q"},
		{name: "absolute form", target: "http://test/hello/a%2Fb?q=1", want: "/hello/a%2Fb?q=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := url.ParseRequestURI(tt.target)
			if err != nil {
				t.Fatal(err)
			}
			if got := u.RequestURI(); got != tt.want {
				t.Fatalf("the case is wrong: net/url gives %q for %q, the case wants %q", got, tt.target, tt.want)
			}
			if got := originFormKept(tt.target); got != tt.kept {
				t.Errorf("originFormKept(%q) = %v, want %v", tt.target, got, tt.kept)
			}

			// Over the gateway's own server.
			if _, err := conn.Write([]byte("GET " + tt.target + " HTTP/1.1\r\nHost: test\r\n\r\n")); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if got := <-rt.uris; got != tt.want {
				t.Errorf("over the gateway's server the guest got URI %q, want %q", got, tt.want)
			}

			// A request built elsewhere, whose RequestURI may say anything.
			r, err := http.NewRequest("GET", "http://test"+tt.want, nil)
			if err != nil {
				t.Fatal(err)
			}
			r.RequestURI = "/stale"
			w := &headerWriter{h: http.Header{}}
			g.ServeHTTP(w, r)
			if got := <-rt.uris; got != tt.want {
				t.Errorf("built elsewhere, the guest got URI %q, want %q", got, tt.want)
			}
		})
	}
}

// headerWriter is the least of an http.ResponseWriter.
type headerWriter struct{ h http.Header }

func (w *headerWriter) Header() http.Header         { return w.h }
func (w *headerWriter) WriteHeader(int)             {}
func (w *headerWriter) Write(p []byte) (int, error) { return len(p), nil }

// FuzzRequestURI: for every target net/http would accept (url.ParseRequestURI, as its
// readRequest parses), requestURI gives what net/url's RequestURI gives.
func FuzzRequestURI(f *testing.F) {
	for _, s := range []string{"/", "/hello", "/a%20b?x", "/a%2fb", "/a?", "/a??b", "/ä", "/a b", "//x", "/a#b", "/%41", "/a;b=c", "*", "http://h/p?q"} {
		f.Add(s)
	}
	tc := &trackedConn{}
	f.Fuzz(func(t *testing.T, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil || strings.ContainsAny(target, " \r\n") {
			return // net/http answers 400 before any handler
		}
		r := &http.Request{URL: u, RequestURI: target}
		if got, want := requestURI(tc, r), u.RequestURI(); got != want {
			t.Fatalf("requestURI(%q) = %q, net/url gives %q", target, got, want)
		}
	})
}

// BenchmarkRequestURI: the guest's URI taken as received against net/url's RequestURI,
// for wrk's target and one with a query.
func BenchmarkRequestURI(b *testing.B) {
	tc := &trackedConn{}
	for _, target := range []string{"/hello", "/hello/world?name=fermion&n=1"} {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			b.Fatal(err)
		}
		r := &http.Request{URL: u, RequestURI: target}
		b.Run("kept"+target, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				uriSink = requestURI(tc, r)
			}
		})
		b.Run("url"+target, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				uriSink = r.URL.RequestURI()
			}
		})
	}
}

var uriSink string
