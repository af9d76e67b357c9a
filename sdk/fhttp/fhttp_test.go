package fhttp

import (
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/sdk/internal/guest"
	"fermion.dev/fermion/sdk/internal/guesttest"
)

func TestServeRequestAndResponse(t *testing.T) {
	var got *Request
	var gotBody []byte
	HandleFunc(func(w ResponseWriter, r *Request) {
		got = r
		gotBody, _ = io.ReadAll(r.Body)
		w.Header().Set("content-type", "text/plain")
		w.Header().Add("X-Many", "1")
		w.Header().Add("x-many", "2")
		w.WriteHeader(StatusCreated)
		w.WriteHeader(StatusTeapot) // ignored, as in net/http
		io.WriteString(w, "made ")
		w.Write([]byte(r.URL.Query().Get("q")))
	})
	resp, code := guesttest.Call(t, &abi.Request{Method: "POST", URI: "/p/x?q=thing", Host: "h.example", RemoteAddr: "10.0.0.1:5",
		Headers: guesttest.Headers("Content-Type", "application/json", "User-Agent", "curl", "X-A", "1", "X-A", "2"), Body: []byte(`{"a":1}`)})
	if code != abi.HandleOK {
		t.Fatalf("code %d", code)
	}
	if got.Method != "POST" || got.URL.Path != "/p/x" || got.URL.RawQuery != "q=thing" || got.Host != "h.example" ||
		got.RemoteAddr != "10.0.0.1:5" || got.RequestURI != "/p/x?q=thing" || got.ContentLength != 7 || got.Proto != "HTTP/1.1" {
		t.Fatalf("request %+v", got)
	}
	if !reflect.DeepEqual(got.Header, Header{"Content-Type": {"application/json"}, "User-Agent": {"curl"}, "X-A": {"1", "2"}}) {
		t.Fatalf("header %v", got.Header)
	}
	if got.UserAgent() != "curl" || got.Header.Get("x-a") != "1" || !reflect.DeepEqual(got.Header.Values("X-A"), []string{"1", "2"}) {
		t.Fatalf("header accessors: %q %q %q", got.UserAgent(), got.Header.Get("x-a"), got.Header.Values("X-A"))
	}
	if string(gotBody) != `{"a":1}` {
		t.Fatalf("body %q", gotBody)
	}
	if resp.Status != 201 || string(resp.Body) != "made thing" {
		t.Fatalf("response %d %q", resp.Status, resp.Body)
	}
	if !reflect.DeepEqual(guesttest.Values(resp, "X-Many"), []string{"1", "2"}) || !reflect.DeepEqual(guesttest.Values(resp, "Content-Type"), []string{"text/plain"}) {
		t.Fatalf("response headers %v", resp.Headers)
	}
}

// TestServeReusesNothingVisible checks that the reused response writer starts every
// request empty, that a large response's buffer is not kept, and that a request's
// strings outlive the buffer the next one reuses.
func TestServeReusesNothingVisible(t *testing.T) {
	var paths []string
	var firstHeader Header
	HandleFunc(func(w ResponseWriter, r *Request) {
		paths = append(paths, r.URL.Path)
		if r.URL.Path == "/first" {
			firstHeader = r.Header
			w.Header().Set("X-First", "yes")
			w.WriteHeader(StatusTeapot)
			w.Write(bytes.Repeat([]byte("x"), 2*guest.MaxKeptBody))
			return
		}
		w.Write([]byte("second"))
	})
	first, _ := guesttest.Call(t, &abi.Request{Method: "GET", URI: "/first", Headers: guesttest.Headers("X-Id", "one")})
	if first.Status != StatusTeapot || len(first.Body) != 2*guest.MaxKeptBody {
		t.Fatalf("first: %d, %d bytes", first.Status, len(first.Body))
	}
	second, _ := guesttest.Call(t, &abi.Request{Method: "GET", URI: "/second", Headers: guesttest.Headers("X-Id", "two")})
	if second.Status != 200 || string(second.Body) != "second" || guesttest.Values(second, "X-First") != nil {
		t.Fatalf("second saw the first: %d %q %v", second.Status, second.Body, second.Headers)
	}
	if _, kept := rw.Written(); kept > guest.MaxKeptBody {
		t.Fatalf("response buffer of %d bytes kept", kept)
	}
	if !reflect.DeepEqual(paths, []string{"/first", "/second"}) || firstHeader.Get("X-Id") != "one" {
		t.Fatalf("paths %q, first request's header %v", paths, firstHeader)
	}
	// No Content-Type: the host sniffs one, as net/http does; the guest adds none.
	if got := guesttest.Values(second, "Content-Type"); got != nil {
		t.Fatalf("guest set a content type: %v", got)
	}
}

// TestServeHeaderOrder covers entries the host never sends but another might: a name
// repeated apart from its first entry.
func TestServeHeaderOrder(t *testing.T) {
	var got Header
	HandleFunc(func(w ResponseWriter, r *Request) { got = r.Header })
	guesttest.Call(t, &abi.Request{Method: "GET", URI: "/", Headers: guesttest.Headers("X-A", "1", "X-B", "b", "X-A", "2", "X-C", "c", "X-C", "d")})
	want := Header{"X-A": {"1", "2"}, "X-B": {"b"}, "X-C": {"c", "d"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("header %v, want %v", got, want)
	}
}

func TestServeManyHeaders(t *testing.T) {
	var got Header
	HandleFunc(func(w ResponseWriter, r *Request) { got = r.Header })
	var hs []abi.Header
	want := Header{}
	for i := range 20 {
		name := "X-H" + string(rune('a'+i))
		hs = append(hs, abi.Header{Name: name, Value: name})
		want[name] = []string{name}
	}
	guesttest.Call(t, &abi.Request{Method: "GET", URI: "/", Headers: hs})
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("header %v", got)
	}
}

func TestServeFaults(t *testing.T) {
	HandleFunc(func(w ResponseWriter, r *Request) { panic("boom") })
	if _, code := guesttest.Call(t, &abi.Request{Method: "GET", URI: "/"}); code != abi.HandlePanic {
		t.Fatalf("panic: code %d", code)
	}
	if _, code := guest.Serve([]byte{1, 2}, nil); code != abi.HandleBadInput {
		t.Fatalf("garbage: code %d", code)
	}
	HandleFunc(func(w ResponseWriter, r *Request) { t.Fatal("handler called for a bad URI") })
	resp, code := guesttest.Call(t, &abi.Request{Method: "GET", URI: "no-slash"})
	if code != abi.HandleOK || resp.Status != StatusBadRequest || !strings.HasPrefix(string(resp.Body), "bad request: ") {
		t.Fatalf("bad URI: code %d status %d %q", code, resp.Status, resp.Body)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Handle(nil) did not panic")
		}
	}()
	Handle(nil)
}

func TestError(t *testing.T) {
	HandleFunc(func(w ResponseWriter, r *Request) {
		w.Header().Set("Content-Length", "99")
		w.Header().Set("Content-Type", "application/json")
		Error(w, "no such thing", StatusNotFound)
	})
	resp, _ := guesttest.Call(t, &abi.Request{Method: "GET", URI: "/"})
	if resp.Status != 404 || string(resp.Body) != "no such thing\n" || guesttest.Values(resp, "Content-Length") != nil ||
		!reflect.DeepEqual(guesttest.Values(resp, "Content-Type"), []string{"text/plain; charset=utf-8"}) ||
		!reflect.DeepEqual(guesttest.Values(resp, "X-Content-Type-Options"), []string{"nosniff"}) {
		t.Fatalf("%d %q %v", resp.Status, resp.Body, resp.Headers)
	}
}

func TestHeader(t *testing.T) {
	h := Header{}
	h.Add("x-a", "1")
	h.Add("X-A", "2")
	h.Set("content-type", "a")
	h.Set("Content-Type", "b")
	if !reflect.DeepEqual(h, Header{"X-A": {"1", "2"}, "Content-Type": {"b"}}) {
		t.Fatal(h)
	}
	c := h.Clone()
	c["X-A"][0] = "changed"
	h.Del("x-a")
	if h.Get("X-A") != "" || c.Get("X-A") != "changed" || Header(nil).Clone() != nil || Header(nil).Get("x") != "" {
		t.Fatalf("%v %v", h, c)
	}
}

func TestCanonicalHeaderKeyMatchesNetHTTP(t *testing.T) {
	for _, s := range []string{"", "a", "A", "-", "content-type", "CONTENT-TYPE", "x-forwarded-for", "X--y", "-x", "x-",
		"www-authenticate", "x y", "x\ty", "ünicode", "accept-encoding", "Content-Type", "a_b-c", "1-a", "x:y", "x-Ä"} {
		if got, want := CanonicalHeaderKey(s), http.CanonicalHeaderKey(s); got != want {
			t.Errorf("CanonicalHeaderKey(%q) = %q, net/http says %q", s, got, want)
		}
	}
}

func FuzzCanonicalHeaderKey(f *testing.F) {
	for _, s := range []string{"content-type", "X-A", "x y", "a-", "ÿ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := CanonicalHeaderKey(s), http.CanonicalHeaderKey(s); got != want {
			t.Fatalf("CanonicalHeaderKey(%q) = %q, net/http says %q", s, got, want)
		}
	})
}

func TestStatusTextMatchesNetHTTP(t *testing.T) {
	n := 0
	for code := 100; code < 600; code++ {
		got := StatusText(code)
		if got == "" {
			continue
		}
		n++
		if want := http.StatusText(code); got != want {
			t.Errorf("StatusText(%d) = %q, net/http says %q", code, got, want)
		}
	}
	if n < 40 {
		t.Fatalf("only %d codes have text", n)
	}
}

func TestNewRequest(t *testing.T) {
	r, err := NewRequest("", "https://api.example:8443/v1?x=1", strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Method != "GET" || r.Host != "api.example:8443" || r.URL.Path != "/v1" || r.Body == nil || r.Header == nil {
		t.Fatalf("%+v", r)
	}
	for _, bad := range []string{"/relative", "example.com/x", "http://[::1", ""} {
		if _, err := NewRequest("GET", bad, nil); err == nil {
			t.Errorf("NewRequest(%q): no error", bad)
		}
	}
	// Natively there is no host to send through.
	if _, err := Do(r); err == nil || !strings.Contains(err.Error(), "only available when running inside Fermion") {
		t.Fatalf("Do natively: %v", err)
	}
	if _, err := Do(&Request{}); err == nil {
		t.Fatal("Do without a URL: no error")
	}
}

// TestServeAllocations guards the per-request allocation budget of a small handler
// (natively; in wasm each allocation costs several times more).
func TestServeAllocations(t *testing.T) {
	HandleFunc(func(w ResponseWriter, r *Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "Hello from Fermion!\n")
	})
	in := abi.AppendRequest(nil, &abi.Request{Method: "GET", URI: "/hello", Host: "localhost:8080", RemoteAddr: "127.0.0.1:5555",
		Headers: guesttest.Headers("User-Agent", "wrk", "X-Request-Id", "0123456789abcdef", "Traceparent", "00-01-02-01")})
	out := make([]byte, 0, 1024)
	guest.Serve(in, out)
	allocs := testing.AllocsPerRun(200, func() {
		if _, code := guest.Serve(in, out); code != abi.HandleOK {
			t.Fatal(code)
		}
	})
	// The head copy, the request object, the header map (two allocations) and the
	// handler's own Header().Set.
	if allocs > 5 {
		t.Fatalf("%v allocations per request, want at most 5", allocs)
	}
}

// TestNoNetHTTP guards the package's reason to exist: a guest built with it does not
// link net/http.
func TestNoNetHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	cmd := exec.Command("go", "list", "-deps", ".")
	cmd.Env = append(cmd.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p == "net/http" || p == "crypto/tls" || p == "net" {
			t.Fatalf("fhttp links %s", p)
		}
	}
}
