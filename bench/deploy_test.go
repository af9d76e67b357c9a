package bench

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
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
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/oci"
)

func answers(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// waitAnswer polls url every 2 ms until it answers 200 (or 404 when want is false).
func waitAnswer(b *testing.B, url string, want bool) {
	deadline := time.Now().Add(30 * time.Second)
	for answers(url) != want {
		if time.Now().After(deadline) {
			b.Fatalf("%s: no change after 30s", url)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// BenchmarkDeployToFirst200 measures deploy → first 200 on a node that has the
// artifact and the compiled module cached (DESIGN.md budget: ≤ 1 s): PUT the
// deployment to the API, the scheduler assigns it, the agent hears the push, loads
// the module from its caches, prewarms, routes, and the gateway answers. Each
// iteration deletes the deployment and waits until the route is gone, untimed.
//
// Baseline, same run: BenchmarkDeployDataPlaneOnly does the node's part alone
// (DataPlane.Deploy from the compile cache, then the first 200).
func BenchmarkDeployToFirst200(b *testing.B) {
	ctx := context.Background()
	p, err := cptest.StartPlane(ctx, b.TempDir(), controlplane.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	c, _ := client.New(p.API, p.Token)
	join, _ := p.CreateToken(ctx, v1.RoleNode)
	node := agenttest.Start(b, agenttest.Config{
		DataPlane: agent.DataPlaneConfig{CacheDir: b.TempDir()},
		Node: agent.NodeConfig{Name: "edge-1", Servers: []string{p.NATSURL()}, JoinToken: join,
			Capacity: v1.Resources{MemoryBytes: 8 << 30, Instances: 256}, Registry: &oci.Client{}},
	})
	defer node.Stop() // before the control plane closes
	url := node.URL + "/hello"
	image := p.PushExample(b, "hello", "1.0.0", artifact.Meta{})
	deploy := func() {
		if _, _, err := c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: image, Nodes: 1}, client.Unconditional()); err != nil {
			b.Fatal(err)
		}
	}
	remove := func() {
		if _, err := c.DeleteDeployment(ctx, "hello"); err != nil {
			b.Fatal(err)
		}
		waitAnswer(b, url, false)
		for { // until the record is gone, so the next PUT creates it
			if _, err := c.GetDeployment(ctx, "hello"); client.IsCode(err, v1.CodeNotFound) {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// Warm the node cache and the compile cache.
	deploy()
	waitAnswer(b, url, true)
	remove()
	b.ResetTimer()
	for range b.N {
		deploy()
		waitAnswer(b, url, true)
		b.StopTimer()
		remove()
		b.StartTimer()
	}
}

// BenchmarkDeployDataPlaneOnly is the baseline: the node's own part of a deploy
// (load from the compile cache, prewarm, route) and the first 200.
func BenchmarkDeployDataPlaneOnly(b *testing.B) {
	ctx := context.Background()
	m, err := manifest.Load(filepath.Join(fermiontest.Root(b), "examples", "hello"))
	if err != nil {
		b.Fatal(err)
	}
	wasm := fermiontest.Guest(b, "examples/hello", true)
	dp, err := agent.NewDataPlane(agent.DataPlaneConfig{CacheDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	gw, _ := net.Listen("tcp", "127.0.0.1:0")
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { dp.Serve(rctx, gw, nil); close(done) }()
	defer func() { cancel(); <-done }()
	url := "http://" + gw.Addr().String() + "/hello"
	if _, err := dp.Deploy(ctx, m, wasm); err != nil { // warm the compile cache
		b.Fatal(err)
	}
	waitAnswer(b, url, true)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		if err := dp.Remove(ctx, "hello"); err != nil {
			b.Fatal(err)
		}
		waitAnswer(b, url, false)
		b.StartTimer()
		if _, err := dp.Deploy(ctx, m, wasm); err != nil {
			b.Fatal(err)
		}
		waitAnswer(b, url, true)
	}
}
