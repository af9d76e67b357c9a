package cptest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/fermiontest"
)

// Cluster is three replicas routed to each other, with R3 buckets.
type Cluster struct {
	Planes []*Plane
}

// StartCluster starts three replicas (they must start together to elect leaders).
func StartCluster(t testing.TB, base controlplane.Config) *Cluster {
	t.Helper()
	var routes []string
	ports := fermiontest.Ports(t, 3)
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	c := &Cluster{Planes: make([]*Plane, 3)}
	errs := make(chan error, 3)
	for i := range 3 {
		cfg := base
		cfg.Name = fmt.Sprintf("cp-%d", i)
		cfg.ClusterName = "fermion-test"
		cfg.ClusterListen = fmt.Sprintf("127.0.0.1:%d", ports[i])
		cfg.Routes = routes
		cfg.ClusterSecret = "test-route-secret"
		dir := t.TempDir()
		go func() {
			p, err := StartPlane(context.Background(), dir, cfg)
			c.Planes[i] = p
			errs <- err
		}()
	}
	var firstErr error
	for range 3 {
		if err := <-errs; err != nil && firstErr == nil {
			firstErr = err
		}
	}
	t.Cleanup(func() {
		for _, p := range c.Planes {
			if p != nil {
				p.Close()
			}
		}
	})
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	return c
}

// NATSURLs is every replica's client URL, comma-separated (a NATS client fails over
// between them).
func (c *Cluster) NATSURLs() string {
	var urls []string
	for _, p := range c.Planes {
		if p != nil {
			urls = append(urls, p.NATSURL())
		}
	}
	return strings.Join(urls, ",")
}

// Leader waits for a replica to hold the leader lease and returns its index.
func (c *Cluster) Leader(t testing.TB, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for i, p := range c.Planes {
			if p != nil && p.IsLeader() {
				return i
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no leader after %s", timeout)
	return -1
}

// Kill stops replica i abruptly (its engine shuts down with it).
func (c *Cluster) Kill(i int) {
	c.Planes[i].Close()
	c.Planes[i] = nil
}
