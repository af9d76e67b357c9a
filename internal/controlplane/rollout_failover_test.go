package controlplane_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/controlplane/cptest"
	"fermion.dev/fermion/internal/fermiontest"
)

// TestRolloutSurvivesLeaderFailover kills the leader of a 3-server cluster while a
// rollout waits at its first step: the new leader resumes from the recorded step (the
// same canary node, nothing re-decided), the rollout goes on from there, and the
// promotion happens once.
func TestRolloutSurvivesLeaderFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	ctx := context.Background()
	c := cptest.StartCluster(t, controlplane.Config{})
	leader := c.Leader(t, 15*time.Second)
	other := (leader + 1) % 3
	p := c.Planes[other]
	fermiontest.WaitFor(t, 15*time.Second, func() error { return p.Server.Ready() })
	api, err := client.New(p.API, p.Token)
	if err != nil {
		t.Fatal(err)
	}
	join, err := api.CreateToken(ctx, v1.TokenRequest{Role: v1.RoleNode})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		var a *cptest.SimAgent
		fermiontest.WaitFor(t, 10*time.Second, func() error {
			a, err = cptest.JoinSimAgent(ctx, c.NATSURLs(), join.Secret, fmt.Sprintf("edge-%d", i), v1.Register{Capacity: v1.Resources{MemoryBytes: 4 << 30, Instances: 64}})
			return err
		})
		t.Cleanup(a.Close)
	}
	cptest.WaitNodes(t, p.Server, 3, v1.NodeReady, 10*time.Second)
	img1 := p.PushExample(t, "hello", "1.0.0", artifact.Meta{Revision: "one"})
	img2 := p.PushExample(t, "hello", "2.0.0", artifact.Meta{Revision: "two"})
	f := &fleet{p: p, c: api}
	if _, _, err := api.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: img1, Daemon: true}, client.CreateOnly()); err != nil {
		t.Fatal(err)
	}
	f.waitConverged(t, "hello", 30*time.Second)
	d2, _, err := api.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: img2, Daemon: true,
		Rollout: manualCanary("1node", "manual", "100%nodes", "manual")}, client.Unconditional())
	if err != nil {
		t.Fatal(err)
	}
	before := waitPhase(t, api, "hello", d2.Change.Number, "paused", 0)

	c.Kill(leader)
	if nl := c.Leader(t, 30*time.Second); nl == leader {
		t.Fatal("the killed replica still leads")
	}
	// The new leader keeps the recorded step: same node, same phase, and the nodes keep
	// their split.
	after := waitPhase(t, api, "hello", d2.Change.Number, "paused", 0)
	if !slices.Equal(after.CanaryNodes, before.CanaryNodes) || after.Started != before.Started {
		t.Fatalf("after failover the rollout is %+v, before %+v", after, before)
	}
	fermiontest.WaitFor(t, 20*time.Second, func() error {
		st, err := api.DeploymentStatus(ctx, "hello")
		if err != nil {
			return err
		}
		for _, n := range st.Nodes {
			want := stepDigest(t, st, d2, n.Node, before.CanaryNodes)
			if n.Desired == nil || n.Desired.Digest != want {
				return fmt.Errorf("%s is assigned %+v, want %s", n.Node, n.Desired, want)
			}
		}
		return nil
	})
	for step := range 2 {
		waitPhase(t, api, "hello", d2.Change.Number, "paused", step)
		if _, err := api.RolloutAction(ctx, "hello", v1.RolloutPromote, ""); err != nil {
			t.Fatal(err)
		}
	}
	waitPhase(t, api, "hello", d2.Change.Number, "succeeded", 2)
	f.waitConverged(t, "hello", 30*time.Second)
	evs, err := api.Events(ctx, client.EventFilter{Deployment: "hello", Type: v1.EventRollout, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	promotions := 0
	for _, e := range evs.Events {
		if strings.HasPrefix(e.Message, "every step passed") {
			promotions++
		}
	}
	if promotions != 1 {
		t.Fatalf("%d promotions recorded, want 1: %+v", promotions, evs.Events)
	}
}

// stepDigest is the digest node should run in a node step: the new revision on the
// canary nodes, the stable one elsewhere.
func stepDigest(t *testing.T, _ *v1.DeploymentStatus, d2 *v1.Deployment, node string, canary []string) string {
	t.Helper()
	if slices.Contains(canary, node) {
		return d2.Version.Digest
	}
	return d2.Stable.Version.Digest
}
