package bench

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/gateway"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/telemetry"
)

// BenchmarkGatewaySplit is BenchmarkGatewayMinimal's telemetry-on path with one
// version (split=none) and with the same guest loaded as a second version taking 50 %
// of the route's requests (split=50/50): what a weight split costs per request (issue
// 15's budget: ≤ 2 % of throughput). Run both in one invocation, with -count for the
// spread, and compare ns/op.
func BenchmarkGatewaySplit(b *testing.B) {
	for _, tc := range []struct {
		name   string
		weight int // -1: no split
		sticky string
	}{{"split=none", -1, ""}, {"split=50/50", 5000, ""}, {"split=50/50-header", 5000, "header:X-User"}} {
		b.Run(tc.name, func(b *testing.B) {
			m := telemetry.NewMetrics("bench")
			bw := telemetry.NewBufferedWriter(io.Discard, 200*time.Millisecond)
			b.Cleanup(func() { bw.Close() })
			logger, err := telemetry.NewLogger(bw, "info")
			if err != nil {
				b.Fatal(err)
			}
			cfg := gateway.Config{Telemetry: true, Logger: logger, Metrics: m,
				SLIs: sli.NewAggregator(sli.Config{Node: "bench", Start: time.Now()})}
			f := loadMinimal(b, m)
			route := gateway.Route{Prefix: "/hello", Target: f}
			if tc.weight >= 0 {
				spec := f.Spec()
				spec.Version += "-canary"
				spec.Wasm = fermiontest.Guest(b, "examples/testdata/abi/minimal", true)
				c, err := loadSpecOn(b, spec, m)
				if err != nil {
					b.Fatal(err)
				}
				route.Split = &gateway.Split{Target: c, Weight: tc.weight, Sticky: tc.sticky}
			}
			g := gateway.New(cfg)
			if err := g.SetRoutes([]gateway.Route{route}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			reportCPU(b, func() {
				r, cancel := serverRequest()
				r.Header.Set("User-Agent", "wrk")
				if tc.sticky != "" {
					r.Header.Set("X-User", "user-42")
				}
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

// loadSpecOn loads spec on an engine of its own, closed when b ends.
func loadSpecOn(b *testing.B, spec sandbox.Spec, metrics *telemetry.Metrics) (*sandbox.Function, error) {
	b.Helper()
	e, err := sandbox.NewEngine(sandbox.EngineConfig{CacheDir: b.TempDir(), Metrics: metrics})
	if err != nil {
		return nil, err
	}
	f, err := e.Load(context.Background(), spec)
	if err != nil {
		return nil, err
	}
	b.Cleanup(func() { f.Close(context.Background()); e.Close(context.Background()) })
	return f, nil
}
