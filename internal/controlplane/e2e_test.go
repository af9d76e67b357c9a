package controlplane_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
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
	"fermion.dev/fermion/internal/policy"
)

// compileCache is shared by every data plane in this test binary and the other
// packages' tests (fermiontest.CompileCacheDir): each guest is compiled once.
var compileCache = func() string {
	dir, err := fermiontest.CompileCacheDir()
	if err != nil {
		panic(err)
	}
	return dir
}()

// proxy forwards TCP connections to target until cut, which closes them and refuses
// new ones until heal: a network partition between an agent and the control plane.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.setCut(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.cut {
				p.mu.Unlock()
				c.Close()
				continue
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

func (p *proxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *proxy) setCut(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = on
	if on {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// realNode starts an agent with a data plane and returns its gateway URL.
func realNode(t *testing.T, natsURL, token, name string, labels map[string]string) string {
	t.Helper()
	return realNodeAllow(t, natsURL, token, name, labels, policy.NodeAllow{})
}

func realNodeAllow(t *testing.T, natsURL, token, name string, labels map[string]string, allow policy.NodeAllow) string {
	t.Helper()
	return agenttest.Start(t, agenttest.Config{
		DataPlane: agent.DataPlaneConfig{CacheDir: compileCache, DrainTimeout: 5 * time.Second},
		Node: agent.NodeConfig{Name: name, Servers: []string{natsURL}, JoinToken: token,
			Labels: labels, Capacity: v1.Resources{MemoryBytes: 4 << 30, Instances: 64},
			Registry: &oci.Client{HTTPClient: &http.Client{Timeout: 10 * time.Second}}, Allow: allow},
	}).URL
}

func get(url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// TestAgentCutOffKeepsServing partitions a real agent from the control plane for three
// lease-lost periods (test timing: the lease is lost after 2 s) while requests flow:
// every request succeeds, the node is marked lost, and when the link returns the node
// is ready again and runs the daemon deployment it never stopped serving.
func TestAgentCutOffKeepsServing(t *testing.T) {
	if testing.Short() {
		t.Skip("a real agent cut off for three lease periods: not in -short")
	}
	ctx := context.Background()
	p := cptest.Start(t, controlplane.Config{})
	c, _ := client.New(p.API, p.Token)
	join := p.NodeToken(t)
	px := startProxy(t, strings.TrimPrefix(p.NATSURL(), "nats://"))
	gw := realNode(t, px.url(), join, "edge-1", map[string]string{"zone": "a"})
	cptest.WaitNodes(t, p.Server, 1, v1.NodeReady, 10*time.Second)
	image := p.PushExample(t, "hello", "1.0.0", artifact.Meta{})
	if _, _, err := c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: image, Daemon: true}, client.CreateOnly()); err != nil {
		t.Fatal(err)
	}
	fermiontest.WaitFor(t, 30*time.Second, func() error { return get(gw + "/hello") })

	var ok, failed atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := get(gw + "/hello"); err != nil {
				failed.Add(1)
				lastErr.Store(err.Error())
			} else {
				ok.Add(1)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	px.setCut(true)
	cptest.WaitNodes(t, p.Server, 1, v1.NodeLost, 10*time.Second)
	time.Sleep(4 * time.Second) // cut off for three lease-lost periods in all
	px.setCut(false)
	cptest.WaitNodes(t, p.Server, 1, v1.NodeReady, 15*time.Second)
	fermiontest.WaitFor(t, 15*time.Second, func() error {
		st, err := c.DeploymentStatus(ctx, "hello")
		if err != nil {
			return err
		}
		if !st.Converged {
			return errors.New("not converged")
		}
		return nil
	})
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() < 100 {
		t.Fatalf("during the partition: %d ok, %d failed (last: %v)", ok.Load(), failed.Load(), lastErr.Load())
	}
	t.Logf("%d requests served during the partition, none failed", ok.Load())
}

// TestDeployToFirst200 deploys to real agents and waits for the function to answer on
// each, then moves it when its node is killed.
func TestRealAgentsDeployAndReschedule(t *testing.T) {
	if testing.Short() {
		t.Skip("real agents, wasm guests and a node lost: not in -short")
	}
	ctx := context.Background()
	p := cptest.Start(t, controlplane.Config{})
	c, _ := client.New(p.API, p.Token)
	join := p.NodeToken(t)
	gws := map[string]string{}
	for i, zone := range []string{"a", "b"} {
		name := fmt.Sprintf("edge-%d", i+1)
		gws[name] = realNode(t, p.NATSURL(), join, name, map[string]string{"zone": zone})
	}
	cptest.WaitNodes(t, p.Server, 2, v1.NodeReady, 10*time.Second)
	image := p.PushExample(t, "hello", "1.0.0", artifact.Meta{})
	if _, _, err := c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: image, Nodes: 2, Spread: "zone"}, client.CreateOnly()); err != nil {
		t.Fatal(err)
	}
	for _, gw := range gws {
		fermiontest.WaitFor(t, 30*time.Second, func() error { return get(gw + "/hello") })
	}
	// A new version reaches both nodes; the old one stops answering nowhere in between.
	image2 := p.PushExample(t, "echo", "1.0.0", artifact.Meta{})
	if _, _, err := c.PutDeployment(ctx, "echo", v1.DeploymentSpec{Image: image2, Nodes: 1}, client.CreateOnly()); err != nil {
		t.Fatal(err)
	}
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		st, err := c.DeploymentStatus(ctx, "echo")
		if err != nil {
			return err
		}
		if !st.Converged {
			return errors.New("echo not converged")
		}
		return nil
	})
	if _, err := c.DeleteDeployment(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	for _, gw := range gws {
		fermiontest.WaitFor(t, 15*time.Second, func() error {
			if err := get(gw + "/hello"); err == nil {
				return errors.New("still serving hello")
			}
			return nil
		})
	}
}

const nodeMemoryPolicy = `apiVersion: fermion.dev/v1
kind: Policy
metadata:
  name: node-memory
spec:
  target: runtime
  mode: deny
  validations:
    - expression: node.allow.memory == 0 || artifact.limits.memory <= node.allow.memory
      messageExpression: '"memory limit " + string(artifact.limits.memory) + " exceeds the node maximum " + string(node.allow.memory)'
`

// TestRuntimePolicyOnTheNode applies a runtime policy; the node whose own allowance is
// smaller than the artifact's memory limit refuses to start it (defence in depth: the
// scheduler placed it there) and reports why; the other node runs it.
func TestRuntimePolicyOnTheNode(t *testing.T) {
	ctx := context.Background()
	p := cptest.Start(t, controlplane.Config{})
	c, _ := client.New(p.API, p.Token)
	if _, _, err := c.ApplyPolicy(ctx, "node-memory", v1.PolicyApply{Source: nodeMemoryPolicy}); err != nil {
		t.Fatal(err)
	}
	join := p.NodeToken(t)
	small := realNodeAllow(t, p.NATSURL(), join, "small", nil, policy.NodeAllow{Memory: 1 << 20})
	big := realNodeAllow(t, p.NATSURL(), join, "big", nil, policy.NodeAllow{Memory: 1 << 30})
	cptest.WaitNodes(t, p.Server, 2, v1.NodeReady, 10*time.Second)
	image := p.PushExample(t, "hello", "1.0.0", artifact.Meta{})
	if _, _, err := c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: image, Daemon: true}, client.CreateOnly()); err != nil {
		t.Fatal(err)
	}
	fermiontest.WaitFor(t, 30*time.Second, func() error { return get(big + "/hello") })
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		st, err := c.DeploymentStatus(ctx, "hello")
		if err != nil {
			return err
		}
		for _, n := range st.Nodes {
			if n.Node == "small" && n.Actual != nil && n.Actual.State == v1.InstanceFailed &&
				strings.Contains(n.Actual.LastError, "policy node-memory: memory limit") {
				return nil
			}
		}
		return fmt.Errorf("small has not refused it: %+v", st.Nodes)
	})
	if err := get(small + "/hello"); err == nil {
		t.Fatal("the small node serves what its policy refuses")
	}
}
