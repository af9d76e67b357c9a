package fhttp

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"testing"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/sdk/internal/guest"
	"fermion.dev/fermion/sdk/internal/guesttest"
)

// reuseFor turns ReuseRequests on for the test and off again after it: the setting is
// the package's, as a guest's init makes it.
func reuseFor(t *testing.T) {
	t.Helper()
	ReuseRequests()
	t.Cleanup(func() { reuseRequests = false })
}

// TestReuseRequestsDecodes checks that requests decoded into the reused storage read
// as in the default mode, request after request, whatever the last one left there:
// fields, query, a received header read in place and one changed by the handler, a
// body or none, a target that needs url's parsing, and a bad one.
func TestReuseRequestsDecodes(t *testing.T) {
	reuseFor(t)
	type seen struct {
		method, path, query, host, remote, uri, id, ua string
		body                                           string
		length                                         int64
		hasBody                                        bool
	}
	var got seen
	HandleFunc(func(w ResponseWriter, r *Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		got = seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Host, r.RemoteAddr, r.RequestURI, r.Header.Get("x-id"), r.UserAgent(),
			string(b), r.ContentLength, r.Body != NoBody}
		if r.URL.Query().Get("set") != "" {
			r.Header.Set("X-Id", "changed") // copies the fields out of the host's buffer
			got.id = r.Header.Get("X-Id")
		}
		w.Header().Set("X-Echo", got.id)
		w.Write([]byte(got.path))
	})
	for i, tt := range []struct {
		req  abi.Request
		want seen
	}{
		{abi.Request{Method: "POST", URI: "/a?q=1", Host: "h.example", RemoteAddr: "10.0.0.1:5", Headers: guesttest.Headers("X-Id", "one", "User-Agent", "curl"), Body: []byte("body one")},
			seen{"POST", "/a", "q=1", "h.example", "10.0.0.1:5", "/a?q=1", "one", "curl", "body one", 8, true}},
		{abi.Request{Method: "GET", URI: "/bb", Host: "h2", Headers: guesttest.Headers("X-Id", strings.Repeat("t", 300))},
			seen{"GET", "/bb", "", "h2", "", "/bb", strings.Repeat("t", 300), "", "", 0, false}},
		{abi.Request{Method: "GET", URI: "/c%20d?set=1", Headers: guesttest.Headers("X-Id", "three")},
			seen{"GET", "/c d", "set=1", "", "", "/c%20d?set=1", "changed", "", "", 0, false}},
		{abi.Request{Method: "PUT", URI: "/e", Body: []byte("x")},
			seen{"PUT", "/e", "", "", "", "/e", "", "", "x", 1, true}},
	} {
		got = seen{}
		resp, code := guesttest.Call(t, &tt.req)
		if code != abi.HandleOK || resp.Status != 200 || string(resp.Body) != tt.want.path {
			t.Fatalf("request %d: code %d, status %d, body %q", i, code, resp.Status, resp.Body)
		}
		if got != tt.want {
			t.Fatalf("request %d: handler saw %+v, want %+v", i, got, tt.want)
		}
		if v := guesttest.Values(resp, "X-Echo"); tt.want.id != "" && (len(v) != 1 || v[0] != tt.want.id) {
			t.Fatalf("request %d: X-Echo %q, want %q", i, v, tt.want.id)
		}
	}
	resp, code := guesttest.Call(t, &abi.Request{Method: "GET", URI: "/%zz"})
	if code != abi.HandleOK || resp.Status != StatusBadRequest {
		t.Fatalf("bad target: code %d, status %d", code, resp.Status)
	}
}

// TestReuseRequestsStorage checks what the mode is for: every request is the same
// Request, its strings are views of the host's buffer (so a kept one changes when the
// host writes the next request, which the handler promised not to keep), and a
// request costs no allocation at all, not even the blocks' share.
func TestReuseRequestsStorage(t *testing.T) {
	reuseFor(t)
	var reqs []*Request
	var paths []string
	HandleFunc(func(w ResponseWriter, r *Request) {
		reqs = append(reqs, r)
		paths = append(paths, r.URL.Path) // broken promise: a view of the host's buffer
		w.Write([]byte("ok"))
	})
	in := make([]byte, 0, 256)
	for _, p := range []string{"/first", "/other"} {
		in = abi.AppendRequest(in[:0], &abi.Request{Method: "GET", URI: p})
		if _, code := guest.Serve(in, nil); code != abi.HandleOK {
			t.Fatal(code)
		}
	}
	if reqs[0] != reqs[1] {
		t.Fatal("two requests decoded into two Requests; want one reused")
	}
	if paths[0] != "/other" {
		t.Fatalf("first request's kept path is %q: not a view of the host's buffer", paths[0])
	}

	greeting := []byte("Hello from Fermion!\n") // made once, as examples/hello does
	HandleFunc(func(w ResponseWriter, r *Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write(greeting)
	})
	in = abi.AppendRequest(in[:0], &abi.Request{Method: "POST", URI: "/hello?x=1", Host: "localhost:8080", RemoteAddr: "127.0.0.1:5555",
		Headers: guesttest.Headers("User-Agent", "wrk", "X-Request-Id", "0123456789abcdef"), Body: []byte("data")})
	out := make([]byte, 0, 1024)
	guest.Serve(in, out)
	if allocs := testing.AllocsPerRun(500, func() {
		if _, code := guest.Serve(in, out); code != abi.HandleOK {
			t.Fatal(code)
		}
	}); allocs != 0 {
		t.Fatalf("%v allocations per request, want none", allocs)
	}
}

// TestReuseRequestsAfterPanic checks that a request after a handler's panic (which, in
// a real guest, the host answers by discarding the instance) starts from a clean
// Request: nothing the panicking handler set on the shared one shows.
func TestReuseRequestsAfterPanic(t *testing.T) {
	reuseFor(t)
	prev := stderr
	stderr = io.Discard
	t.Cleanup(func() { stderr = prev })
	var seen []string
	HandleFunc(func(w ResponseWriter, r *Request) {
		seen = append(seen, r.Header.Get("X-Set")+"|"+strconv.FormatInt(r.ContentLength, 10))
		if r.URL.Path == "/panic" {
			r.Header.Set("X-Set", "dirty")
			r.ContentLength = 99
			panic("boom")
		}
	})
	if _, code := guesttest.Call(t, &abi.Request{Method: "POST", URI: "/panic", Body: bytes.Repeat([]byte("b"), 3)}); code != abi.HandlePanic {
		t.Fatalf("panicking handler: code %d, want HandlePanic", code)
	}
	if _, code := guesttest.Call(t, &abi.Request{Method: "GET", URI: "/next"}); code != abi.HandleOK {
		t.Fatalf("next request: code %d", code)
	}
	if seen[1] != "|0" {
		t.Fatalf("request after the panic saw %q, want a clean request", seen[1])
	}
}

// FuzzReuseRequestsMatchesDefault decodes the same request in both modes, twice in a
// row in the reused one (so what the first left behind must not show), and checks
// that the handler sees the same request each time.
func FuzzReuseRequestsMatchesDefault(f *testing.F) {
	f.Add("GET", "/hello?x=1", "localhost:8080", "X-Id", "abc", []byte(nil))
	f.Add("POST", "/a%20b", "", "content-type", "text/plain", []byte("body"))
	f.Add("", "*", "h", "", "", []byte{0})
	f.Fuzz(func(t *testing.T, method, uri, host, name, value string, body []byte) {
		var seen string
		HandleFunc(func(w ResponseWriter, r *Request) {
			b, _ := io.ReadAll(r.Body)
			seen = strings.Join([]string{r.Method, r.URL.String(), r.Host, r.RemoteAddr, r.RequestURI,
				r.Header.Get(name), strconv.Itoa(r.Header.Len()), strconv.FormatInt(r.ContentLength, 10), string(b)}, "\x00")
			w.Write([]byte("ok"))
		})
		req := abi.Request{Method: method, URI: uri, Host: host, RemoteAddr: "10.0.0.1:1", Body: body}
		if name != "" {
			req.Headers = []abi.Header{{Name: name, Value: value}}
		}
		in := abi.AppendRequest(nil, &req)
		call := func() (string, int32, int) {
			seen = ""
			resp, code := guest.Serve(append([]byte(nil), in...), nil)
			var r abi.Response
			if code == abi.HandleOK {
				if err := abi.DecodeResponse(resp, &r, true); err != nil {
					t.Fatalf("decode response: %v", err)
				}
			}
			return seen, code, int(r.Status)
		}
		reuseRequests = false
		want, wantCode, wantStatus := call()
		ReuseRequests()
		defer func() { reuseRequests = false }()
		other := abi.AppendRequest(nil, &abi.Request{Method: "DELETE", URI: "/other?q", Host: "o", Headers: guesttest.Headers("X-Other", "1"), Body: []byte("zz")})
		guest.Serve(other, nil)
		for range 2 {
			got, code, status := call()
			if got != want || code != wantCode || status != wantStatus {
				t.Fatalf("reused: %q code %d status %d; default: %q code %d status %d", got, code, status, want, wantCode, wantStatus)
			}
		}
	})
}
