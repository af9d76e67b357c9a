package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	fclient "fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/agent"
	"fermion.dev/fermion/internal/agent/agenttest"
	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/cli"
	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/controlplane/cptest"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/oci"
)

// TestInstancesTable: the table has a row per instance with its start, counts and
// discard, says how many older ones were dropped, and says so when there are none.
func TestInstancesTable(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	l := &v1.InstancesList{Dropped: 4, Instances: []v1.InstanceTimeline{
		{Node: "edge-1", Version: "1.0.0", ID: 7, State: "idle", Start: "snapshot", Reason: "prewarm", Created: now.Add(-time.Minute),
			InitMillis: 1.25, Requests: 12, Errors: 0, LastRequest: now.Add(-2 * time.Second)},
		{Node: "edge-2", Version: "1.0.0", ID: 3, State: "discarded", Start: "initialize", Reason: "request", Created: now.Add(-time.Hour),
			InitMillis: 40, Requests: 5, Errors: 1, LastRequest: now.Add(-30 * time.Second), Discarded: now.Add(-30 * time.Second), DiscardReason: "panic"},
	}}
	var b bytes.Buffer
	if err := cli.PrintInstances(&b, "hello", l, now); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"NODE", "DISCARDED", "edge-1", "snapshot (prewarm)", "1.2ms", "2s ago", "edge-2", "30s ago: panic", "4 older discarded"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	cli.PrintInstances(&b, "hello", &v1.InstancesList{}, now)
	if !strings.Contains(b.String(), "no instances of hello") {
		t.Errorf("empty list: %q", b.String())
	}
}

// TestInstances runs `fermion instances` against a real control plane and a real agent
// serving hello: the table, -o json, --node, an unknown deployment, and a stopped
// agent listed as not answering.
func TestInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("deploys a guest on a real agent; TestInstancesTable covers the table")
	}
	t.Setenv("FERMION_HOME", t.TempDir())
	ctx := context.Background()
	p := cptest.Start(t, controlplane.Config{})
	a := agenttest.Start(t, agenttest.Config{
		DataPlane: agent.DataPlaneConfig{CacheDir: t.TempDir(), DrainTimeout: 5 * time.Second},
		Node: agent.NodeConfig{Name: "edge-1", Servers: []string{p.NATSURL()}, JoinToken: p.NodeToken(t),
			Capacity: v1.Resources{MemoryBytes: 4 << 30, Instances: 64},
			Registry: &oci.Client{HTTPClient: &http.Client{Timeout: 30 * time.Second}}},
	})
	cptest.WaitNodes(t, p.Server, 1, v1.NodeReady, 10*time.Second)
	c, _ := fclient.New(p.API, p.Token)
	if _, _, err := c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: p.PushExample(t, "hello", "0.1.0", artifact.Meta{}), Daemon: true},
		fclient.CreateOnly()); err != nil {
		t.Fatal(err)
	}
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		resp, err := http.Get(a.URL + "/hello")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	api := []string{"--server", p.API, "--token", p.Token}
	instances := func(args ...string) (int, string, string) {
		return run(t, append(append([]string{"instances"}, args...), api...)...)
	}

	code, out, errOut := instances("hello")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"NODE", "edge-1", "0.1.0", "(prewarm)", "idle"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	code, out, errOut = instances("hello", "--node", "edge-1", "-o", "json")
	var l v1.InstancesList
	if code != 0 || json.Unmarshal([]byte(out), &l) != nil || len(l.Instances) == 0 || l.Instances[0].Requests == 0 || len(l.Instances[0].Events) == 0 {
		t.Fatalf("--node -o json: exit %d, %s %s", code, out, errOut)
	}
	if code, _, errOut := instances("nope"); code == 0 || !strings.Contains(errOut, "no deployment nope") {
		t.Errorf("unknown deployment: exit %d, %s", code, errOut)
	}
	a.Stop()
	code, out, errOut = instances("hello")
	// Which of the two answers comes depends on whether NATS has dropped the stopped
	// agent's subscription yet: no responders, or a request to it that times out.
	unanswered := strings.Contains(errOut, "edge-1: no agent answers") || strings.Contains(errOut, "edge-1: the agent did not answer within")
	if code != 0 || !unanswered || !strings.Contains(out, "on the nodes that answered") {
		t.Errorf("with the agent stopped: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}
