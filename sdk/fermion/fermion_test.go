package fermion

import (
	"bytes"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/sdk/internal/guest"
	"fermion.dev/fermion/sdk/internal/guesttest"
)

func TestServeRequestAndResponse(t *testing.T) {
	var got *http.Request
	var gotBody []byte
	HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		gotBody, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Add("X-Many", "1")
		w.Header().Add("X-Many", "2")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "made ")
		w.Write([]byte(r.URL.Query().Get("q")))
	})
	resp, code := guesttest.Call(t, &abi.Request{Method: "POST", URI: "/p/x?q=thing", Host: "h.example", RemoteAddr: "10.0.0.1:5",
		Headers: guesttest.Headers("Content-Type", "application/json", "X-A", "1", "X-A", "2"), Body: []byte(`{"a":1}`)})
	if code != abi.HandleOK {
		t.Fatalf("code %d", code)
	}
	if got.Method != "POST" || got.URL.Path != "/p/x" || got.URL.RawQuery != "q=thing" || got.Host != "h.example" ||
		got.RemoteAddr != "10.0.0.1:5" || got.RequestURI != "/p/x?q=thing" || got.ContentLength != 7 {
		t.Fatalf("request %+v", got)
	}
	if !reflect.DeepEqual(got.Header, http.Header{"Content-Type": {"application/json"}, "X-A": {"1", "2"}}) {
		t.Fatalf("header %v", got.Header)
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
// request empty, and that a request's strings outlive the buffer the next one reuses.
func TestServeReusesNothingVisible(t *testing.T) {
	var paths []string
	HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.Path)
		if r.URL.Path == "/first" {
			w.Header().Set("X-First", "yes")
			w.WriteHeader(http.StatusTeapot)
			w.Write(bytes.Repeat([]byte("x"), 2*guest.MaxKeptBody))
			return
		}
		w.Write([]byte("second"))
	})
	first, _ := guesttest.Call(t, &abi.Request{Method: "GET", URI: "/first"})
	if first.Status != http.StatusTeapot || len(first.Body) != 2*guest.MaxKeptBody {
		t.Fatalf("first: %d, %d bytes", first.Status, len(first.Body))
	}
	second, _ := guesttest.Call(t, &abi.Request{Method: "GET", URI: "/second"})
	if second.Status != 200 || string(second.Body) != "second" || guesttest.Values(second, "X-First") != nil {
		t.Fatalf("second saw the first: %d %q %v", second.Status, second.Body, second.Headers)
	}
	if _, kept := rw.Written(); kept > guest.MaxKeptBody {
		t.Fatalf("response buffer of %d bytes kept", kept)
	}
	if !reflect.DeepEqual(paths, []string{"/first", "/second"}) {
		t.Fatalf("paths %q", paths)
	}
	if got := guesttest.Values(second, "Content-Type"); len(got) != 1 || !strings.HasPrefix(got[0], "text/plain") {
		t.Fatalf("sniffed content type %v", got)
	}
}

// TestServeHeaderOrder covers entries the host never sends but another might: a name
// repeated apart from its first entry.
func TestServeHeaderOrder(t *testing.T) {
	var got http.Header
	HandleFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header })
	guesttest.Call(t, &abi.Request{Method: "GET", URI: "/", Headers: guesttest.Headers("X-A", "1", "X-B", "b", "X-A", "2", "X-C", "c", "X-C", "d")})
	want := http.Header{"X-A": {"1", "2"}, "X-B": {"b"}, "X-C": {"c", "d"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("header %v, want %v", got, want)
	}
}

func TestServeManyHeaders(t *testing.T) {
	var got http.Header
	HandleFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header })
	var hs []abi.Header
	want := http.Header{}
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
	HandleFunc(func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	if _, code := guesttest.Call(t, &abi.Request{Method: "GET", URI: "/"}); code != abi.HandlePanic {
		t.Fatalf("panic: code %d", code)
	}
	if _, code := serve([]byte{1, 2}, nil); code != abi.HandleBadInput {
		t.Fatalf("garbage: code %d", code)
	}
	HandleFunc(func(w http.ResponseWriter, r *http.Request) { t.Fatal("handler called for a bad URI") })
	resp, code := guesttest.Call(t, &abi.Request{Method: "GET", URI: "no-slash"})
	if code != abi.HandleOK || resp.Status != http.StatusBadRequest {
		t.Fatalf("bad URI: code %d status %d", code, resp.Status)
	}
}

// TestServeAllocations guards the per-request allocation budget of a small handler
// (natively; in wasm each allocation costs several times more).
func TestServeAllocations(t *testing.T) {
	HandleFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "Hello from Fermion!\n")
	})
	in := abi.AppendRequest(nil, &abi.Request{Method: "GET", URI: "/hello", Host: "localhost:8080", RemoteAddr: "127.0.0.1:5555",
		Headers: guesttest.Headers("User-Agent", "wrk", "X-Request-Id", "0123456789abcdef", "Traceparent", "00-01-02-01")})
	out := make([]byte, 0, 1024)
	serve(in, out)
	allocs := testing.AllocsPerRun(200, func() {
		if _, code := serve(in, out); code != abi.HandleOK {
			t.Fatal(code)
		}
	})
	t.Logf("%v allocations per request", allocs)
	// The header map (two allocations) and the handler's own Header().Set; the request's
	// strings, header entries and objects come from blocks shared by dozens of requests.
	if allocs > 3.2 {
		t.Fatalf("%v allocations per request, want at most 3.2", allocs)
	}
}
