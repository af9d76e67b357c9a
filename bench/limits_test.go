package bench

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"

	"fermion.dev/fermion/internal/gateway"
	"fermion.dev/fermion/internal/telemetry"
)

// BenchmarkGatewayClientLimits is one GET /hello over a real loopback keep-alive
// connection, with the gateway's client limits at their defaults (tracked connections,
// a read deadline per body read, write deadlines around the response) and with every
// limit off (keep-alive kept), in the same run: what the limits cost a request.
func BenchmarkGatewayClientLimits(b *testing.B) {
	off := gateway.Limits{MaxConnections: -1, HeaderTimeout: -1, BodyTimeout: -1, MinBodyRate: -1, WriteTimeout: -1}
	m := telemetry.NewMetrics("bench")
	f := loadHello(b, m)
	for _, tc := range []struct {
		name string
		lim  gateway.Limits
	}{{"limits=off", off}, {"limits=default", gateway.Limits{}}} {
		b.Run(tc.name, func(b *testing.B) {
			g := gateway.New(gateway.Config{Metrics: m, Telemetry: true, Limits: tc.lim})
			if err := g.SetRoutes([]gateway.Route{{Prefix: "/hello", Target: f}}); err != nil {
				b.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { g.Serve(ctx, ln); close(done) }()
			defer func() { cancel(); <-done }()
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			url := "http://" + ln.Addr().String() + "/hello"
			b.ReportAllocs()
			for b.Loop() {
				resp, err := c.Get(url)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatal(resp.StatusCode)
				}
			}
			c.CloseIdleConnections()
		})
	}
}
