package fhttp

// Header holds header fields by canonical name, as net/http's does. Get, Set, Add, Del
// and Values canonicalise the name they are given; indexing the map does not.
type Header map[string][]string

// Get returns the first value of the named header, or "".
func (h Header) Get(name string) string {
	if vs := h[CanonicalHeaderKey(name)]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// Values returns every value of the named header. The slice is the map's own.
func (h Header) Values(name string) []string { return h[CanonicalHeaderKey(name)] }

// Set replaces the named header's values with value.
func (h Header) Set(name, value string) { h[CanonicalHeaderKey(name)] = []string{value} }

// Add appends value to the named header's values.
func (h Header) Add(name, value string) {
	k := CanonicalHeaderKey(name)
	h[k] = append(h[k], value)
}

// Del removes the named header.
func (h Header) Del(name string) { delete(h, CanonicalHeaderKey(name)) }

// Clone returns a deep copy of h, or nil if h is nil.
func (h Header) Clone() Header {
	if h == nil {
		return nil
	}
	c := make(Header, len(h))
	for k, vs := range h {
		c[k] = append([]string(nil), vs...)
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
