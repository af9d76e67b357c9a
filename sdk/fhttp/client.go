package fhttp

import (
	"bytes"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/sdk/internal/guest"
)

// Response is the response to a request sent with Do.
type Response struct {
	Status        string // "200 OK"
	StatusCode    int
	Proto         string // "HTTP/1.1"
	ProtoMajor    int
	ProtoMinor    int
	Header        Header
	Body          io.ReadCloser // the whole body, already received; Close is optional
	ContentLength int64
	Request       *Request
}

// NewRequest returns a request for Do. body may be nil.
func NewRequest(method, rawURL string, body io.Reader) (*Request, error) {
	if method == "" {
		method = MethodGet
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("fhttp: %q is not an absolute URL", rawURL)
	}
	r := &Request{Method: method, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: Header{}, Host: u.Host}
	if body != nil {
		rc, ok := body.(io.ReadCloser)
		if !ok {
			rc = io.NopCloser(body)
		}
		r.Body = rc
	}
	return r, nil
}

// Do sends req through the host and returns its response. The host refuses
// destinations outside the manifest's allowed_outbound_hosts and applies the
// manifest's outbound timeout; either comes back as Do's error, as does a network
// failure. A response with any status is not an error.
func Do(req *Request) (*Response, error) {
	if req.URL == nil {
		return nil, fmt.Errorf("fhttp: request has no URL")
	}
	out := abi.Request{Method: req.Method, URI: req.URL.String(), Host: req.Host}
	if out.Method == "" {
		out.Method = MethodGet
	}
	out.Headers = req.Header.appendTo(out.Headers)
	r, err := guest.Do(&out, req.Body, req.URL.Redacted())
	if err != nil {
		return nil, err
	}
	return &Response{
		Status:        strings.TrimSpace(strconv.Itoa(r.Status) + " " + StatusText(r.Status)),
		StatusCode:    r.Status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        Header{list: r.Headers},
		Body:          io.NopCloser(bytes.NewReader(r.Body)),
		ContentLength: int64(len(r.Body)),
		Request:       req,
	}, nil
}

// Get sends a GET request to url through the host.
func Get(url string) (*Response, error) {
	req, err := NewRequest(MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	return Do(req)
}

// Post sends a POST request with the given content type and body through the host.
func Post(url, contentType string, body io.Reader) (*Response, error) {
	req, err := NewRequest(MethodPost, url, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	return Do(req)
}
