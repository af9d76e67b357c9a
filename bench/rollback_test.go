package bench

// Automatic rollback latency (issue 15's budget): under a steady loopback load of 500
// req/s over two real agents, a canary failing 5 % of its requests at a first step of
// 5 % weight, with everything at the budget's timing (SLI summaries every 10 s, a 10 s
// analysis window), must be rolled back on every node within 30 s of its first bad
// request; it must never serve more than its weight, and nothing after the rollback.
//
// Each round deploys a fresh stable version, then the bad canary, and measures from
// the first 500 the load generator sees to the moment every node reports no canary.
// The guest (examples/testdata/faults/flaky) tags each answer with its version
// (X-Flaky-Id), so the load generator counts who served what. It takes about 40 s a
// round, so it runs only when asked:
//
//	FERMION_BENCH_ROLLBACK=1 go test ./bench -run TestRollbackLatency -count=1 -v
//
// (FERMION_BENCH_ROLLBACK_ROUNDS sets the rounds, 1–8, default 3.) Results are in
// bench/RESULTS.md ("Automatic rollback").

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/agent"
	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/controlplane/cptest"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/oci"
)

// versionCounts counts answers by the version that served them and status.
type versionCounts struct {
	mu        sync.Mutex
	byVersion map[string]int
	firstBad  time.Time // the first 500
	afterBad  int       // answers of the bad version after stop was set
	stopAt    time.Time
	bad       string
}

func (c *versionCounts) add(id string, code int, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byVersion[id]++
	if code == http.StatusInternalServerError && c.firstBad.IsZero() {
		c.firstBad = at
	}
	if id == c.bad && !c.stopAt.IsZero() && at.After(c.stopAt) {
		c.afterBad++
	}
}

func TestRollbackLatency(t *testing.T) {
	if os.Getenv("FERMION_BENCH_ROLLBACK") == "" {
		t.Skip("set FERMION_BENCH_ROLLBACK=1: about 40 s a round")
	}
	rounds := 3
	if v := os.Getenv("FERMION_BENCH_ROLLBACK_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 8 {
			t.Fatalf("FERMION_BENCH_ROLLBACK_ROUNDS=%q: want 1–8", v)
		}
		rounds = n
	}
	p := cptest.Start(t, controlplane.Config{})
	ctx := context.Background()
	join := p.NodeToken(t)
	var gws []string
	for i := range 2 {
		gws = append(gws, rollbackNode(t, p.NATSURL(), join, fmt.Sprintf("edge-%d", i+1)))
	}
	cptest.WaitNodes(t, p.Server, 2, v1.NodeReady, 20*time.Second)
	c, err := client.New(p.API, p.Token)
	if err != nil {
		t.Fatal(err)
	}
	strat := &v1.RolloutStrategy{Kind: v1.RolloutCanary, Steps: []string{"5%", "50%", "100%"}, Interval: "10s"}
	var took []time.Duration
	var shares []float64
	for r := range rounds {
		good := fmt.Sprintf("%d.0.0", 2*r+1)
		bad := fmt.Sprintf("%d.0.0", 2*r+2)
		imgGood := p.PushVariant(t, cptest.FlakyGuest, "flaky", good, map[string]string{"FLAKY_ID": good})
		imgBad := p.PushVariant(t, cptest.FlakyGuest, "flaky", bad, map[string]string{"FLAKY_ID": bad, "FAIL_EVERY": "20"})
		// The stable version, everywhere at once.
		if _, _, err := c.PutDeployment(ctx, "flaky", v1.DeploymentSpec{Image: imgGood, Daemon: true}, client.Unconditional()); err != nil {
			t.Fatal(err)
		}
		waitRunning(t, c, good)
		counts := &versionCounts{byVersion: map[string]int{}, bad: bad}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, gw := range gws {
			wg.Go(func() { steadyRate(gw+"/flaky", 250, 60000, counts, stop) })
		}
		time.Sleep(3 * time.Second) // a steady load before the canary: stable has a baseline (not a wait for a condition)
		d, _, err := c.PutDeployment(ctx, "flaky", v1.DeploymentSpec{Image: imgBad, Daemon: true, Rollout: strat}, client.Unconditional())
		if err != nil {
			t.Fatal(err)
		}
		var done time.Time
		fermiontest.WaitFor(t, 120*time.Second, func() error {
			ro, err := c.Rollout(ctx, "flaky")
			if err != nil || ro.To.Number != d.Change.Number || !ro.Terminal {
				return fmt.Errorf("rollout not ended: %v", err)
			}
			st, err := c.DeploymentStatus(ctx, "flaky")
			if err != nil {
				return err
			}
			for _, n := range st.Nodes {
				if n.Actual == nil || n.Actual.Canary != nil {
					return fmt.Errorf("%s still runs the canary", n.Node)
				}
			}
			done = time.Now()
			return nil
		})
		counts.mu.Lock()
		counts.stopAt = done
		counts.mu.Unlock()
		time.Sleep(2 * time.Second) // requests after the rollback, counted against the bad version (not a wait for a condition)
		close(stop)
		wg.Wait()
		counts.mu.Lock()
		total := 0
		for _, n := range counts.byVersion {
			total += n
		}
		share := float64(counts.byVersion[bad]) / float64(total)
		lat := done.Sub(counts.firstBad)
		after := counts.afterBad
		counts.mu.Unlock()
		ro, _ := c.Rollout(ctx, "flaky")
		t.Logf("round %d: rolled back %.1f s after the first bad request (%s: %s); bad version served %.2f%% of %d requests; %d after the rollback",
			r+1, lat.Seconds(), ro.Phase, ro.Reason, 100*share, total, after)
		if after != 0 || ro.Phase != "rolled_back" {
			t.Errorf("round %d: %d requests served by the bad version after its rollback, phase %s", r+1, after, ro.Phase)
		}
		took = append(took, lat)
		shares = append(shares, share)
	}
	slices.Sort(took)
	slices.Sort(shares)
	t.Logf("rollback after the first bad request: median %.1f s, min %.1f s, max %.1f s over %d rounds (budget 30 s: ratio %.2f); bad version's share %.2f%%–%.2f%% (weight 5%%)",
		took[len(took)/2].Seconds(), took[0].Seconds(), took[len(took)-1].Seconds(), len(took), took[len(took)/2].Seconds()/30,
		100*shares[0], 100*shares[len(shares)-1])
}

// waitRunning waits until every node runs version, ready.
func waitRunning(t *testing.T, c *client.Client, version string) {
	t.Helper()
	fermiontest.WaitFor(t, 60*time.Second, func() error {
		st, err := c.DeploymentStatus(context.Background(), "flaky")
		if err != nil {
			return err
		}
		if !st.Converged || st.Deployment.Version.Version != version {
			return fmt.Errorf("not converged on %s", version)
		}
		return nil
	})
}

// steadyRate sends up to perSecond GETs a second to url, one at a time, at most limit
// in all, until stop.
func steadyRate(url string, perSecond, limit int, counts *versionCounts, stop <-chan struct{}) {
	hc := &http.Client{Timeout: 5 * time.Second}
	tick := time.NewTicker(time.Second / time.Duration(perSecond))
	defer tick.Stop()
	for range limit {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		resp, err := hc.Get(url)
		if err != nil {
			counts.add("error", 0, time.Now())
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		counts.add(resp.Header.Get("X-Flaky-Id"), resp.StatusCode, time.Now())
	}
}

// rollbackNode runs a real agent with the default 10 s SLI interval.
func rollbackNode(t *testing.T, natsURL, token, name string) string {
	t.Helper()
	dp, err := agent.NewDataPlane(agent.DataPlaneConfig{CacheDir: t.TempDir(), DrainTimeout: 5 * time.Second, Telemetry: true,
		Labels: map[string]string{"node": name}, SLIInterval: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n, err := agent.NewNode(agent.NodeConfig{Name: name, DataDir: t.TempDir(), Servers: []string{natsURL}, JoinToken: token,
		Capacity: v1.Resources{MemoryBytes: 4 << 30, Instances: 64}, DataPlane: dp, Metrics: dp.Metrics.Registry,
		Registry: &oci.Client{HTTPClient: &http.Client{Timeout: 30 * time.Second}}})
	if err != nil {
		gw.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); n.Run(ctx) }()
	go func() { defer wg.Done(); dp.Serve(ctx, gw, nil) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return "http://" + gw.Addr().String()
}
