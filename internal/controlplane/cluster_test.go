package controlplane_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/controlplane/cptest"
	"fermion.dev/fermion/internal/engine"
	"fermion.dev/fermion/internal/fermiontest"
)

// TestClusterLeaderFailover kills the replica running the controllers of a 3-server
// cluster: no acknowledged deploy is lost, the API answers on the others, and the
// controllers resume on another replica.
func TestClusterLeaderFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	ctx := context.Background()
	c := cptest.StartCluster(t, controlplane.Config{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	leader := c.Leader(t, 15*time.Second)
	for i, p := range c.Planes {
		fermiontest.WaitFor(t, 15*time.Second, func() error {
			if err := p.Server.Ready(); err != nil {
				return fmt.Errorf("replica %d: %w", i, err)
			}
			return nil
		})
	}
	other := (leader + 1) % 3
	p := c.Planes[other]
	api, err := client.New(p.API, p.Token)
	if err != nil {
		t.Fatal(err)
	}
	join, err := api.CreateToken(ctx, v1.TokenRequest{Role: v1.RoleNode})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		name := fmt.Sprintf("edge-%d", i)
		var a *cptest.SimAgent
		fermiontest.WaitFor(t, 10*time.Second, func() error {
			a, err = cptest.JoinSimAgent(ctx, c.NATSURLs(), join.Secret, name, v1.Register{
				Labels: map[string]string{"zone": string(rune('a' + i))}, Capacity: v1.Resources{MemoryBytes: 4 << 30, Instances: 64}})
			return err
		})
		t.Cleanup(a.Close)
	}
	cptest.WaitNodes(t, p.Server, 3, v1.NodeReady, 10*time.Second)
	image := p.PushExample(t, "hello", "1.0.0", artifact.Meta{})
	// Deploy through the leader's API, acknowledged, then kill the leader at once.
	lapi, _ := client.New(c.Planes[leader].API, c.Planes[leader].Token)
	d, _, err := lapi.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: image, Nodes: 2, Spread: "zone"}, client.CreateOnly())
	if err != nil {
		t.Fatal(err)
	}
	c.Kill(leader)
	// The acknowledged deploy is there on the surviving replicas.
	fermiontest.WaitFor(t, 15*time.Second, func() error {
		got, err := api.GetDeployment(ctx, "hello")
		if err != nil {
			return err
		}
		if got.Version.Digest != d.Version.Digest || got.Generation != d.Generation {
			return fmt.Errorf("got %+v", got)
		}
		return nil
	})
	// Controllers resume elsewhere and converge the deployment.
	newLeader := c.Leader(t, 20*time.Second)
	if newLeader == leader {
		t.Fatal("the killed replica still leads")
	}
	fermiontest.WaitFor(t, 20*time.Second, func() error {
		st, err := api.DeploymentStatus(ctx, "hello")
		if err != nil {
			return err
		}
		if !st.Converged {
			return fmt.Errorf("%d/%d ready, placement %q", st.Ready, st.Desired, st.Deployment.Placement.Message)
		}
		return nil
	})
	info, err := api.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Leader == "" || info.Leader == fmt.Sprintf("cp-%d", leader) {
		t.Fatalf("info names leader %q", info.Leader)
	}
	// Two of three replicas keep their quorum and stay ready; the last one alone is not.
	if err := p.Server.Ready(); err != nil {
		t.Fatalf("a surviving replica is not ready: %v", err)
	}
	c.Kill(3 - leader - other)
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		if err := p.Server.Ready(); err == nil {
			return errors.New("the last replica still reports ready without its peers")
		}
		return nil
	})
}

// TestExternalNATS runs the control plane against a NATS server it does not embed (here
// one started in-process; the same code path as a production cluster named by --nats).
func TestExternalNATS(t *testing.T) {
	ctx := context.Background()
	ext, err := engine.Start(ctx, engine.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ext.Close) // after the plane's cleanup, which runs first
	p := cptest.Start(t, controlplane.Config{NATS: ext.ClientURL()})
	if p.Engine() != nil {
		t.Fatal("embedded an engine despite NATS")
	}
	if err := p.Server.Ready(); err != nil {
		t.Fatalf("Ready() = %v connected to the external NATS", err)
	}
	c, _ := client.New(p.API, p.Token)
	join := p.NodeToken(t)
	a, err := cptest.JoinSimAgent(ctx, ext.ClientURL(), join, "edge-1", v1.Register{Capacity: v1.Resources{MemoryBytes: 4 << 30, Instances: 64}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	cptest.WaitNodes(t, p.Server, 1, v1.NodeReady, 10*time.Second)
	image := p.PushExample(t, "hello", "1.0.0", artifact.Meta{})
	if _, _, err := c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: image, Nodes: 1}, client.CreateOnly()); err != nil {
		t.Fatal(err)
	}
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		st, err := c.DeploymentStatus(ctx, "hello")
		if err != nil {
			return err
		}
		if !st.Converged {
			return fmt.Errorf("%d/%d ready", st.Ready, st.Desired)
		}
		return nil
	})
}
