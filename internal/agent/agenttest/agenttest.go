// Package agenttest starts real agents for tests: an agent.Node and its agent.DataPlane
// serving on loopback listeners, stopped when the test ends. The control plane's, the
// CLI's, the benchmarks' and the agent's own tests share it, so a change to how an agent
// is assembled is made once. It imports the agent and nothing above it, so the agent's
// external tests can use it beside their fake control plane.
package agenttest

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"fermion.dev/fermion/internal/agent"
)

// Config says which agent to start.
type Config struct {
	// Node configures the node. Start fills in DataPlane; GatewayURL (when empty) with
	// the gateway's address, as `fermion agent` advertises it; DataDir (when empty) with
	// a directory of the test's; Metrics (when nil and the data plane has telemetry on)
	// with the data plane's registry, as `fermion agent` shares it.
	Node agent.NodeConfig
	// DataPlane configures the data plane (its engine, gateway and telemetry).
	DataPlane agent.DataPlaneConfig
	// Admin serves the admin endpoints (/metrics, /healthz, /readyz) on a second
	// loopback listener, reported in Agent.Admin.
	Admin bool
	// StopTimeout bounds how long Stop waits for the node and the data plane to return
	// once their context is cancelled (0: 30 s, generous for a loaded machine).
	StopTimeout time.Duration
}

// Agent is a started agent.
type Agent struct {
	*agent.Node
	DataPlane *agent.DataPlane
	URL       string // the gateway's base URL, http://127.0.0.1:port
	Admin     string // the admin endpoints' base URL ("" without Config.Admin)
	stop      func()
}

// Start starts the agent cfg describes: it runs the node and serves the data plane
// until the test ends or Stop is called. An error either returns after the cancellation
// fails the test.
func Start(t testing.TB, cfg Config) *Agent {
	t.Helper()
	dp, err := agent.NewDataPlane(cfg.DataPlane)
	if err != nil {
		t.Fatalf("start agent %s: data plane: %v", cfg.Node.Name, err)
	}
	var gw, admin net.Listener
	// fail releases what Start has opened so far, then fails the test.
	fail := func(format string, args ...any) {
		t.Helper()
		for _, l := range []net.Listener{gw, admin} {
			if l != nil {
				l.Close()
			}
		}
		dp.Close(context.Background())
		t.Fatalf("start agent %s: "+format, append([]any{cfg.Node.Name}, args...)...)
	}
	if gw, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		fail("listen: %v", err)
	}
	if cfg.Admin {
		if admin, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			fail("listen: %v", err)
		}
	}
	nc := cfg.Node
	nc.DataPlane = dp
	if nc.GatewayURL == "" {
		nc.GatewayURL = "http://" + gw.Addr().String()
	}
	if nc.DataDir == "" {
		nc.DataDir = t.TempDir()
	}
	if nc.Metrics == nil && dp.Metrics != nil {
		nc.Metrics = dp.Metrics.Registry
	}
	n, err := agent.NewNode(nc)
	if err != nil {
		fail("%v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served, ran := make(chan error, 1), make(chan error, 1)
	go func() { served <- dp.Serve(ctx, gw, admin) }()
	go func() { ran <- n.Run(ctx) }()
	wait := cfg.StopTimeout
	if wait <= 0 {
		wait = 30 * time.Second
	}
	var once sync.Once
	a := &Agent{Node: n, DataPlane: dp, URL: "http://" + gw.Addr().String()}
	if admin != nil {
		a.Admin = "http://" + admin.Addr().String()
	}
	a.stop = func() {
		once.Do(func() {
			cancel()
			timeout := time.NewTimer(wait)
			defer timeout.Stop()
			for _, w := range []struct {
				what string
				ch   chan error
			}{{"node", ran}, {"data plane", served}} {
				select {
				case err := <-w.ch:
					if err != nil {
						t.Errorf("agent %s: %s: %v", nc.Name, w.what, err)
					}
				case <-timeout.C:
					t.Errorf("agent %s: %s did not stop %s after its context was cancelled", nc.Name, w.what, wait)
					return
				}
			}
		})
	}
	t.Cleanup(a.stop)
	return a
}

// Stop stops the node and the data plane and waits for both (at most
// Config.StopTimeout). Calling it again does nothing; the test's cleanup calls it.
func (a *Agent) Stop() { a.stop() }
