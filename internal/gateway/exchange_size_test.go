package gateway

import (
	"testing"
	"unsafe"

	"fermion.dev/fermion/internal/fermiontest"
)

// TestExchangeSize: an HTTP/2 stream allocates its exchange per request (HTTP/1 keeps
// one per connection), so its size is paid per request; the allocator rounds it up to
// a size class. 768 bytes is the class it fits since its span stopped carrying a second
// copy of the span context (it was 816 bytes, in the 896-byte class).
func TestExchangeSize(t *testing.T) {
	if n := unsafe.Sizeof(exchange{}); n > 768 {
		t.Errorf("exchange is %d bytes, over the 768-byte size class: each HTTP/2 request pays it", n)
	}
}

// BenchmarkServeHTTPFixedH2 is BenchmarkServeHTTPFixed's gateway case for an HTTP/2
// request, which allocates its exchange: B/op shows the exchange's size class.
func BenchmarkServeHTTPFixedH2(b *testing.B) {
	g := fixedGateway(b)
	for _, proto := range []int{1, 2} {
		b.Run("http"+string(rune('0'+proto)), func(b *testing.B) {
			r := ownServerRequest(b, proto)
			w := new(fermiontest.ServerWriter)
			b.ReportAllocs()
			for b.Loop() {
				clear(r.Header)
				r.Header["User-Agent"] = []string{"wrk"}
				clear(w.Header())
				g.ServeHTTP(w, r)
			}
		})
	}
}
