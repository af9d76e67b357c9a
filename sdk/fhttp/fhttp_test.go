package fhttp

import (
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"reflect"
	"strconv"
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
	if !reflect.DeepEqual(got.Header.Map(), map[string][]string{"Content-Type": {"application/json"}, "User-Agent": {"curl"}, "X-A": {"1", "2"}}) {
		t.Fatalf("header %v", got.Header.Map())
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
	if rw.out != nil {
		t.Fatalf("response writer kept the last response's buffer (%d bytes)", cap(rw.out))
	}
	if !reflect.DeepEqual(paths, []string{"/first", "/second"}) || firstHeader.Get("X-Id") != "one" {
		t.Fatalf("paths %q, first request's header %v", paths, firstHeader.Map())
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
	want := map[string][]string{"X-A": {"1", "2"}, "X-B": {"b"}, "X-C": {"c", "d"}}
	if got.Get("x-c") != "c" || !reflect.DeepEqual(got.Values("X-C"), []string{"c", "d"}) {
		t.Fatalf("header %v: Get %q, Values %q", got.list, got.Get("x-c"), got.Values("X-C"))
	}
	if !reflect.DeepEqual(got.Map(), want) {
		t.Fatalf("header %v, want %v", got.Map(), want)
	}
}

func TestServeManyHeaders(t *testing.T) {
	var got Header
	HandleFunc(func(w ResponseWriter, r *Request) { got = r.Header })
	var hs []abi.Header
	want := map[string][]string{}
	for i := range 20 {
		name := "X-H" + string(rune('a'+i))
		hs = append(hs, abi.Header{Name: name, Value: name})
		want[name] = []string{name}
	}
	guesttest.Call(t, &abi.Request{Method: "GET", URI: "/", Headers: hs})
	if got.Len() != 20 || got.Get("x-ht") != "X-Ht" {
		t.Fatalf("header %v", got.list)
	}
	if !reflect.DeepEqual(got.Map(), want) {
		t.Fatalf("header %v", got.Map())
	}
}

func TestServeFaults(t *testing.T) {
	HandleFunc(func(w ResponseWriter, r *Request) { panic("boom") })
	if _, code := guesttest.Call(t, &abi.Request{Method: "GET", URI: "/"}); code != abi.HandlePanic {
		t.Fatalf("panic: code %d", code)
	}
	HandleFunc(func(w ResponseWriter, r *Request) { panic(nil) }) // a *runtime.PanicNilError to recover
	if _, code := guesttest.Call(t, &abi.Request{Method: "GET", URI: "/"}); code != abi.HandlePanic {
		t.Fatalf("panic(nil): code %d", code)
	}
	Handle(statusHandler(StatusAccepted)) // a Handler that is not a HandlerFunc
	if resp, code := guesttest.Call(t, &abi.Request{Method: "GET", URI: "/"}); code != abi.HandleOK || resp.Status != StatusAccepted {
		t.Fatalf("Handler: code %d, status %d", code, resp.Status)
	}
	Handle(panicHandler{})
	if _, code := guesttest.Call(t, &abi.Request{Method: "GET", URI: "/"}); code != abi.HandlePanic {
		t.Fatalf("Handler's panic: code %d", code)
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

type statusHandler int

func (s statusHandler) ServeHTTP(w ResponseWriter, r *Request) { w.WriteHeader(int(s)) }

type panicHandler struct{}

func (panicHandler) ServeHTTP(ResponseWriter, *Request) { panic("boom") }

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
	for _, mapped := range []bool{false, true} {
		t.Run(map[bool]string{false: "list", true: "map"}[mapped], func(t *testing.T) {
			h := Header{}
			if mapped {
				h.Map()
			}
			h.Add("x-a", "1")
			h.Add("X-A", "2")
			h.Set("content-type", "a")
			h.Set("Content-Type", "b")
			h.Add("X-B", "x")
			h.Del("x-b")
			if h.Get("x-a") != "1" || h.Get("CONTENT-TYPE") != "b" || h.Get("X-B") != "" || h.Len() != 3 ||
				!reflect.DeepEqual(h.Values("x-A"), []string{"1", "2"}) || h.Values("nope") != nil {
				t.Fatalf("accessors: %v", h.Map())
			}
			if !reflect.DeepEqual(h.Map(), map[string][]string{"X-A": {"1", "2"}, "Content-Type": {"b"}}) {
				t.Fatal(h.Map())
			}
			c := h.Clone()
			c.Set("X-A", "changed")
			h.Del("x-a")
			if h.Get("X-A") != "" || c.Get("X-A") != "changed" || len(c.Values("X-A")) != 1 {
				t.Fatalf("%v %v", h.Map(), c.Map())
			}
			// Set replaces every value of a name, wherever its entries are.
			c.Add("X-A", "again")
			c.Add("X-Z", "z")
			c.Set("x-a", "one")
			if !reflect.DeepEqual(c.Values("X-A"), []string{"one"}) || c.Get("X-Z") != "z" {
				t.Fatalf("Set over repeated entries: %v", c.Map())
			}
		})
	}
	var none Header
	if none.Get("x") != "" || none.Values("x") != nil || none.Len() != 0 || none.Clone().Len() != 0 {
		t.Fatal("nil Header not empty")
	}
	// A name that is not a valid field name is not canonicalised, so it matches only
	// itself, as in net/http's map.
	h := Header{}
	h.Set("x y", "1")
	if h.Get("X Y") != "" || h.Get("x y") != "1" {
		t.Fatalf("invalid name: %v", h.list)
	}
	// Map shares with the header from then on.
	m := h.Map()
	m["Direct"] = []string{"d"}
	h.Add("direct", "e")
	if !reflect.DeepEqual(h.Values("Direct"), []string{"d", "e"}) {
		t.Fatalf("after Map: %v", m)
	}
	var seen []string
	for k, v := range HeaderOf(map[string][]string{"K": {"1", "2"}}).All() {
		seen = append(seen, k+"="+v)
	}
	if !reflect.DeepEqual(seen, []string{"K=1", "K=2"}) {
		t.Fatalf("All: %q", seen)
	}
}

// FuzzHeaderMatchesNetHTTP runs the same operations on a Header and an http.Header
// and compares what each then reports.
func FuzzHeaderMatchesNetHTTP(f *testing.F) {
	f.Add([]byte("\x00content-type\x00a\x01X-A\x001\x02x-a\x002\x03X-A\x00\x04x y\x00v"))
	f.Fuzz(func(t *testing.T, ops []byte) {
		var h Header
		headerOps(t, &h, http.Header{}, ops, nil)
		// Again with the name cache a guest has, each name one string however often
		// it recurs, as a handler's literals are: from the second use on, Set and Add
		// find it in the cache.
		defer func(c *nameCache) { canonicalCache = c }(canonicalCache)
		canonicalCache = new(nameCache)
		h = Header{}
		headerOps(t, &h, http.Header{}, ops, map[string]string{})
	})
}

// FuzzReceivedHeaderMatchesNetHTTP is FuzzHeaderMatchesNetHTTP on a received request's
// header, read in place from the request's encoding until an operation changes it.
func FuzzReceivedHeaderMatchesNetHTTP(f *testing.F) {
	f.Add([]byte("X-A\x001\x00X-A\x002\x00User-Agent\x00ua"), []byte("\x03x-a\x00\x04X-A\x00\x00x-a\x003\x03X-A\x00"))
	f.Add([]byte("A\x00\x00B\x00b"), []byte("\x02a\x00\x01b\x00c\x04B\x00"))
	f.Fuzz(func(t *testing.T, fields, ops []byte) {
		// The host sends canonical names (package abi); net/http's header gets the same.
		var hs []abi.Header
		std := http.Header{}
		parts := bytes.Split(fields, []byte{0})
		for i := 0; i+1 < len(parts); i += 2 {
			name := http.CanonicalHeaderKey(string(parts[i]))
			hs = append(hs, abi.Header{Name: name, Value: string(parts[i+1])})
			std[name] = append(std[name], string(parts[i+1]))
		}
		var got *Request
		HandleFunc(func(w ResponseWriter, r *Request) { got = r })
		in := abi.AppendRequest(nil, &abi.Request{Method: "GET", URI: "/", Headers: hs})
		if _, code := guest.Serve(in, nil); code != abi.HandleOK {
			t.Fatalf("code %d", code)
		}
		clear(in) // the host reuses its buffer: the header must not read it
		if got.Header.Len() != len(hs) {
			t.Fatalf("Len %d, sent %d fields", got.Header.Len(), len(hs))
		}
		headerOps(t, &got.Header, std, ops, nil)
	})
}

// headerOps runs ops on h and std and compares what each then reports. Each op is a
// code byte, then a name and a value separated by 0 bytes. With names non-nil, every
// name is the first string made with its bytes.
func headerOps(t *testing.T, h *Header, std http.Header, ops []byte, names map[string]string) {
	t.Helper()
	parts := bytes.Split(ops, []byte{0})
	for i := 0; i+2 < len(parts); i += 2 {
		if len(parts[i]) == 0 {
			continue
		}
		code, name, value := parts[i][0]%5, string(parts[i][1:]), string(parts[i+1])
		if names != nil {
			if n, ok := names[name]; ok {
				name = n
			} else {
				names[name] = name
			}
		}
		switch code {
		case 0:
			h.Set(name, value)
			std.Set(name, value)
		case 1:
			h.Add(name, value)
			std.Add(name, value)
		case 2:
			h.Del(name)
			std.Del(name)
		case 3:
			if got, want := h.Get(name), std.Get(name); got != want {
				t.Fatalf("Get(%q) = %q, net/http %q", name, got, want)
			}
		case 4:
			if got, want := h.Values(name), std.Values(name); !reflect.DeepEqual(got, want) {
				t.Fatalf("Values(%q) = %q, net/http %q", name, got, want)
			}
		}
	}
	if got := h.Map(); !reflect.DeepEqual(got, map[string][]string(std)) && !(len(got) == 0 && len(std) == 0) {
		t.Fatalf("Map %q, net/http %q", got, std)
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

// FuzzSameName checks the name match Get, Set and Del use against its definition: a
// field stored under a canonical name is the one a name means when that name
// canonicalises to it (and an invalid name, left as it is, means only itself).
func FuzzSameName(f *testing.F) {
	for _, s := range [][2]string{{"content-type", "CONTENT-TYPE"}, {"X-A", "x-b"}, {"x y", "X Y"}, {"a-", "A-"}, {"ÿ", "ß"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, stored, name string) {
		stored = http.CanonicalHeaderKey(stored)
		if got, want := sameName(stored, name), stored == http.CanonicalHeaderKey(name); got != want {
			t.Fatalf("sameName(%q, %q) = %v, want %v", stored, name, got, want)
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
	if r.Method != "GET" || r.Host != "api.example:8443" || r.URL.Path != "/v1" || r.Body == nil || r.Header.Len() != 0 {
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
	// The request's head (strings and header fields) and Request object come from blocks
	// allocated once per dozens of requests; the response header is a reused list.
	if allocs > 0.1 {
		t.Fatalf("%v allocations per request, want at most 0.1", allocs)
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

// TestServeHeadersFixedByFirstWrite checks net/http's rule, which the in-place encoding
// relies on: headers changed after the first Write are not sent.
func TestServeHeadersFixedByFirstWrite(t *testing.T) {
	for _, tt := range []struct {
		name    string
		handle  func(w ResponseWriter)
		status  int
		headers []abi.Header
		body    string
	}{
		{"after write", func(w ResponseWriter) {
			w.Header().Set("X-Before", "1")
			io.WriteString(w, "a")
			w.Header().Set("X-After", "2")
			w.WriteHeader(StatusTeapot)
			w.Write([]byte("b"))
		}, 200, guesttest.Headers("X-Before", "1"), "ab"},
		{"nothing written", func(w ResponseWriter) {
			w.WriteHeader(StatusNoContent)
			w.Header().Set("X-Late", "ok")
		}, 204, guesttest.Headers("X-Late", "ok"), ""},
		{"mapped", func(w ResponseWriter) {
			w.Header().Map()["X-M"] = []string{"m"}
			w.Write(nil)
		}, 200, guesttest.Headers("X-M", "m"), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			HandleFunc(func(w ResponseWriter, r *Request) { tt.handle(w) })
			resp, code := guesttest.Call(t, &abi.Request{Method: "GET", URI: "/"})
			if code != abi.HandleOK || resp.Status != tt.status || string(resp.Body) != tt.body || !reflect.DeepEqual(resp.Headers, tt.headers) {
				t.Fatalf("code %d: %d %v %q, want %d %v %q", code, resp.Status, resp.Headers, resp.Body, tt.status, tt.headers, tt.body)
			}
		})
	}
}

// TestServeBodyAndStrings checks that a request's body reads the host's buffer while
// the handler runs, and that the strings a handler keeps do not change when the host
// reuses that buffer and the arena moves on to new blocks.
func TestServeBodyAndStrings(t *testing.T) {
	type kept struct {
		path, id string
		body     []byte
	}
	var all []kept
	HandleFunc(func(w ResponseWriter, r *Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil || r.Body.Close() != nil {
			t.Fatal(err)
		}
		all = append(all, kept{r.URL.Path, r.Header.Get("X-Id"), b})
	})
	in := make([]byte, 0, 4096)
	var want []kept
	for i := range 500 { // enough to cross many arena and request blocks
		id := strings.Repeat(string(rune('a'+i%26)), 1+i%300)
		if i%100 == 99 { // a head larger than the arena copies into a block
			id = strings.Repeat("z", 5000)
		}
		k := kept{"/r" + id[:1+i%5], id, bytes.Repeat([]byte{byte(i)}, i%700)}
		want = append(want, k)
		// One buffer for every request, as the host's: a kept view would change.
		in = abi.AppendRequest(in[:0], &abi.Request{Method: "POST", URI: k.path, Headers: guesttest.Headers("X-Id", id), Body: k.body})
		if _, code := guest.Serve(in, nil); code != abi.HandleOK {
			t.Fatalf("request %d: code %d", i, code)
		}
		clear(in)
	}
	for i := range want {
		if all[i].path != want[i].path || all[i].id != want[i].id || !bytes.Equal(all[i].body, want[i].body) {
			t.Fatalf("request %d kept %q %q (%d bytes), want %q %q (%d bytes)", i, all[i].path, all[i].id, len(all[i].body),
				want[i].path, want[i].id, len(want[i].body))
		}
	}
}

// TestServeReceivedHeader covers a received request's header, read in place from the
// copy of the request's head until changed: every accessor, a handler keeping it past
// later requests, changing it, and sending it back as the response's.
func TestServeReceivedHeader(t *testing.T) {
	var kept []*Request
	HandleFunc(func(w ResponseWriter, r *Request) {
		kept = append(kept, r)
		if r.URL.Path == "/echo" {
			*w.Header() = r.Header
			w.Write(nil)
		}
	})
	fields := guesttest.Headers("User-Agent", "ua", "X-A", "1", "X-A", "2", "X-Empty", "")
	for i := range 100 { // enough to cross arena and request blocks
		in := abi.AppendRequest(nil, &abi.Request{Method: "GET", URI: "/" + strings.Repeat("p", i), Headers: fields})
		if _, code := guest.Serve(in, nil); code != abi.HandleOK {
			t.Fatalf("request %d: code %d", i, code)
		}
		clear(in)
	}
	for i, r := range kept {
		h := r.Header
		var all []string
		for k, v := range h.All() {
			all = append(all, k+"="+v)
		}
		if r.URL.Path != "/"+strings.Repeat("p", i) || r.UserAgent() != "ua" || h.Get("x-a") != "1" || h.Get("X-None") != "" ||
			!reflect.DeepEqual(h.Values("X-A"), []string{"1", "2"}) || h.Values("X-None") != nil || h.Len() != 4 ||
			!reflect.DeepEqual(all, []string{"User-Agent=ua", "X-A=1", "X-A=2", "X-Empty="}) {
			t.Fatalf("request %d kept %q: %q %q %q %d %q", i, r.URL.Path, r.UserAgent(), h.Get("x-a"), h.Values("X-A"), h.Len(), all)
		}
	}
	// Changing a received header copies its fields out first; a clone taken before
	// does not see the change, and neither does a later request's header.
	r := kept[0]
	c := r.Header.Clone()
	r.Header.Set("x-a", "3")
	r.Header.Add("X-New", "n")
	r.Header.Del("user-agent")
	if !reflect.DeepEqual(r.Header.Map(), map[string][]string{"X-A": {"3"}, "X-Empty": {""}, "X-New": {"n"}}) {
		t.Fatalf("changed: %v", r.Header.Map())
	}
	if !reflect.DeepEqual(c.Values("X-A"), []string{"1", "2"}) || c.Get("User-Agent") != "ua" || kept[1].Header.Get("X-A") != "1" {
		t.Fatalf("a clone or another request saw the change: %v, %v", c.Map(), kept[1].Header.Map())
	}
	m := kept[2].Header.Map()
	if !reflect.DeepEqual(m, map[string][]string{"User-Agent": {"ua"}, "X-A": {"1", "2"}, "X-Empty": {""}}) {
		t.Fatalf("Map: %v", m)
	}
	resp, code := guesttest.Call(t, &abi.Request{Method: "GET", URI: "/echo", Headers: fields})
	if code != abi.HandleOK || !reflect.DeepEqual(resp.Headers, fields) {
		t.Fatalf("request header as the response's: code %d, %v", code, resp.Headers)
	}
}

// TestServeDropsGrownHeaderList: a response with many header fields does not leave
// its list's memory to every later request, nor its fields.
func TestServeDropsGrownHeaderList(t *testing.T) {
	many := true
	HandleFunc(func(w ResponseWriter, r *Request) {
		if many {
			for i := range 2 * maxKeptHeaders {
				w.Header().Add("X-Field", strconv.Itoa(i))
			}
		}
		w.WriteHeader(StatusNoContent)
	})
	if resp, _ := guesttest.Call(t, &abi.Request{Method: "GET", URI: "/"}); len(resp.Headers) != 2*maxKeptHeaders {
		t.Fatalf("first response: %d header fields, want %d", len(resp.Headers), 2*maxKeptHeaders)
	}
	many = false
	resp, _ := guesttest.Call(t, &abi.Request{Method: "GET", URI: "/"})
	if len(resp.Headers) != 0 || resp.Status != StatusNoContent {
		t.Fatalf("second response: status %d, fields %v", resp.Status, resp.Headers)
	}
	if c := cap(rw.header.list); c > maxKeptHeaders {
		t.Fatalf("header list kept with capacity %d, want at most %d", c, maxKeptHeaders)
	}
}
