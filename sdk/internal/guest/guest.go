// Package guest is the reactor ABI's guest half (fermion.dev/fermion/api/abi), shared by
// the SDK's two handler APIs, fhttp and the net/http one in package fermion: the wasm
// exports, the hand-off of the response, outbound HTTP through the host, and the
// request decoding both APIs do the same way.
//
// It imports nothing heavier than net/url, so a guest that uses fhttp does not link
// net/http (and with it crypto/tls, whose package initialisation is most of a Go
// guest's start-up).
package guest

import (
	"net/url"

	"fermion.dev/fermion/api/abi"
)

// Serve handles one request: in is its encoding (valid only during the call), out a
// buffer to append the encoded response to. It reports abi.HandleOK, or the code the
// export returns instead of a response. The handler APIs set it when a handler is
// registered; until then every request gets a 404.
var Serve = notFound

var notFoundResponse = abi.Response{
	Status:  404,
	Headers: []abi.Header{{Name: "Content-Type", Value: "text/plain; charset=utf-8"}, {Name: "X-Content-Type-Options", Value: "nosniff"}},
	Body:    []byte("404 page not found\n"),
}

func notFound(in, out []byte) ([]byte, int32) {
	return abi.AppendResponse(out, &notFoundResponse), abi.HandleOK
}

// ParseURI is url.ParseRequestURI into u, with a fast path for the common plain path
// with an optional simple query.
func ParseURI(uri string, u *url.URL) error {
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
				u.Path = uri
			} else {
				u.Path, u.RawQuery = uri[:q], uri[q+1:]
			}
			return nil
		}
	}
	parsed, err := url.ParseRequestURI(uri)
	if err != nil {
		return err
	}
	*u = *parsed
	return nil
}

// Header is the shape of both APIs' header maps.
type Header interface{ ~map[string][]string }

// ToHeader builds a header map from a request's entries. vals is backing store for
// single values: a header's value slice shares it instead of being an allocation of its
// own. canonical is the API's CanonicalHeaderKey.
//
// Names are used as they come: the host sends them canonical, with a repeated name's
// values adjacent (see package abi), so each name costs one map assignment. A name
// that turns up again later (another host might do that) sends the whole list down
// the general path, which canonicalises every name.
func ToHeader[H Header](hs []abi.Header, vals []string, canonical func(string) string) H {
	h := make(H, len(hs))
	for i := 0; i < len(hs); {
		name := hs[i].Name
		j := i + 1
		for j < len(hs) && hs[j].Name == name {
			j++
		}
		var vs []string
		if j == i+1 && len(vals) < cap(vals) {
			vals = append(vals, hs[i].Value)
			vs = vals[len(vals)-1 : len(vals) : len(vals)]
		} else {
			vs = make([]string, 0, j-i)
			for _, kv := range hs[i:j] {
				vs = append(vs, kv.Value)
			}
		}
		n := len(h)
		h[name] = vs
		if len(h) == n {
			return toHeaderSlow[H](hs, canonical)
		}
		i = j
	}
	return h
}

func toHeaderSlow[H Header](hs []abi.Header, canonical func(string) string) H {
	h := make(H, len(hs))
	for _, kv := range hs {
		k := canonical(kv.Name)
		h[k] = append(h[k], kv.Value)
	}
	return h
}

// FromHeader appends h's entries to hs.
func FromHeader[H Header](hs []abi.Header, h H) []abi.Header {
	for k, vs := range h {
		for _, v := range vs {
			hs = append(hs, abi.Header{Name: k, Value: v})
		}
	}
	return hs
}
