package bench

import (
	"io"
	"net/http"
	"testing"
	"time"

	"fermion.dev/fermion/internal/gateway"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/telemetry"
)

// BenchmarkGatewayMinimal is the ABI-only guest through the gateway and sandbox without
// sockets: the platform's own per-request work, as large a share of a request as it
// gets. telemetry=on is what an agent runs (metrics, the JSON request log through a
// buffered writer, SLI aggregation); telemetry=off is the platform alone. Profile it
// with -cpuprofile to see where the platform's and telemetry's time goes.
func BenchmarkGatewayMinimal(b *testing.B) {
	for _, tc := range []struct {
		name string
		on   bool
	}{{"telemetry=on", true}, {"telemetry=off", false}} {
		b.Run(tc.name, func(b *testing.B) {
			g := minimalGateway(b, tc.on)
			b.ReportAllocs()
			reportCPU(b, func() {
				r, cancel := serverRequest()
				r.Header.Set("User-Agent", "wrk")
				w := discardWriter{h: make(http.Header, 4)}
				g.ServeHTTP(&w, r)
				cancel()
				if w.code != 200 {
					b.Fatal(w.code)
				}
			})
		})
	}
}

// minimalGateway is a Gateway routing /hello to the ABI-only guest, with telemetry
// (metrics, a log line to a discarded buffer, SLI aggregation) on or off.
func minimalGateway(b *testing.B, on bool) *gateway.Gateway {
	b.Helper()
	cfg := gateway.Config{Telemetry: on}
	var m *telemetry.Metrics
	if on {
		m = telemetry.NewMetrics("bench")
		bw := telemetry.NewBufferedWriter(io.Discard, 200*time.Millisecond)
		b.Cleanup(func() { bw.Close() })
		logger, err := telemetry.NewLogger(bw, "info")
		if err != nil {
			b.Fatal(err)
		}
		cfg.Logger, cfg.Metrics = logger, m
		cfg.SLIs = sli.NewAggregator(sli.Config{Node: "bench", Start: time.Now()})
	}
	g := gateway.New(cfg)
	if err := g.SetRoutes([]gateway.Route{{Prefix: "/hello", Target: loadMinimal(b, m)}}); err != nil {
		b.Fatal(err)
	}
	return g
}

func loadMinimal(b *testing.B, metrics *telemetry.Metrics) *sandbox.Function {
	b.Helper()
	return loadGuest(b, metrics, "examples/testdata/abi/minimal")
}

// discardWriter is an http.ResponseWriter that keeps only the status: the server's
// own writing is the same with or without Fermion, and httptest's recorder would add
// allocations of its own.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = 200
	}
	return len(p), nil
}
func (w *discardWriter) WriteHeader(code int) { w.code = code }
