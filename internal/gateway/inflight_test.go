package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/gateway"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

// gateTarget holds every request until its gate is opened, counting those it holds.
type gateTarget struct {
	gate    chan struct{}
	waiting atomic.Int64
}

func (g *gateTarget) Name() string       { return "gate" }
func (g *gateTarget) Version() string    { return "1" }
func (g *gateTarget) Spec() sandbox.Spec { return sandbox.Spec{Name: "gate", Version: "1"} }
func (g *gateTarget) Invoke(ctx context.Context, req *sandbox.Request) (*sandbox.Response, error) {
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	select {
	case <-g.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &sandbox.Response{Status: 200, Body: []byte("open"), End: time.Now()}, nil
}

// TestInFlightGauge: fermion_gateway_in_flight_requests reads exactly the routed
// requests the gateway is serving, whichever connections (and so stripes) they came
// on, and 0 once they are done; requests no route serves are not counted.
func TestInFlightGauge(t *testing.T) {
	m := telemetry.NewMetrics("test")
	g := gateway.New(gateway.Config{Telemetry: true, Metrics: m})
	target := &gateTarget{gate: make(chan struct{})}
	setRoutes(t, g, gateway.Route{Prefix: "/gate", Target: target})
	ln := gateway.ServeListening(t, g)
	base := "http://" + ln.Addr().String()
	const held = 13 // more than the stripes there are on a small machine: some share one
	// Each request on a connection of its own (own stripe, round robin).
	var wg sync.WaitGroup
	errs := make(chan error, held)
	for range held {
		wg.Go(func() {
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Minute}
			resp, err := c.Get(base + "/gate")
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- fmt.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		if n := target.waiting.Load(); n != held {
			return fmt.Errorf("%d of %d requests in the target", n, held)
		}
		return nil
	})
	// Requests that find no route come and go meanwhile.
	for range 5 {
		if r := get(t, base+"/none", nil); r.status != http.StatusNotFound {
			t.Fatalf("GET /none = %d", r.status)
		}
	}
	if got := metricValue(t, m, "fermion_gateway_in_flight_requests", nil); got != held {
		t.Fatalf("in flight = %v with %d requests held in the target, want %d", got, held, held)
	}
	close(target.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a held request: %v", err)
	}
	// The gauge falls as each handler returns, which may be just after its client has
	// the response.
	waitMetric(t, m, "fermion_gateway_in_flight_requests", nil, 0)
}
