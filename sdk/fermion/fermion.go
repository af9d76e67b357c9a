// Package fermion is the Go guest SDK: a function author writes an ordinary net/http
// handler, registers it in init, and builds with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o app.wasm .
//
// The SDK implements the reactor ABI (fermion.dev/fermion/api/abi): the host
// instantiates the module once, runs _initialize (which runs package init functions,
// so the handler must be registered there, not in main), and then calls the handler for
// many requests. Outbound HTTP goes through the host, which allows only the hosts the
// manifest grants; use Client or Transport for it.
package fermion

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"fermion.dev/fermion/api/abi"
)

var handler http.Handler = http.NotFoundHandler()

// Handle registers h as the function's handler. Call it from an init function.
func Handle(h http.Handler) { handler = h }

// HandleFunc registers f as the function's handler. Call it from an init function.
func HandleFunc(f func(http.ResponseWriter, *http.Request)) { handler = http.HandlerFunc(f) }

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
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("read outbound request body: %w", err)
		}
		body = b
	}
	out := abi.Request{Method: req.Method, URI: req.URL.String(), Host: req.Host, Body: body}
	if out.Method == "" {
		out.Method = http.MethodGet
	}
	out.Headers = fromHeader(out.Headers, req.Header)
	result, err := send(abi.AppendRequest(nil, &out))
	if err != nil {
		return nil, err
	}
	var r abi.Response
	msg, err := abi.DecodeResult(result, &r)
	if err != nil {
		return nil, fmt.Errorf("decode outbound response: %w", err)
	}
	if msg != "" {
		return nil, fmt.Errorf("outbound %s %s: %s", req.Method, req.URL.Redacted(), msg)
	}
	resp := &http.Response{
		Status:        strconv.Itoa(r.Status) + " " + http.StatusText(r.Status),
		StatusCode:    r.Status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        toHeader(r.Headers),
		Body:          io.NopCloser(bytes.NewReader(r.Body)),
		ContentLength: int64(len(r.Body)),
		Request:       req,
	}
	return resp, nil
}

// serve decodes one request, runs the handler and returns the encoded response.
// It is separate from the wasm exports so it can be tested natively.
// areq is reused across requests: its header slice keeps its capacity.
var areq abi.Request

func serve(in []byte, out []byte) (resp []byte, code int32) {
	ar := &areq
	if err := abi.DecodeRequest(in, ar); err != nil {
		return nil, abi.HandleBadInput
	}
	req, err := toHTTPRequest(ar)
	if err != nil {
		w := newResponseWriter()
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return w.appendTo(out), abi.HandleOK
	}
	w := newResponseWriter()
	panicked := func() (panicked bool) {
		defer func() {
			if v := recover(); v != nil {
				panicked = true
				fmt.Fprintf(stderr, "panic: %v\n", v)
			}
		}()
		handler.ServeHTTP(w, req)
		return false
	}()
	if panicked {
		return nil, abi.HandlePanic
	}
	return w.appendTo(out), abi.HandleOK
}

func toHTTPRequest(ar *abi.Request) (*http.Request, error) {
	u, err := parseURI(ar.URI)
	if err != nil {
		return nil, err
	}
	req := &http.Request{
		Method:        ar.Method,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        toHeader(ar.Headers),
		Body:          http.NoBody,
		ContentLength: int64(len(ar.Body)),
		Host:          ar.Host,
		RemoteAddr:    ar.RemoteAddr,
		RequestURI:    ar.URI,
	}
	if len(ar.Body) > 0 {
		req.Body = io.NopCloser(bytes.NewReader(ar.Body))
	}
	return req, nil
}

// parseURI is url.ParseRequestURI with a fast path for the common plain path with an
// optional simple query: wasm makes every avoided allocation count.
func parseURI(uri string) (*url.URL, error) {
	if len(uri) > 0 && uri[0] == '/' {
		simple := true
		q := -1
		for i := 0; i < len(uri); i++ {
			c := uri[i]
			if c == '?' && q < 0 {
				q = i
				continue
			}
			if c == '%' || c == '#' || c < 0x21 || c > 0x7e || (q < 0 && c == ';') {
				simple = false
				break
			}
		}
		if simple && !(len(uri) > 1 && uri[1] == '/') {
			if q < 0 {
				return &url.URL{Path: uri}, nil
			}
			return &url.URL{Path: uri[:q], RawQuery: uri[q+1:]}, nil
		}
	}
	return url.ParseRequestURI(uri)
}

func toHeader(hs []abi.Header) http.Header {
	h := make(http.Header, len(hs))
	// One backing array for every first value: one allocation instead of one per header.
	vals := make([]string, len(hs))
	for i, kv := range hs {
		k := http.CanonicalHeaderKey(kv.Name)
		if prev, ok := h[k]; ok {
			h[k] = append(prev, kv.Value)
			continue
		}
		vals[i] = kv.Value
		h[k] = vals[i : i+1 : i+1]
	}
	return h
}

func fromHeader(hs []abi.Header, h http.Header) []abi.Header {
	for k, vs := range h {
		for _, v := range vs {
			hs = append(hs, abi.Header{Name: k, Value: v})
		}
	}
	return hs
}

// respHeaders is reused for every response's header list.
var respHeaders []abi.Header

// responseWriter buffers the whole response: the host sends it in one piece.
type responseWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newResponseWriter() *responseWriter {
	return &responseWriter{header: make(http.Header)}
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(p)
}

func (w *responseWriter) appendTo(out []byte) []byte {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	body := w.body.Bytes()
	if _, ok := w.header["Content-Type"]; !ok && len(body) > 0 {
		w.header.Set("Content-Type", http.DetectContentType(body))
	}
	r := abi.Response{Status: w.status, Body: body}
	r.Headers = fromHeader(respHeaders[:0], w.header)
	respHeaders = r.Headers[:0]
	return abi.AppendResponse(out, &r)
}
