package gateway

import "net/http"

// requestURI returns the path and query the guest is given (sandbox.Request.URI):
// r.URL.RequestURI(), without its work when that is known to be the request target as
// received.
//
// Why not always r.URL.RequestURI()? It re-escapes the parsed path (url.URL.EscapedPath),
// a scan with a validity check and an unescape of RawPath, and with a query a
// concatenation: 0.09 µs of every request (bench/RESULTS.md, "Gateway trims (gwtrim)").
// On the gateway's own server (tc set), net/http parsed r.URL from r.RequestURI with
// url.ParseRequestURI and nothing in between rewrites either. For such a target in
// origin form whose path holds only bytes EscapedPath leaves alone (pathByteKept),
// EscapedPath returns the path as received (RawPath, or an escape that changes
// nothing), and RequestURI appends the raw query as received: the same string, byte for
// byte, which FuzzRequestURI checks against net/url. Any other target (absolute form,
// "*", a path byte EscapedPath would percent-encode, such as raw UTF-8 or '"') and
// requests from elsewhere (tests, another server, a handler that rewrote r.URL) take
// r.URL.RequestURI(), so the guest sees the same URI either way.
func requestURI(tc *trackedConn, r *http.Request) string {
	if tc != nil && originFormKept(r.RequestURI) {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

// originFormKept reports whether target, a request target that url.ParseRequestURI
// accepted, is in origin form ("/path?query") with a path url.URL.EscapedPath gives
// back unchanged.
func originFormKept(target string) bool {
	if len(target) == 0 || target[0] != '/' {
		return false
	}
	for i := 1; i < len(target); i++ {
		c := target[i]
		if c == '?' {
			return true // the query is appended as received
		}
		if !pathByteKept[c] {
			return false
		}
	}
	return true
}

// pathByteKept holds the bytes net/url's EscapedPath keeps as they are in a path it
// accepts as validly encoded (validEncoded for encodePath): unreserved, sub-delims,
// ':', '@', '/', '[', ']', and '%' (whose escapes ParseRequestURI has checked and
// which RawPath keeps as sent). Every other byte sends requestURI to net/url.
var pathByteKept = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-._~!$&'()*+,;=:@/[]%" {
		t[c] = true
	}
	return t
}()
