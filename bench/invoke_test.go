package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/gateway"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

func loadHello(b *testing.B, metrics *telemetry.Metrics) *sandbox.Function {
	b.Helper()
	root := fermiontest.Root(b)
	m, err := manifest.Load(filepath.Join(root, "examples/hello"))
	if err != nil {
		b.Fatal(err)
	}
	e, err := sandbox.NewEngine(sandbox.EngineConfig{CacheDir: filepath.Join(b.TempDir(), "cache"), Metrics: metrics})
	if err != nil {
		b.Fatal(err)
	}
	f, err := e.Load(context.Background(), sandbox.SpecFromManifest(m, fermiontest.Guest(b, "examples/hello", true)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close(context.Background()); e.Close(context.Background()) })
	return f
}

// BenchmarkInvoke is one warm reactor call without HTTP: the sandbox's share of a request.
func BenchmarkInvoke(b *testing.B) {
	f := loadHello(b, nil)
	req := &sandbox.Request{ID: "x", Method: "GET", URI: "/hello", Host: "localhost",
		Header: http.Header{"User-Agent": {"bench"}, "Accept": {"*/*"}}}
	b.ReportAllocs()
	reportCPU(b, func() {
		if _, err := f.Invoke(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkGatewayServeHTTP is the gateway plus sandbox without sockets, telemetry on,
// against BenchmarkNativeServeHTTP as the baseline.
func BenchmarkGatewayServeHTTP(b *testing.B) {
	for _, tc := range []struct {
		name string
		on   bool
	}{{"telemetry=on", true}, {"telemetry=off", false}} {
		b.Run(tc.name, func(b *testing.B) {
			var m *telemetry.Metrics
			if tc.on {
				m = telemetry.NewMetrics("bench")
			}
			f := loadHello(b, m)
			g := gateway.New(gateway.Config{Metrics: m, Telemetry: tc.on})
			if err := g.SetRoutes([]gateway.Route{{Prefix: "/hello", Target: f}}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest("GET", "/hello", nil)
				w := httptest.NewRecorder()
				g.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatal(w.Code)
				}
			}
		})
	}
}

func BenchmarkNativeServeHTTP(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("Hello from Fermion!\n"))
	})
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("GET", "/hello", nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
	}
}
