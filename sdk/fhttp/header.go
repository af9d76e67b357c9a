package fhttp

import (
	"iter"
	"unsafe"

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
// for each). A received request's header is read in place, from the copy of the
// request's head its strings come from, until the handler changes it. Map turns it
// into net/http's map shape for code that wants to index or range over one; from then
// on the map is the header. The zero Header is empty and ready to use. A Header copied
// by value shares its storage with the original, as a copied map would, but unlike a
// map the two do not stay in step: change only one of them, or Clone for an
// independent copy.
type Header struct {
	// Exactly one of these holds the fields: m once Map was called, else wire while
	// it is not empty, else list.
	list []abi.Header        // the fields in order, names canonical
	m    map[string][]string // the only store once Map was called
	wire string              // a received request's fields as the host encoded them (abi.HeaderAt)
}

// Get returns the first value of the named header, or "".
func (h Header) Get(name string) string {
	if h.m != nil {
		if vs := h.m[CanonicalHeaderKey(name)]; len(vs) > 0 {
			return vs[0]
		}
		return ""
	}
	for q := 0; q < len(h.wire); {
		var f abi.Header
		if f, q = abi.HeaderAt(h.wire, q); sameName(f.Name, name) {
			return f.Value
		}
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
	for f := range h.fields() {
		if sameName(f.Name, name) {
			vs = append(vs, f.Value)
		}
	}
	return vs
}

// fields yields the fields of a Header not yet mapped, in order.
func (h Header) fields() iter.Seq[abi.Header] {
	return func(yield func(abi.Header) bool) {
		for q := 0; q < len(h.wire); {
			var f abi.Header
			if f, q = abi.HeaderAt(h.wire, q); !yield(f) {
				return
			}
		}
		for _, f := range h.list {
			if !yield(f) {
				return
			}
		}
	}
}

// own makes the fields of a received request's header a list h may change, copying
// them out of its encoding (the callers test h.wire: a call costs more than the test).
func (h *Header) own() {
	n := 0
	for q := 0; q < len(h.wire); n++ {
		_, q = abi.HeaderAt(h.wire, q)
	}
	list := make([]abi.Header, 0, n+1)
	for f := range h.fields() {
		list = append(list, f)
	}
	h.list, h.wire = list, ""
}

// Set replaces the named header's values with value.
func (h *Header) Set(name, value string) {
	if h.m != nil {
		h.m[CanonicalHeaderKey(name)] = []string{value}
		return
	}
	if h.wire != "" {
		h.own()
	}
	for i := range h.list {
		if sameName(h.list[i].Name, name) {
			h.list[i].Value = value
			h.delFrom(i+1, name)
			return
		}
	}
	// CanonicalHeaderKey's cache lookup written out, so that a name found there
	// costs no call (the whole function is too large to be inlined).
	k, ok := "", false
	if c := canonicalCache; c != nil {
		k, ok = c.get(name)
	}
	if !ok {
		k = CanonicalHeaderKey(name)
	}
	h.list = append(h.list, abi.Header{Name: k, Value: value})
}

// Add appends value to the named header's values.
func (h *Header) Add(name, value string) {
	if h.m != nil {
		k := CanonicalHeaderKey(name)
		h.m[k] = append(h.m[k], value)
		return
	}
	if h.wire != "" {
		h.own()
	}
	// CanonicalHeaderKey's cache lookup written out, so that a name found there
	// costs no call (the whole function is too large to be inlined).
	k, ok := "", false
	if c := canonicalCache; c != nil {
		k, ok = c.get(name)
	}
	if !ok {
		k = CanonicalHeaderKey(name)
	}
	h.list = append(h.list, abi.Header{Name: k, Value: value})
}

// Del removes the named header.
func (h *Header) Del(name string) {
	if h.m != nil {
		delete(h.m, CanonicalHeaderKey(name))
		return
	}
	if h.wire != "" {
		h.own()
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
	n := 0
	if h.m != nil {
		for _, vs := range h.m {
			n += len(vs)
		}
		return n
	}
	for q := 0; q < len(h.wire); n++ {
		_, q = abi.HeaderAt(h.wire, q)
	}
	return n + len(h.list)
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
		for f := range h.fields() {
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
		m := make(map[string][]string, h.Len())
		for f := range h.fields() {
			k := CanonicalHeaderKey(f.Name)
			m[k] = append(m[k], f.Value)
		}
		h.m, h.list, h.wire = m, nil, ""
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
	if h.wire != "" { // never changed in place: own copies it out first
		return Header{wire: h.wire}
	}
	if h.list == nil {
		return Header{}
	}
	return Header{list: append([]abi.Header(nil), h.list...)}
}

// appendTo appends h's fields to hs.
func (h *Header) appendTo(hs []abi.Header) []abi.Header {
	if h.m == nil {
		for f := range h.fields() {
			hs = append(hs, f)
		}
		return hs
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
//
// Like CanonicalHeaderKey it looks bytes up in byteClass rather than testing them: in
// a Go wasm guest every taken branch is an indirect jump, so a loop without branches
// in its body costs a fraction of one with a test per byte.
func sameName(stored, name string) bool {
	if len(stored) != len(name) {
		return false
	}
	var diff, bad uint16
	for i := 0; i < len(name); i++ {
		a, b := byteClass[stored[i]], byteClass[name[i]]
		diff |= (a ^ b) &^ classMask // the bytes' folded values differ
		bad |= b & notToken
	}
	if bad != 0 {
		return stored == name
	}
	return diff == 0
}

// byteClass holds, for every byte, what header names need to know of it: its
// lower-case form in the high bits (the byte itself if not a letter) and the
// class bits below, so one lookup answers both folding and validity.
var byteClass = func() (t [256]uint16) {
	for c := range 256 {
		v := uint16(c)
		class := uint16(0)
		switch {
		case 'A' <= c && c <= 'Z':
			v += 'a' - 'A'
			class = upperLetter
		case 'a' <= c && c <= 'z':
			class = lowerLetter
		case c == '-':
			class = hyphen
		}
		if !isTokenByte(byte(c)) {
			class |= notToken
		}
		t[c] = v<<classBits | class
	}
	return t
}()

// The class bits of byteClass.
const (
	notToken    = 1 << iota // not allowed in a field name (RFC 9110's tchar)
	lowerLetter             // a–z
	upperLetter             // A–Z
	hyphen                  // '-': the next letter starts a word

	classBits = 4
	classMask = 1<<classBits - 1
)

// CanonicalHeaderKey returns name in canonical form, as net/http's does: the first
// letter and each letter after a hyphen upper case, the rest lower case. A name that is
// not a valid header field name (a space, say) is returned unchanged.
//
// Names are nearly always canonical already (a handler's literals, the host's names),
// so the test for that is one pass of table lookups without a branch per byte (see
// sameName); only a name that needs rewriting pays for a second pass and a copy. In a
// guest, a name passed again (the same string, as a literal is) is found in a small
// cache instead (see nameCache).
func CanonicalHeaderKey(name string) string {
	if c := canonicalCache; c != nil {
		if k, ok := c.get(name); ok {
			return k
		}
		k := canonicalHeaderKey(name)
		if keepable(name) {
			c.put(name, k)
		}
		return k
	}
	return canonicalHeaderKey(name)
}

// canonicalHeaderKey is CanonicalHeaderKey without the cache.
func canonicalHeaderKey(name string) string {
	// A letter is wrong if it is lower case at a word's start or upper case inside one;
	// want holds the classes not allowed at the next byte.
	const atStart, inWord = notToken | lowerLetter, notToken | upperLetter
	var bad uint16
	want := uint16(atStart)
	for i := 0; i < len(name); i++ {
		k := byteClass[name[i]] & classMask
		bad |= k & want
		want = inWord ^ (k/hyphen)*(inWord^atStart) // after a hyphen a word starts
	}
	if bad == 0 || bad&notToken != 0 {
		return name
	}
	return canonicalize(name)
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
	// b is this function's own and never changed again: the string can be it, with
	// no second copy.
	return unsafe.String(unsafe.SliceData(b), len(b))
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
