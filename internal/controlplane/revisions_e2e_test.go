package controlplane_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/agent"
	"fermion.dev/fermion/internal/agent/agenttest"
	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/controlplane/cptest"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/oci"
)

// keepNode starts a real agent keeping keep revisions pinned and returns it with its
// gateway URL.
func keepNode(t *testing.T, natsURL, token, name string, keep int) (*agent.Node, string) {
	t.Helper()
	a := agenttest.Start(t, agenttest.Config{
		DataPlane: agent.DataPlaneConfig{CacheDir: compileCache, DrainTimeout: 5 * time.Second},
		Node: agent.NodeConfig{Name: name, Servers: []string{natsURL}, JoinToken: token,
			Capacity: v1.Resources{MemoryBytes: 4 << 30, Instances: 64}, KeepRevisions: keep,
			Registry: &oci.Client{HTTPClient: &http.Client{Timeout: 10 * time.Second}}},
	})
	return a.Node, a.URL
}

// TestRollbackWithRegistryDown: real nodes keep the previous revision's artifact
// pinned (as many revisions as their --keep-revisions says), so with the registry
// stopped a rollback to it starts from their caches and they serve it again.
func TestRollbackWithRegistryDown(t *testing.T) {
	if testing.Short() {
		t.Skip("real agents and wasm guests: not in -short")
	}
	p := cptest.Start(t, controlplane.Config{})
	ctx := context.Background()
	join := p.NodeToken(t)
	n1, gw1 := keepNode(t, p.NATSURL(), join, "edge-1", 3)
	n2, gw2 := keepNode(t, p.NATSURL(), join, "edge-2", 1) // keeps only what it runs
	cptest.WaitNodes(t, p.Server, 2, v1.NodeReady, 20*time.Second)
	c, err := client.New(p.API, p.Token)
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{p: p, c: c}
	img1 := p.PushExample(t, "hello", "1.0.0", artifact.Meta{Revision: "one"})
	img2 := p.PushExample(t, "hello", "2.0.0", artifact.Meta{Revision: "two"})
	d1, _, err := c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: img1, Daemon: true}, client.CreateOnly())
	if err != nil {
		t.Fatal(err)
	}
	f.waitConverged(t, "hello", 60*time.Second)
	d2, _, err := c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: img2, Daemon: true}, client.Unconditional())
	if err != nil {
		t.Fatal(err)
	}
	f.waitConverged(t, "hello", 60*time.Second)
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if got := n1.PinnedArtifacts(); !slices.Contains(got, d1.Version.Digest) || !slices.Contains(got, d2.Version.Digest) {
			return fmt.Errorf("edge-1 (keep 3) pins %v, want v1 %s and v2 %s", got, d1.Version.Digest, d2.Version.Digest)
		}
		return nil
	})
	if got := n2.PinnedArtifacts(); !slices.Equal(got, []string{d2.Version.Digest}) {
		t.Errorf("edge-2 (keep 1) pins %v, want only what it runs, %s", got, d2.Version.Digest)
	}

	p.StopRegistry()
	if _, err := http.Get("http://" + p.Registry + "/v2/"); err == nil {
		t.Fatal("the registry still answers")
	}
	d3, err := c.Rollback(ctx, "hello", v1.RollbackRequest{Message: "registry down"})
	if err != nil {
		t.Fatal(err)
	}
	if d3.Version.Digest != d1.Version.Digest {
		t.Fatalf("rolled back to %s, want v1 %s", d3.Version.Digest, d1.Version.Digest)
	}
	st := f.waitConverged(t, "hello", 60*time.Second)
	for _, n := range st.Nodes {
		if n.Actual == nil || n.Actual.Digest != d1.Version.Digest {
			t.Errorf("%s runs %+v, want v1", n.Node, n.Actual)
		}
	}
	for _, gw := range []string{gw1, gw2} {
		if err := get(gw + "/hello"); err != nil {
			t.Errorf("GET %s/hello after the rollback: %v", gw, err)
		}
	}
}
