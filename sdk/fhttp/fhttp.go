// Package fhttp is the Go guest SDK's HTTP API without net/http: the same shapes as
// net/http's server side (a Handler gets a ResponseWriter and a *Request; Header has
// Get, Set, Add and Del), registered in init, built with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o app.wasm .
//
// A handler written for net/http usually needs only its import changed:
//
//	import http "fermion.dev/fermion/sdk/fhttp"
//
//	func init() {
//		http.HandleFunc(func(w http.ResponseWriter, r *http.Request) {
//			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
//			io.WriteString(w, "hello from "+r.URL.Path+"\n")
//		})
//	}
//
// Why a second API: a guest that imports net/http links about 3 MB more code and
// spends most of its start-up initialising packages it never uses there (crypto/tls's
// above all); its larger code also makes each call dearer when the cache is cold, as it
// is under load. Measured in bench/RESULTS.md (fifth pass). Handlers and libraries that
// need net/http's own types use package fermion.dev/fermion/sdk/fermion instead.
//
// What a request costs the guest. In a Go wasm guest an allocation costs several
// hundred nanoseconds, and bytes allocated cost in proportion (the zeroing, the cache
// misses of fresh memory, the collections they bring on); every call costs a prologue and
// every taken branch an indirect jump through the function's block table. So the SDK's
// part of a request allocates nothing in the common case and keeps its per-byte loops
// free of branches:
//
//   - the request's head (method, URI, host, header names and values) is copied once
//     into a block shared by the requests that follow, and the *Request with its URL
//     comes from a block of them (a body reader from another, only when there is a
//     body); none is ever reused, so a handler may keep them, as in net/http (what it
//     keeps holds its block, at most 16 KiB);
//   - the received Header is read in place from that copy: Get, Values, Len and All scan
//     the host's encoding without hashing or allocating, and only the first Set, Add or
//     Del copies the fields out into a list; Map builds net/http's map shape only when
//     asked;
//   - header names and the request target are checked a byte at a time by table lookup,
//     without a branch per byte: a name that is already canonical, as literals and the
//     host's names are, costs one such pass, and a name passed again (a literal is the
//     same string every time) is found in a small cache by its address instead;
//   - the Body reads the host's buffer in place, so it must not be read after the
//     handler returns;
//   - the response is encoded straight into the buffer the host copies it from, status
//     and headers at the first Write, and handed over with one host call.
//
// What is left is the handler's own: a Header().Set of a new name grows the response's
// reused list (no allocation once it has room), Values and Map allocate, and so does
// whatever the handler builds. io.WriteString(w, s) and fmt.Fprint(w, …) cost two
// searches of the runtime's type table each (converting w to io.Writer, then asserting
// io.StringWriter; Go caches neither on wasm), about 0.4 µs: w.Write of bytes made once
// does not. bench/RESULTS.md counts it per request (fermion-bench guestcalls: calls,
// allocations and thread CPU inside the guest; "Go SDK, third pass" for this design).
//
// A handler that keeps nothing of a request past returning can say so with
// ReuseRequests: every request is then decoded into the same Request, its strings
// read in place from the host's buffer, so a request writes no fresh memory and costs
// no allocation at all. Under load that matters more than the allocations' count
// suggests: between two requests the server's own work evicts the guest's memory from
// the cache, and fresh memory is always cold.
//
// Every 32 requests the SDK yields to the Go scheduler after sending the response, so a
// garbage collection cycle started by an allocation is finished by the runtime's
// background worker instead of leaving the write barrier on for thousands of requests
// (docs/RATIONALE.md, "Why does the Go SDK yield…"). Goroutines a handler started run
// then too.
//
// The host instantiates the module once, runs _initialize (package init functions, so
// the handler must be registered there, not in main) and then calls the handler for
// many requests, one at a time. The host enforces the manifest's limits: a handler past
// its deadline or memory cap is stopped and its instance discarded. Outbound HTTP goes
// through the host, which allows only the manifest's allowed_outbound_hosts: see Do.
package fhttp

import (
	"bytes"
	"fmt"
	"io"
	"net/url"
	"os"
	"unsafe"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/sdk/internal/guest"
)

// A Handler responds to a request, as net/http's does.
//
// It must not use the ResponseWriter, or read the request's Body, after returning.
type Handler interface {
	ServeHTTP(ResponseWriter, *Request)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ResponseWriter, *Request)

// ServeHTTP calls f(w, r).
func (f HandlerFunc) ServeHTTP(w ResponseWriter, r *Request) { f(w, r) }

// Handle registers h as the function's handler. Call it from an init function.
func Handle(h Handler) {
	if h == nil {
		panic("fhttp: nil handler")
	}
	handler, handlerFunc = h, nil
	if f, ok := h.(HandlerFunc); ok {
		handlerFunc = f // called directly: one guest call fewer per request
	}
	guest.Serve = serve
}

// HandleFunc registers f as the function's handler. Call it from an init function.
func HandleFunc(f func(ResponseWriter, *Request)) { Handle(HandlerFunc(f)) }

// ReuseRequests is the handler's promise that it keeps nothing of a request once it
// returns: not the *Request, its URL or Header, and no string read from any of them
// (strings.Clone what must outlive the call, as a net/http handler must copy a
// request's Body). The SDK then decodes every request into the same Request and reads
// its strings in place from the host's buffer, which the next request overwrites,
// instead of copying each request's head and Request into fresh memory. Call it from
// an init function, with Handle or HandleFunc.
//
// Why: under load, a server's network stack and HTTP code run between two requests
// of an instance and push the guest's memory out of the processor's caches, and a
// request written to fresh memory misses on every cache line it writes, where reused
// storage is still warm. For examples/hello this took 1.1–1.4 µs of guest CPU off a
// request served through the gateway under load (bench/RESULTS.md, "gohello"), about
// 40 % of its guest time there, and stopped its garbage collections (it allocates
// nothing per request). A handler that breaks the promise sees what it kept change
// under it: keep the default unless the handler is small and plainly keeps nothing.
func ReuseRequests() { reuseRequests = true }

// reuseRequests is set by ReuseRequests.
var reuseRequests bool

var handler Handler

// handlerFunc is handler when it is a HandlerFunc, else nil.
var handlerFunc HandlerFunc

// ResponseWriter builds the response, as net/http's does. The response is sent whole
// when the handler returns; the first Write fixes the status (200 unless WriteHeader
// said otherwise) and the headers, as in net/http: changes to Header after it are not
// sent.
//
// A response without a Content-Type gets one from the host, sniffed from the body as
// net/http does.
type ResponseWriter interface {
	Header() *Header
	Write([]byte) (int, error)
	WriteHeader(statusCode int)
}

// Request is a request received by the function, or one to send with Do.
type Request struct {
	Method string
	// URL is the request line's path and query for a received request; for Do it is
	// the absolute URL to send to.
	URL        *url.URL
	Proto      string // "HTTP/1.1"
	ProtoMajor int
	ProtoMinor int
	Header     Header
	// Body is never nil in a received request; reading it is optional. For Do it may be
	// nil.
	Body          io.ReadCloser
	ContentLength int64
	// Host is the Host header's value (the host and port the client asked for).
	Host string
	// RemoteAddr is the client's address as the node saw it.
	RemoteAddr string
	// RequestURI is the request line's target, unmodified.
	RequestURI string
}

// UserAgent returns the User-Agent header's value.
func (r *Request) UserAgent() string { return r.Header.Get("User-Agent") }

// Error replies with the given status and message as plain text, as net/http's Error
// does. The handler should return after it.
func Error(w ResponseWriter, msg string, code int) {
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

// NoBody is an empty request body.
var NoBody = noBody{}

type noBody struct{}

func (noBody) Read([]byte) (int, error) { return 0, io.EOF }
func (noBody) Close() error             { return nil }

var stderr io.Writer = os.Stderr

// areq is the decoded request's head, copied field by field into a Request.
var areq abi.Request

// rw is the response writer every request reuses: no handler may use it after
// returning (see Handler).
var rw response

// arena holds what requests keep: the copies of their heads (strings and header fields).
var arena guest.Arena

// requests is the free part of the block Request objects are carved from (see newRequest).
var requests []request

// requestBlock is how many requests one block holds: about 10 KiB.
const requestBlock = 32

// newRequest returns a zeroed request that no other request shares. Requests are
// carved from blocks, so one allocation serves requestBlock of them, and never reused:
// a handler may keep its *Request and everything in it but the Body.
func newRequest() *request {
	if len(requests) == 0 {
		requests = make([]request, requestBlock)
	}
	p := &requests[0]
	requests = requests[1:]
	return p
}

// bodies is the free part of the block body readers are carved from, as requests are:
// only a request with a body takes one, so the requests' block stays small (a Go
// guest's allocations cost in proportion to their bytes).
var bodies []body

func newBody() *body {
	if len(bodies) == 0 {
		bodies = make([]body, requestBlock)
	}
	b := &bodies[0]
	bodies = bodies[1:]
	return b
}

// reused is the request every request is decoded into under ReuseRequests, and
// reusedBody its body reader.
var (
	reused     request
	reusedBody body
)

// serve decodes one request, runs the handler and returns the encoded response.
//
// The common request costs the guest no allocation of its own: the head's strings are
// carved from the arena's blocks, the Request from a block of them, the header is read
// in place from the head's copy, the Body reads the host's buffer in place, and the
// response is encoded into the buffer the host copies from. The decoding and the
// handler's call are written out here, not in functions of their own: in a Go wasm
// guest every call costs its prologue and its arguments' trip through memory.
func serve(in, out []byte) (resp []byte, code int32) {
	var ends [4]int
	head, body, err := abi.SplitRequestHead(in, &ends)
	if err != nil {
		return nil, abi.HandleBadInput
	}
	ar := &areq
	var fields string
	var p *request
	if reuseRequests {
		// In place: in is the host's buffer, valid until the call returns, and the
		// handler promised to keep nothing of it.
		fields = abi.ParseHeadAt(unsafe.String(unsafe.SliceData(head), len(head)), &ends, ar)
		p = &reused
		*p = request{}
	} else {
		fields = abi.ParseHeadAt(arena.String(head), &ends, ar)
		p = newRequest()
	}
	w := rw.reset(out)
	if err := guest.ParseURI(ar.URI, &p.url); err != nil {
		Error(w, "bad request: "+err.Error(), StatusBadRequest)
		if w.bodyAt < 0 {
			w.writeHead()
		}
		return w.finish(), abi.HandleOK
	}
	// Field by field: p is zero, and a composite literal would be built aside and
	// copied in, through the write barrier's bulk path.
	r := &p.req
	r.Method = ar.Method
	r.URL = &p.url
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	r.Header.wire = fields
	r.Body = NoBody
	if len(body) > 0 {
		b := &reusedBody
		if !reuseRequests {
			b = newBody()
		}
		b.Reset(body)
		r.Body = b
		r.ContentLength = int64(len(body))
	}
	r.Host = ar.Host
	r.RemoteAddr = ar.RemoteAddr
	r.RequestURI = ar.URI
	// A handler that panics gets HandlePanic, and the host discards the instance.
	// recover is called only then: a request that returns pays for the deferred call
	// alone.
	ok := false
	defer func() {
		if !ok {
			if v := recover(); v != nil {
				fmt.Fprintf(stderr, "panic: %v\n", v)
			}
			rw.out = nil
			resp, code = nil, abi.HandlePanic
		}
	}()
	if handlerFunc != nil {
		handlerFunc(w, r)
	} else {
		handler.ServeHTTP(w, r)
	}
	ok = true
	if w.bodyAt < 0 { // the handler wrote no body
		w.writeHead()
	}
	return w.finish(), abi.HandleOK
}

// request is what every received request needs, in one block entry.
type request struct {
	req Request
	url url.URL
}

// body is a request body: a reader over the host's buffer, valid while the handler runs.
type body struct{ bytes.Reader }

func (*body) Close() error { return nil }
