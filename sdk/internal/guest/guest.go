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
	"strings"

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
//
// The fast path's test is one pass of table lookups with no branch per byte (in a Go
// wasm guest each taken branch is an indirect jump). It takes a target whose path
// url would leave as it is (letters, digits and "-._~$&+,/:=@"), with a query of
// printable ASCII but '%' and '#', not ending in a lone '?' (url's ForceQuery).
func ParseURI(uri string, u *url.URL) error {
	if n := len(uri); n > 0 && uri[0] == '/' && !(n > 1 && uri[1] == '/') && uri[n-1] != '?' {
		var bad uint8
		mask := uint8(uriSpecial | uriPathOnly)
		// Four bytes a turn, then the rest: each turn ends in a taken branch, an
		// indirect jump in Go's wasm code.
		i := 0
		for ; i+4 <= len(uri); i += 4 {
			b := uri[i : i+4]
			k := uriByte[b[0]]
			bad |= k & mask
			mask &^= (k / uriQuery) * uriPathOnly // past the first '?', the query's rules
			k = uriByte[b[1]]
			bad |= k & mask
			mask &^= (k / uriQuery) * uriPathOnly
			k = uriByte[b[2]]
			bad |= k & mask
			mask &^= (k / uriQuery) * uriPathOnly
			k = uriByte[b[3]]
			bad |= k & mask
			mask &^= (k / uriQuery) * uriPathOnly
		}
		for ; i < len(uri); i++ {
			k := uriByte[uri[i]]
			bad |= k & mask
			mask &^= (k / uriQuery) * uriPathOnly
		}
		if bad == 0 {
			u.Path = uri
			if mask&uriPathOnly == 0 { // there is a query
				q := strings.IndexByte(uri, '?')
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

// uriByte classifies a request target's bytes for ParseURI.
var uriByte = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c == '%' || c == '#' || c < 0x21 || c > 0x7e:
			t[c] = uriSpecial
		case c == '?':
			t[c] = uriQuery
		case !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~$&+,/:=@", byte(c)) >= 0):
			t[c] = uriPathOnly
		}
	}
	return t
}()

const (
	uriSpecial  = 1 << iota // needs url's parsing anywhere
	uriPathOnly             // needs it in the path, where url would escape it (RawPath)
	uriQuery                // starts the query ('?')
)

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
