package bench

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/bench/internal/bare"
	"fermion.dev/fermion/internal/fermiontest"
)

// BenchmarkPlatformMinimal is issue 17's platform budget in process: the ABI-only
// guest (which allocates nothing) served by bare wazero's handler and by the gateway
// and sandbox (telemetry off), each request the same, with no socket and no client in
// the figures. The writer does what net/http's server does with a handler's header
// map per response (headerWriter), since the headers Fermion adds cost most there.
// Without a connection of the gateway's own server each request allocates its
// exchange, which a keep-alive connection keeps: the allocation count is one higher
// than over a socket. Profile "fermion" with -cpuprofile against "bare".
func BenchmarkPlatformMinimal(b *testing.B) {
	wasm := fermiontest.Guest(b, "examples/testdata/abi/minimal", true)
	ctx := context.Background()
	srv, err := bare.New(ctx, wasm, 1)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close(ctx) })
	// Grown as the sandbox's instance grows during its first requests (bare.Server.Warm).
	if err := srv.Warm(ctx, 20000, &abi.Request{Method: "GET", URI: "/hello", Host: "bench",
		Headers: []abi.Header{{Name: "User-Agent", Value: "wrk"}}}); err != nil {
		b.Fatal(err)
	}
	g := minimalGateway(b, false)
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{{"bare", srv}, {"fermion", g}} {
		b.Run(tc.name, func(b *testing.B) {
			r, cancel := serverRequest()
			defer cancel()
			r.Host, r.RemoteAddr = "bench", "127.0.0.1:1234"
			w := &headerWriter{out: bufio.NewWriterSize(io.Discard, 4096)}
			for range 20000 { // the sandbox's instance grows as bare's did in Warm
				serveOne(b, tc.h, w, r)
			}
			b.ReportAllocs()
			reportCPU(b, func() { serveOne(b, tc.h, w, r) })
		})
	}
}

func serveOne(b *testing.B, h http.Handler, w *headerWriter, r *http.Request) {
	// net/http makes both maps per request: the request's sized for its fields.
	r.Header = make(http.Header, 1)
	r.Header["User-Agent"] = []string{"wrk"}
	w.reset()
	h.ServeHTTP(w, r)
	w.finish()
	if w.code != 200 {
		b.Fatal(w.code)
	}
}

// headerWriter is an http.ResponseWriter doing per response what net/http's server
// does with the handler's header map (server.go, Go 1.26): a copy of it at WriteHeader
// (Header.Clone), and, once the handler returns, a Content-Length of the buffered body
// unless the handler set one, the map's fields written sorted (Header.WriteSubset) and
// the body. Only the socket is missing.
type headerWriter struct {
	h, sent http.Header
	code    int
	n       int
	out     *bufio.Writer
	clen    [20]byte
}

func (w *headerWriter) reset() { w.h, w.sent, w.code, w.n = make(http.Header), nil, 0, 0 }

func (w *headerWriter) Header() http.Header { return w.h }
func (w *headerWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code, w.sent = code, w.h.Clone()
	}
}
func (w *headerWriter) Write(p []byte) (int, error) {
	w.WriteHeader(200)
	w.n += len(p)
	return w.out.Write(p)
}

// SetWriteDeadline and FlushError are there as on net/http's writer, so the gateway arms
// its write deadline and flushes as it does on a server (with no connection of its own:
// through http.ResponseController).
func (w *headerWriter) SetWriteDeadline(time.Time) error { return nil }
func (w *headerWriter) FlushError() error                { w.WriteHeader(200); return nil }

func (w *headerWriter) finish() {
	w.WriteHeader(200)
	w.out.WriteString("HTTP/1.1 200 OK\r\n")
	w.sent.WriteSubset(w.out, nil)
	if _, ok := w.sent["Content-Length"]; !ok {
		w.out.WriteString("Content-Length: ")
		w.out.Write(strconv.AppendInt(w.clen[:0], int64(w.n), 10))
		w.out.WriteString("\r\n")
	}
	w.out.WriteString("\r\n")
	w.out.Flush()
}
