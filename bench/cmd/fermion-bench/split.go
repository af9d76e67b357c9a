package main

import (
	"context"
	"io"
	"net"
	"time"

	"fermion.dev/fermion/internal/agent"
	"fermion.dev/fermion/internal/gateway"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/telemetry"
)

// splitTarget is fermionTarget (telemetry on) with the same guest deployed a second
// time as a canary version taking half of every route's requests: the two sides
// answer alike, so the target measures what the weight split costs the gateway
// (issue 15's budget: ≤ 2 % of throughput against "fermion (telemetry on)").
func splitTarget(name string, m *manifest.Manifest, wasm []byte, logw io.Writer) (target, error) {
	logger, _ := telemetry.NewLogger(telemetry.NewBufferedWriter(logw, 200*time.Millisecond), "info")
	slis := sli.NewAggregator(sli.Config{Node: "bench", Start: sli.Boundary(time.Now(), sli.DefaultInterval)})
	dp, err := agent.NewDataPlane(agent.DataPlaneConfig{Logger: logger, Telemetry: true, Version: "bench", SLIs: slis})
	if err != nil {
		return target{}, err
	}
	if _, err := dp.Deploy(context.Background(), m, wasm); err != nil {
		return target{}, err
	}
	c := *m
	c.App.Version += "-canary"
	if _, err := dp.DeployCanary(context.Background(), m.App.Name, &c, wasm, gateway.MaxWeight/2, ""); err != nil {
		return target{}, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return target{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { dp.Serve(ctx, ln, nil); close(done) }()
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		tick := time.NewTicker(slis.Interval())
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				slis.Flush(now)
			}
		}
	}()
	return target{name: name, url: dp.Scheme() + "://" + ln.Addr().String() + "/hello", close: func() { cancel(); <-done; <-flushed }}, nil
}
