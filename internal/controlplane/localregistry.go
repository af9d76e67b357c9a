package controlplane

import (
	"io"
	"net/http"
	"strconv"
	"sync"
)

// localRegistry sends requests for the built-in registry's host to its handler in
// this process, streaming the response: the control plane resolves the images it
// serves itself without a network round trip, and without trusting its own TLS
// certificate (a server has its key and certificate, not necessarily the CA behind
// them). Other hosts go to next.
type localRegistry struct {
	host string
	h    http.Handler
	next http.RoundTripper
}

func (t *localRegistry) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host != t.host {
		return t.next.RoundTrip(req)
	}
	in := req.Clone(req.Context())
	if in.Body == nil {
		in.Body = http.NoBody
	}
	in.RemoteAddr = "in-process"
	in.RequestURI = req.URL.RequestURI()
	pr, pw := io.Pipe()
	w := &pipeResponse{header: http.Header{}, body: pw, wrote: make(chan struct{})}
	go func() {
		defer func() {
			w.writeHeader(http.StatusOK) // a handler that wrote nothing answered 200
			pw.Close()
		}()
		t.h.ServeHTTP(w, in)
	}()
	<-w.wrote
	resp := &http.Response{Status: strconv.Itoa(w.status) + " " + http.StatusText(w.status), StatusCode: w.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: w.sent, Body: pr, Request: req, ContentLength: -1}
	if n, err := strconv.ParseInt(w.sent.Get("Content-Length"), 10, 64); err == nil {
		resp.ContentLength = n
	}
	if req.Method == http.MethodHead {
		pr.Close()
		resp.Body = http.NoBody
	}
	return resp, nil
}

// pipeResponse is an http.ResponseWriter whose body goes into a pipe.
type pipeResponse struct {
	header http.Header
	body   *io.PipeWriter
	once   sync.Once
	wrote  chan struct{} // closed when the status and header are fixed
	status int
	sent   http.Header // the header as it was when the status was written
}

func (w *pipeResponse) Header() http.Header { return w.header }

func (w *pipeResponse) WriteHeader(status int) { w.writeHeader(status) }

func (w *pipeResponse) writeHeader(status int) {
	w.once.Do(func() {
		w.status, w.sent = status, w.header.Clone()
		close(w.wrote)
	})
}

func (w *pipeResponse) Write(b []byte) (int, error) {
	w.writeHeader(http.StatusOK)
	return w.body.Write(b)
}
