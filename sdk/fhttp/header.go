package fhttp

import (
	"iter"

	"fermion.dev/fermion/api/abi"
)

// Header holds a request's or response's header fields, with net/http's methods (Get,
// Set, Add, Del, Values, Clone): names are matched as CanonicalHeaderKey would make
// them, so case does not matter.
//
// Get, Values, Len, All and Clone only read, so they take the Header by value; the
// others change it, so they need an addressable one (a Request's field, a variable,
// what ResponseWriter.Header returns).
//
// It is a list, not a map: a handler that reads or sets a few fields, as most do, then
// costs no hashing and no allocation (a Go wasm guest pays several hundred nanoseconds
// for each). Map turns it into net/http's map shape for code that wants to index or
// range over one; from then on the map is the header. The zero Header is empty and
// ready to use. A Header copied by value shares its storage with the original, as a
// copied map would, but unlike a map the two do not stay in step: change only one of
// them, or Clone for an independent copy.
type Header struct {
	list []abi.Header        // the fields in order, names canonical, while m is nil
	m    map[string][]string // once Map was called: the only store
}

// Get returns the first value of the named header, or "".
func (h Header) Get(name string) string {
	if h.m != nil {
		if vs := h.m[CanonicalHeaderKey(name)]; len(vs) > 0 {
			return vs[0]
		}
		return ""
	}
	for i := range h.list {
		if sameName(h.list[i].Name, name) {
			return h.list[i].Value
		}
	}
	return ""
}

// Values returns every value of the named header, or nil. Before Map is called the
// slice is a new one each time; after, it is the map's own, as in net/http.
func (h Header) Values(name string) []string {
	if h.m != nil {
		return h.m[CanonicalHeaderKey(name)]
	}
	var vs []string
	for i := range h.list {
		if sameName(h.list[i].Name, name) {
			vs = append(vs, h.list[i].Value)
		}
	}
	return vs
}

// Set replaces the named header's values with value.
func (h *Header) Set(name, value string) {
	if h.m != nil {
		h.m[CanonicalHeaderKey(name)] = []string{value}
		return
	}
	for i := range h.list {
		if sameName(h.list[i].Name, name) {
			h.list[i].Value = value
			h.delFrom(i+1, name)
			return
		}
	}
	h.list = append(h.list, abi.Header{Name: CanonicalHeaderKey(name), Value: value})
}

// Add appends value to the named header's values.
func (h *Header) Add(name, value string) {
	if h.m != nil {
		k := CanonicalHeaderKey(name)
		h.m[k] = append(h.m[k], value)
		return
	}
	h.list = append(h.list, abi.Header{Name: CanonicalHeaderKey(name), Value: value})
}

// Del removes the named header.
func (h *Header) Del(name string) {
	if h.m != nil {
		delete(h.m, CanonicalHeaderKey(name))
		return
	}
	h.delFrom(0, name)
}

// delFrom removes the named fields from list[i:], keeping the others' order.
func (h *Header) delFrom(i int, name string) {
	j := i
	for ; i < len(h.list); i++ {
		if !sameName(h.list[i].Name, name) {
			h.list[j] = h.list[i]
			j++
		}
	}
	clear(h.list[j:])
	h.list = h.list[:j]
}

// Len returns the number of fields (a name with two values counts twice).
func (h Header) Len() int {
	if h.m != nil {
		n := 0
		for _, vs := range h.m {
			n += len(vs)
		}
		return n
	}
	return len(h.list)
}

// All yields every field's name and value; a repeated name is yielded once per value.
// Before Map is called the order is the fields' own; after, it is the map's.
func (h Header) All() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		if h.m != nil {
			for k, vs := range h.m {
				for _, v := range vs {
					if !yield(k, v) {
						return
					}
				}
			}
			return
		}
		for _, f := range h.list {
			if !yield(f.Name, f.Value) {
				return
			}
		}
	}
}

// Map returns the header as net/http's map shape (values by canonical name), built on
// the first call. From then on the map is the header: changes made through the map
// and through h's methods both show in each. Building it costs what net/http's header
// always costs, so call it only where a map is needed.
func (h *Header) Map() map[string][]string {
	if h.m == nil {
		m := make(map[string][]string, len(h.list))
		for _, f := range h.list {
			k := CanonicalHeaderKey(f.Name)
			m[k] = append(m[k], f.Value)
		}
		h.m, h.list = m, nil
	}
	return h.m
}

// HeaderOf returns a Header holding m's fields, for code that has net/http's map shape.
// The Header uses m itself (see Map).
func HeaderOf(m map[string][]string) Header {
	if m == nil {
		m = map[string][]string{}
	}
	return Header{m: m}
}

// Clone returns an independent copy of h.
func (h Header) Clone() Header {
	if h.m != nil {
		c := make(map[string][]string, len(h.m))
		for k, vs := range h.m {
			c[k] = append([]string(nil), vs...)
		}
		return Header{m: c}
	}
	if h.list == nil {
		return Header{}
	}
	return Header{list: append([]abi.Header(nil), h.list...)}
}

// appendTo appends h's fields to hs.
func (h *Header) appendTo(hs []abi.Header) []abi.Header {
	if h.m == nil {
		return append(hs, h.list...)
	}
	for k, vs := range h.m {
		for _, v := range vs {
			hs = append(hs, abi.Header{Name: k, Value: v})
		}
	}
	return hs
}

// sameName reports whether a field stored under stored is the one name means: the
// same name but for case, unless name is not a valid field name, which
// CanonicalHeaderKey leaves as it is and so only matches exactly.
func sameName(stored, name string) bool {
	if len(stored) != len(name) {
		return false
	}
	folded := true
	for i := 0; i < len(name); i++ {
		a, b := stored[i], name[i]
		if !isTokenByte(b) {
			return stored == name
		}
		if a != b && lower(a) != lower(b) {
			folded = false
		}
	}
	return folded
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// CanonicalHeaderKey returns name in canonical form, as net/http's does: the first
// letter and each letter after a hyphen upper case, the rest lower case. A name that is
// not a valid header field name (a space, say) is returned unchanged.
func CanonicalHeaderKey(name string) string {
	upper, rewrite := true, false
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isTokenByte(c) {
			return name
		}
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			rewrite = true
		}
		upper = c == '-'
	}
	if rewrite {
		return canonicalize(name)
	}
	return name
}

// canonicalize rewrites name, which is all token bytes, in canonical form.
func canonicalize(name string) string {
	b := []byte(name)
	upper := true
	for i, c := range b {
		if upper && 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		} else if !upper && 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
		upper = c == '-'
	}
	return string(b)
}

// isTokenByte reports whether c may appear in a header field name (RFC 9110's tchar).
func isTokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}
