package bench

// The cost of the slowest-request exemplars (issue 16, bench/RESULTS.md "Slowest
// requests"): on the request path, BenchmarkGatewayMinimal's telemetry=on with the
// default 5 exemplars per key and interval against the same gateway with them off, in
// one run; on the wire, BenchmarkSLIWire's loads with 5 exemplars per summary.
//
//	go test ./bench -run '^$' -bench 'GatewayExemplars' -count 6 -benchtime 200000x
//	go test ./bench -run '^$' -bench 'SLIWire' -count 3 -benchtime 200x

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"fermion.dev/fermion/internal/gateway"
	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/telemetry"
)

func BenchmarkGatewayExemplars(b *testing.B) {
	for _, tc := range []struct {
		name      string
		exemplars int
	}{{"exemplars=5", sli.DefaultExemplars}, {"exemplars=off", -1}} {
		b.Run(tc.name, func(b *testing.B) {
			g := exemplarGateway(b, tc.exemplars)
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

// exemplarGateway is minimalGateway with telemetry on and the SLI aggregator keeping
// exemplars exemplars per key and interval (-1: none).
func exemplarGateway(b *testing.B, exemplars int) *gateway.Gateway {
	b.Helper()
	m := telemetry.NewMetrics("bench")
	bw := telemetry.NewBufferedWriter(io.Discard, 200*time.Millisecond)
	b.Cleanup(func() { bw.Close() })
	logger, err := telemetry.NewLogger(bw, "info")
	if err != nil {
		b.Fatal(err)
	}
	g := gateway.New(gateway.Config{Telemetry: true, Logger: logger, Metrics: m,
		SLIs: sli.NewAggregator(sli.Config{Node: "bench", Start: time.Now(), Exemplars: exemplars})})
	if err := g.SetRoutes([]gateway.Route{{Prefix: "/hello", Target: loadMinimal(b, m)}}); err != nil {
		b.Fatal(err)
	}
	return g
}

// BenchmarkSLIWireExemplars is BenchmarkSLIWire with the default 5 exemplars in every
// summary, their paths not the route (so spelled out: the larger case).
func BenchmarkSLIWireExemplars(b *testing.B) {
	for _, tc := range []struct{ versions, rps int }{{1, 10}, {1, 1000}, {20, 10}, {20, 1000}} {
		b.Run(fmt.Sprintf("versions=%d/rps=%d", tc.versions, tc.rps), func(b *testing.B) {
			sums := helloFlush("edge-fra-01", tc.versions, tc.rps)
			for i := range sums {
				s := &sums[i]
				for j := range sli.DefaultExemplars {
					s.Slowest = append(s.Slowest, sli.Exemplar{Duration: time.Duration(40-j) * time.Millisecond, Status: 200,
						Start: s.Start.UnixMilli() + int64(j*1700), TraceID: [16]byte{0x4b, byte(i), byte(j), 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
						Sampled: j%2 == 0, Instance: uint64(j + 1), Method: "GET", Path: fmt.Sprintf("/items/%d", 1000+j)})
				}
			}
			benchSLIWireOf(b, tc.versions, sums)
		})
	}
}
