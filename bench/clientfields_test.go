package bench

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"fermion.dev/fermion/internal/sandbox"
)

// BenchmarkGatewayClientFields is the ABI-only guest through the gateway and sandbox
// (telemetry off, no sockets) for requests carrying 0, 7 and 12 header fields, each
// request's header map made as net/http makes it (sized for the fields and Host, Host
// then taken out). wrk sends none; curl three; browsers ten or more. It shows what
// the gateway's ids cost besides the guest's decoding of them: where they go in the
// request (writing them into the client's map grows it past eight fields) and how
// the sandbox lists them for the guest. Without a connection of the gateway's own
// server each request allocates its exchange, which a keep-alive connection keeps.
func BenchmarkGatewayClientFields(b *testing.B) {
	g := minimalGateway(b, false)
	for _, n := range []int{0, 7, 12} {
		b.Run(fmt.Sprintf("fields=%d", n), func(b *testing.B) {
			r, cancel := serverRequest()
			defer cancel()
			names := make([]string, n)
			for i := range names {
				names[i] = fmt.Sprintf("X-Client-Field-%d", i)
			}
			b.ReportAllocs()
			reportCPU(b, func() {
				r.Header = clientHeader(names)
				w := discardWriter{h: make(http.Header)}
				g.ServeHTTP(&w, r)
				if w.code != 200 {
					b.Fatal(w.code)
				}
			})
		})
	}
}

// clientHeader makes a header map as net/http does for a request with these fields:
// sized for them and Host, which it then takes out.
func clientHeader(names []string) http.Header {
	h := make(http.Header, len(names)+1)
	h["Host"] = []string{"127.0.0.1"}
	for _, k := range names {
		h[k] = []string{"value"}
	}
	delete(h, "Host")
	return h
}

// BenchmarkInvokeIDs is the sandbox alone (the ABI-only guest, its reply reused as the
// gateway does) given the gateway's two ids the way it gives them, beside the client's
// header map (sandbox.Request.Added), and the way it gave them before, written into
// that map: each request's map is made fresh, as net/http makes it, in both cases.
func BenchmarkInvokeIDs(b *testing.B) {
	f := loadMinimal(b, nil)
	const (
		id = "0123456789abcdef0123456789abcdef"
		tp = "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01"
	)
	added := sandbox.Header{{Name: "X-Request-Id", Value: id}, {Name: "Traceparent", Value: tp}}
	idv, tpv := []string{id}, []string{tp} // as the gateway's exchange held them: no allocation
	for _, n := range []int{0, 7} {
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("X-Client-Field-%d", i)
		}
		for _, inMap := range []bool{false, true} {
			name := fmt.Sprintf("fields=%d/ids=beside", n)
			if inMap {
				name = fmt.Sprintf("fields=%d/ids=in-map", n)
			}
			b.Run(name, func(b *testing.B) {
				var reply sandbox.Response
				req := sandbox.Request{ID: id, Method: "GET", URI: "/hello", Host: "127.0.0.1", RemoteAddr: "127.0.0.1:40000", Route: "/hello", Reply: &reply}
				b.ReportAllocs()
				reportCPU(b, func() {
					req.Header, req.Added = clientHeader(names), added
					if inMap {
						req.Header["X-Request-Id"], req.Header["Traceparent"], req.Added = idv, tpv, nil
					}
					if _, err := f.Invoke(context.Background(), &req); err != nil {
						b.Fatal(err)
					}
				})
			})
		}
	}
}
