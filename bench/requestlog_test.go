package bench

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"fermion.dev/fermion/internal/gateway"
	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/telemetry"
)

// BenchmarkGatewayRequestLog is the ABI-only guest through the gateway with telemetry
// off, and on with the request log as the agent runs it (sampled above
// telemetry.DefaultRequestLogRate lines per second) and with a line for every request
// (--request-log-all), each line going through the buffered writer into a real file as
// `fermion run` and the agents write stderr: the formatting and the kernel's copy of the
// bytes are both in cpu-ns/op. log-B/op (the file's size per request) does not move
// with the machine's load.
func BenchmarkGatewayRequestLog(b *testing.B) {
	for _, tc := range []struct {
		name string
		on   bool
		rl   telemetry.RequestLogConfig
	}{
		{name: "telemetry=off"},
		{name: "telemetry=on/log=sampled", on: true},
		{name: "telemetry=on/log=all", on: true, rl: telemetry.RequestLogConfig{All: true}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "log")
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			bw := telemetry.NewBufferedWriter(f, 200*time.Millisecond)
			logger, err := telemetry.NewLogger(bw, "info")
			if err != nil {
				b.Fatal(err)
			}
			cfg := gateway.Config{Telemetry: tc.on, Logger: logger, RequestLog: tc.rl}
			var m *telemetry.Metrics
			if tc.on {
				m = telemetry.NewMetrics("bench")
				cfg.Metrics = m
				cfg.SLIs = sli.NewAggregator(sli.Config{Node: "bench", Start: time.Now()})
			}
			g := gateway.New(cfg)
			if err := g.SetRoutes([]gateway.Route{{Prefix: "/hello", Target: loadMinimal(b, m)}}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			n := 0
			reportCPU(b, func() {
				r, cancel := serverRequest()
				w := discardWriter{h: make(http.Header, 4)}
				g.ServeHTTP(&w, r)
				cancel()
				if w.code != 200 {
					b.Fatal(w.code)
				}
				n++
			})
			if err := bw.Close(); err != nil {
				b.Fatal(err)
			}
			st, err := f.Stat()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(st.Size())/float64(n), "log-B/op")
		})
	}
}
