package sandbox

import (
	"net/http"
	"slices"
	"testing"

	"fermion.dev/fermion/api/abi"
)

// TestAppendRequestHeaderNames: the guest gets names canonical whether the sandbox
// canonicalises them (a map built any way) or the caller says they already are
// (Request.CanonicalHeader, net/http's server's maps), and the host's added fields
// replace the map's of the same names either way.
func TestAppendRequestHeaderNames(t *testing.T) {
	added := Header{{Name: "X-Request-Id", Value: "gw-id"}}
	for _, tc := range []struct {
		name      string
		header    http.Header
		canonical bool
	}{
		{"canonicalised by the sandbox", http.Header{"x-lower": {"a"}, "User-Agent": {"u"}, "x-request-id": {"client"}}, false},
		{"canonical already", http.Header{"X-Lower": {"a"}, "User-Agent": {"u"}, "X-Request-Id": {"client"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &Request{Method: "GET", URI: "/", Host: "h", Header: tc.header, CanonicalHeader: tc.canonical, Added: added}
			enc := appendRequest(nil, req)
			var got abi.Request
			if err := abi.DecodeRequest(enc, &got); err != nil {
				t.Fatal(err)
			}
			names := make([]string, 0, len(got.Headers))
			for _, h := range got.Headers {
				names = append(names, h.Name+"="+h.Value)
			}
			slices.Sort(names)
			want := []string{"User-Agent=u", "X-Lower=a", "X-Request-Id=gw-id"}
			if !slices.Equal(names, want) {
				t.Fatalf("guest's headers %q, want %q", names, want)
			}
		})
	}
}

// BenchmarkAppendRequest is a request's encoding as the gateway's minimal request
// makes it: one client header, canonical, and the gateway's request id added.
func BenchmarkAppendRequest(b *testing.B) {
	req := &Request{Method: "GET", URI: "/hello", Host: "bench", RemoteAddr: "127.0.0.1:1234",
		Header: http.Header{"User-Agent": {"wrk"}}, CanonicalHeader: true,
		Added: Header{{Name: "X-Request-Id", Value: "0123456789abcdef0123456789abcdef"}}}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = appendRequest(buf[:0], req)
	}
}
