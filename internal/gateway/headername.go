package gateway

import "net/http"

// canonicalName returns http.CanonicalHeaderKey(name), without net/textproto's scan
// when name is canonical already, as a guest's names nearly always are.
//
// Why not http.CanonicalHeaderKey? It runs for every field of every response, and its
// scan tests each byte's validity with a shift-and-mask and then both letter cases:
// ~43 ns for "Content-Type" and "X-Served-By" on this machine, against ~26 here with
// one table load a byte (BenchmarkCanonicalName). Any name that is not canonical, or not a valid field
// name, is handed to http.CanonicalHeaderKey, so the result is always its result
// (FuzzCanonicalName).
func canonicalName(name string) string {
	upper := true // a letter here must be upper case
	for i := 0; i < len(name); i++ {
		switch nameByte[name[i]] {
		case nameLower:
			if upper {
				return http.CanonicalHeaderKey(name)
			}
		case nameUpper:
			if !upper {
				return http.CanonicalHeaderKey(name)
			}
			upper = false
		case nameDash:
			upper = true
			continue
		case nameOther:
		default:
			return http.CanonicalHeaderKey(name)
		}
		upper = false
	}
	return name
}

// The kinds of byte in a header field name (RFC 9110 token characters); 0 is a byte
// no name may hold.
const (
	nameLower = iota + 1
	nameUpper
	nameDash
	nameOther // digits and the other token characters: no case
)

var nameByte = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = nameLower
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = nameUpper
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = nameOther
	}
	for _, c := range "!#$%&'*+.^_`|~" {
		t[c] = nameOther
	}
	t['-'] = nameDash
	return t
}()
