// Package fermion is the Go guest SDK's net/http API: a function author writes an
// ordinary net/http handler, registers it in init, and builds with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o app.wasm .
//
// The SDK implements the reactor ABI (fermion.dev/fermion/api/abi): the host
// instantiates the module once, runs _initialize (which runs package init functions,
// so the handler must be registered there, not in main), and then calls the handler for
// many requests. Outbound HTTP goes through the host, which allows only the hosts the
// manifest grants; use Client or Transport for it.
//
// Linking net/http costs a guest about 3 MB of code and most of its start-up (its
// imports' package initialisation, crypto/tls's above all). Package
// fermion.dev/fermion/sdk/fhttp has the same shapes without net/http, for new
// functions; this package is for handlers and libraries written against net/http.
package fermion

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/sdk/internal/guest"
)

var handler http.Handler = http.NotFoundHandler()

var stderr = os.Stderr

// Handle registers h as the function's handler. Call it from an init function.
func Handle(h http.Handler) {
	handler = h
	guest.Serve = serve
}

// HandleFunc registers f as the function's handler. Call it from an init function.
func HandleFunc(f func(http.ResponseWriter, *http.Request)) { Handle(http.HandlerFunc(f)) }

// Client is an HTTP client whose requests go through the host's outbound HTTP capability.
var Client = &http.Client{Transport: Transport{}}

// Get is Client.Get.
func Get(url string) (*http.Response, error) { return Client.Get(url) }

// Transport is an http.RoundTripper that sends requests through the host. The host
// refuses destinations outside the manifest's allowed_outbound_hosts; the refusal comes
// back as the round trip's error.
type Transport struct{}

// RoundTrip implements http.RoundTripper.
func (Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	out := abi.Request{Method: req.Method, URI: req.URL.String(), Host: req.Host}
	if out.Method == "" {
		out.Method = http.MethodGet
	}
	out.Headers = guest.FromHeader(out.Headers, req.Header)
	r, err := guest.Do(&out, req.Body, req.URL.Redacted())
	if err != nil {
		return nil, err
	}
	resp := &http.Response{
		Status:        strconv.Itoa(r.Status) + " " + http.StatusText(r.Status),
		StatusCode:    r.Status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        guest.ToHeader[http.Header](r.Headers, nil, http.CanonicalHeaderKey),
		Body:          io.NopCloser(bytes.NewReader(r.Body)),
		ContentLength: int64(len(r.Body)),
		Request:       req,
	}
	return resp, nil
}

// serve decodes one request, runs the handler and returns the encoded response.
// It is separate from the wasm exports so it can be tested natively.
//
// A request costs the guest the header map (net/http's shape requires one) and what the
// handler allocates. The request's strings and header entries are carved from the
// arena's blocks and its *http.Request, URL, body reader and first header values from a
// block of them (see newRequest); the body reads the host's buffer in place. In a wasm
// guest every allocation and call is several times dearer than natively, and they are
// most of a small handler's time. What can be reused is: areq and the response writer.
var areq abi.Request

// arena holds what requests keep: their strings and header entries.
var arena guest.Arena

// requests is the free part of the block requests are carved from.
var requests []request

// requestBlock is how many requests one block holds: about 12 KiB.
const requestBlock = 16

// newRequest returns a zeroed request no other request shares: one allocation serves
// requestBlock of them, and none is reused, so a handler may keep its *http.Request.
func newRequest() *request {
	if len(requests) == 0 {
		requests = make([]request, requestBlock)
	}
	p := &requests[0]
	requests = requests[1:]
	return p
}

// rw is the response writer every request reuses. net/http's contract forbids using a
// ResponseWriter (or its Header map) after ServeHTTP returns, so no handler can see it.
var rw guest.ResponseWriter[http.Header]

func serve(in []byte, out []byte) (resp []byte, code int32) {
	ar := &areq
	if err := guest.DecodeRequest(in, ar, &arena); err != nil {
		return nil, abi.HandleBadInput
	}
	w := rw.Reset()
	req, err := toHTTPRequest(ar)
	if err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return appendTo(w, out), abi.HandleOK
	}
	if !run(w, req) {
		return nil, abi.HandlePanic
	}
	return appendTo(w, out), abi.HandleOK
}

// run calls the handler and reports false if it panicked.
func run(w http.ResponseWriter, req *http.Request) (ok bool) {
	// recover runs only after a panic: a request that returns pays for the deferred
	// call alone.
	defer func() {
		if !ok {
			if v := recover(); v != nil {
				fmt.Fprintf(stderr, "panic: %v\n", v)
			}
		}
	}()
	handler.ServeHTTP(w, req)
	return true
}

// request is everything a request needs, in one allocation.
type request struct {
	req  http.Request
	url  url.URL
	body body
	vals [8]string // the first value of each header, for up to 8 headers
}

// body is the request body: a reader over the host's buffer, valid while the handler
// runs (net/http's contract: a handler may not read the body after returning).
type body struct{ bytes.Reader }

func (*body) Close() error { return nil }

func toHTTPRequest(ar *abi.Request) (*http.Request, error) {
	p := newRequest()
	if err := guest.ParseURI(ar.URI, &p.url); err != nil {
		return nil, err
	}
	// Field by field: p is zero, and a composite literal would be built aside and
	// copied in whole (net/http's Request is about 250 bytes), through the write
	// barrier's bulk path.
	r := &p.req
	r.Method = ar.Method
	r.URL = &p.url
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	r.Header = guest.ToHeader[http.Header](ar.Headers, p.vals[:0], http.CanonicalHeaderKey)
	r.Body = http.NoBody
	if len(ar.Body) > 0 {
		p.body.Reset(ar.Body)
		r.Body = &p.body
		r.ContentLength = int64(len(ar.Body))
	}
	r.Host = ar.Host
	r.RemoteAddr = ar.RemoteAddr
	r.RequestURI = ar.URI
	return r, nil
}

// appendTo encodes w's response, with a sniffed Content-Type if the handler set none
// (as net/http does).
func appendTo(w *guest.ResponseWriter[http.Header], out []byte) []byte {
	h := w.Header()
	if _, ok := h["Content-Type"]; !ok {
		if body, _ := w.Written(); len(body) > 0 {
			h.Set("Content-Type", http.DetectContentType(body))
		}
	}
	return w.AppendTo(out)
}
