package gateway

import (
	"context"
	"net/http"
	"syscall"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
)

// fixedTarget answers every request with the same small response, running no guest:
// what is left of a request through the gateway is the gateway's own work. Like a
// sandbox.Function, it reads the clock once, for the response's End.
type fixedTarget struct{ spec sandbox.Spec }

func (t *fixedTarget) Name() string       { return t.spec.Name }
func (t *fixedTarget) Version() string    { return t.spec.Version }
func (t *fixedTarget) Spec() sandbox.Spec { return t.spec }

// Traces says, as a sandbox.Function without a tracer does, that the target records no
// spans of its own.
func (t *fixedTarget) Traces() bool { return false }
func (t *fixedTarget) Invoke(ctx context.Context, req *sandbox.Request) (*sandbox.Response, error) {
	resp := req.Reply
	if resp == nil {
		resp = new(sandbox.Response)
	}
	// The sandbox reads the clock as the guest call ends; so does this target.
	*resp = sandbox.Response{Status: 200, Header: fixedHeader, Body: fixedBody, End: time.Now()}
	return resp, nil
}

var (
	fixedHeader = sandbox.Header{{Name: "Content-Type", Value: "text/plain; charset=utf-8"}}
	fixedBody   = []byte("Hello from Fermion!\n")
)

// BenchmarkServeHTTPFixed is the gateway's own share of a request (telemetry off): its
// ServeHTTP in front of a target that runs no guest, against a handler that sets the
// same header and writes the same body (what bare wazero's handler does around its
// guest call). The difference is routing, ids, trace context and header copying.
func BenchmarkServeHTTPFixed(b *testing.B) {
	g := fixedGateway(b)
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{{"gateway", g}, {"handler", fixedHandler}} {
		b.Run(tc.name, func(b *testing.B) {
			r := ownServerRequest(b, 1)
			w := new(fermiontest.ServerWriter)
			b.ReportAllocs()
			start := cpuTime()
			for b.Loop() {
				clear(r.Header)
				r.Header["User-Agent"] = []string{"wrk"}
				tc.h.ServeHTTP(w, r)
				w.Finish()
			}
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		})
	}
}

// fixedGateway is a gateway (telemetry off) routing /hello to a fixedTarget.
func fixedGateway(b *testing.B) *Gateway {
	g := New(Config{})
	spec := sandbox.Spec{Name: "fixed", Version: "1", Limits: manifest.Limits{MaxRequestBody: 1 << 20}}
	if err := g.SetRoutes([]Route{{Prefix: "/hello", Target: &fixedTarget{spec: spec}}}); err != nil {
		b.Fatal(err)
	}
	return g
}

// ownServerRequest is wrk's GET /hello over HTTP/major as the gateway's own server
// hands it over: its connection tracked, so an HTTP/1 request reuses the connection's
// exchange and arms its write deadline directly.
func ownServerRequest(b testing.TB, major int) *http.Request {
	conn := &trackedConn{l: &connLimiter{epoch: time.Now()}}
	r, err := http.NewRequestWithContext(context.WithValue(b.Context(), connKey{}, conn), "GET", "http://bench/hello", nil)
	if err != nil {
		b.Fatal(err)
	}
	if major != 1 {
		r.ProtoMajor, r.ProtoMinor = major, 0
	}
	r.RemoteAddr = "127.0.0.1:1234"
	r.RequestURI = "/hello" // as net/http's server sets it from the request line
	r.Header = http.Header{"User-Agent": {"wrk"}}
	return r
}

// cpuTime is the process's user and system CPU time: per operation it moves less with
// the neighbours' load on a shared machine than wall time does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fixedHandler is the benchmarks' baseline: a plain handler that sets the fixed
// target's header and writes its body, as bare wazero's handler does around its guest
// call.
var fixedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	for _, kv := range fixedHeader {
		h[kv.Name] = append(h[kv.Name], kv.Value)
	}
	w.WriteHeader(200)
	w.Write(fixedBody)
})
