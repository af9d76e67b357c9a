// Package fhttptest tests fhttp handlers natively, as net/http/httptest does for
// net/http ones: build a request with NewRequest, record the response with a
// ResponseRecorder, and call the handler.
//
//	w := fhttptest.NewRecorder()
//	handle(w, fhttptest.NewRequest("GET", "/hello?name=Ada", nil))
//	if w.Code != 200 || w.Body.String() != "Hello, Ada!\n" { … }
package fhttptest

import (
	"bytes"
	"io"
	"net/url"
	"strings"

	"fermion.dev/fermion/sdk/fhttp"
)

// NewRequest returns a request as the host delivers one to a handler. target is the
// request line's target ("/path?query") or an absolute URL, whose host becomes the Host;
// the Host is otherwise "example.com". body may be nil. NewRequest panics on a target
// that does not parse: it is for tests.
func NewRequest(method, target string, body io.Reader) *fhttp.Request {
	if method == "" {
		method = fhttp.MethodGet
	}
	u, err := url.Parse(target)
	if err != nil || (u.Host == "" && !strings.HasPrefix(target, "/")) {
		panic("fhttptest: invalid NewRequest target " + target)
	}
	r := &fhttp.Request{
		Method: method, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: fhttp.Header{}, Body: fhttp.NoBody, Host: "example.com",
		RemoteAddr: "192.0.2.1:1234", RequestURI: target,
	}
	if u.Host != "" {
		r.Host = u.Host
		r.RequestURI = u.RequestURI()
		u.Scheme, u.Host = "", ""
	}
	if body != nil {
		b, err := io.ReadAll(body)
		if err != nil {
			panic("fhttptest: read NewRequest body: " + err.Error())
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.ContentLength = int64(len(b))
	}
	return r
}

// ResponseRecorder is an fhttp.ResponseWriter that records the response.
type ResponseRecorder struct {
	Code      int          // the status: WriteHeader's, or 200 once anything was written
	HeaderMap fhttp.Header // the headers the handler set
	Body      *bytes.Buffer
	wrote     bool
}

// NewRecorder returns a ResponseRecorder with status 200 until the handler says otherwise.
func NewRecorder() *ResponseRecorder {
	return &ResponseRecorder{Code: fhttp.StatusOK, HeaderMap: fhttp.Header{}, Body: new(bytes.Buffer)}
}

// Header returns the response headers.
func (r *ResponseRecorder) Header() *fhttp.Header { return &r.HeaderMap }

// WriteHeader records the status; as in fhttp, only the first call counts.
func (r *ResponseRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.Code, r.wrote = code, true
	}
}

// Write records body bytes.
func (r *ResponseRecorder) Write(p []byte) (int, error) {
	r.wrote = true
	return r.Body.Write(p)
}

// WriteString records body bytes.
func (r *ResponseRecorder) WriteString(s string) (int, error) {
	r.wrote = true
	return r.Body.WriteString(s)
}
