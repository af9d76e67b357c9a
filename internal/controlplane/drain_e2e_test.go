package controlplane_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/controlplane/cptest"
	"fermion.dev/fermion/internal/fermiontest"
)

// TestNodeDrainNever404s drains the node serving a deployment while requests flow to
// it: the deployment moves to the other node, and the drained node answers what it still
// receives 200 (before the move) or 503 with Retry-After (after), never 404.
func TestNodeDrainNever404s(t *testing.T) {
	if testing.Short() {
		t.Skip("real agents under load")
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
	if _, _, err := c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: image, Nodes: 1}, client.CreateOnly()); err != nil {
		t.Fatal(err)
	}
	var victim string
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		st, err := c.DeploymentStatus(ctx, "hello")
		if err != nil {
			return err
		}
		if !st.Converged || len(st.Deployment.Placement.Nodes) != 1 {
			return errors.New("hello not converged on one node")
		}
		victim = st.Deployment.Placement.Nodes[0]
		return get(gws[victim] + "/hello")
	})
	other := "edge-1"
	if victim == other {
		other = "edge-2"
	}

	var (
		mu     sync.Mutex
		counts = map[int]int{}
		bad    []string
	)
	halt := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-halt:
					return
				default:
				}
				resp, err := http.Get(gws[victim] + "/hello")
				mu.Lock()
				if err != nil {
					bad = append(bad, err.Error())
				} else {
					counts[resp.StatusCode]++
					if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
						bad = append(bad, "503 without Retry-After")
					}
					resp.Body.Close()
				}
				mu.Unlock()
			}
		})
	}
	defer func() {
		select {
		case <-halt:
		default:
			close(halt)
		}
		wg.Wait()
	}()
	if _, err := c.DrainNode(ctx, victim); err != nil {
		t.Fatal(err)
	}
	// Moved: the other node serves it, the drained one answers 503 a number of times.
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		if err := get(gws[other] + "/hello"); err != nil {
			return fmt.Errorf("%s: %w", other, err)
		}
		mu.Lock()
		defer mu.Unlock()
		if counts[http.StatusServiceUnavailable] < 20 {
			return fmt.Errorf("%s answered %v so far", victim, counts)
		}
		return nil
	})
	close(halt)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if counts[http.StatusNotFound] != 0 || len(bad) > 0 || counts[http.StatusOK] == 0 || len(counts) != 2 {
		t.Fatalf("the drained node %s answered %v, failures %q; want 200s, then 503s with Retry-After, no 404", victim, counts, bad)
	}
}
