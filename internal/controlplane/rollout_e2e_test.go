package controlplane_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/controlplane/cptest"
	"fermion.dev/fermion/internal/fermiontest"
)

// loadGen sends GETs to urls in turn from one goroutine per URL, at most perURL a
// second each, and counts the answers by status (0: a transport error) until
// stopped; it never sends more than limit requests in all.
type loadGen struct {
	stop  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	codes map[int]int
	sent  int
	limit int
}

func startLoad(t *testing.T, urls []string, perURL, limit int) *loadGen {
	t.Helper()
	l := &loadGen{stop: make(chan struct{}), codes: map[int]int{}, limit: limit}
	hc := &http.Client{Timeout: 5 * time.Second}
	for _, u := range urls {
		l.wg.Go(func() {
			tick := time.NewTicker(time.Second / time.Duration(perURL))
			defer tick.Stop()
			for {
				select {
				case <-l.stop:
					return
				case <-tick.C:
				}
				l.mu.Lock()
				if l.sent >= l.limit {
					l.mu.Unlock()
					return
				}
				l.sent++
				l.mu.Unlock()
				code := 0
				if resp, err := hc.Get(u); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
				l.mu.Lock()
				l.codes[code]++
				l.mu.Unlock()
			}
		})
	}
	t.Cleanup(l.Stop)
	return l
}

// Take returns the counts since the last Take and starts counting anew.
func (l *loadGen) Take() map[int]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.codes
	l.codes = map[int]int{}
	return out
}

func (l *loadGen) Stop() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

func non2xx(codes map[int]int) int {
	n := 0
	for c, k := range codes {
		if c < 200 || c > 299 {
			n += k
		}
	}
	return n
}

// canaryStrategy is a weight canary with test timing: 3 s windows over 1 s SLIs, a
// small minimum sample, room to extend while traffic accumulates.
func canaryStrategy() *v1.RolloutStrategy {
	return &v1.RolloutStrategy{Kind: v1.RolloutCanary, Steps: []string{"20%", "50%", "100%"}, Interval: "3s", MaxExtensions: 8,
		Analysis: &v1.RolloutAnalysis{MaxErrorRatio: 1, MaxErrorIncrease: 0.5, MinRequests: 20, Alpha: 0.05}}
}

// waitRollout polls name's rollout until it is terminal and returns it.
func waitRollout(t *testing.T, c *client.Client, name string, to int64, timeout time.Duration) *v1.Rollout {
	t.Helper()
	var ro *v1.Rollout
	fermiontest.WaitFor(t, timeout, func() error {
		var err error
		ro, err = c.Rollout(context.Background(), name)
		if err != nil {
			return err
		}
		if ro.To.Number != to || !ro.Terminal {
			nodes := ""
			if st, err := c.DeploymentStatus(context.Background(), name); err == nil {
				for _, n := range st.Nodes {
					nodes += fmt.Sprintf(" %s: desired %v actual %+v canary %+v;", n.Node, n.Desired != nil, n.Actual, n.Actual.Canary)
				}
			}
			return fmt.Errorf("rollout to revision %d: %s at step %d (%s), weight %d, %d verdicts; nodes%s", ro.To.Number, ro.Phase, ro.Step, ro.Reason, ro.Weight, len(ro.Verdicts), nodes)
		}
		return nil
	})
	return ro
}

// startRolloutNodes starts a control plane and two real agents (edge-1, edge-2)
// reporting SLIs every second, and returns them with an API client.
func startRolloutNodes(t *testing.T) (*cptest.Plane, *client.Client, *fleet, *sliNode, *sliNode) {
	t.Helper()
	p := cptest.Start(t, controlplane.Config{})
	join := p.NodeToken(t)
	n1 := startSLINode(t, p.NATSURL(), join, "edge-1", time.Second)
	n2 := startSLINode(t, p.NATSURL(), join, "edge-2", time.Second)
	cptest.WaitNodes(t, p.Server, 2, v1.NodeReady, 20*time.Second)
	c, err := client.New(p.API, p.Token)
	if err != nil {
		t.Fatal(err)
	}
	return p, c, &fleet{p: p, c: c}, n1, n2
}

// TestCanaryRollsBackAndPromotes is issue 15's "done when" on the control plane: two
// real agents serve v1 under load; a canary v2 failing 5 % of its requests is rolled
// back by its analysis, with the verdict's numbers in the rollout, and the deployment
// returns to v1 as a new revision; then a good v3 promotes itself through every step
// with no failed request.
func TestCanaryRollsBackAndPromotes(t *testing.T) {
	if testing.Short() {
		t.Skip("real agents, wasm guests and analysis windows: not in -short")
	}
	p, c, f, n1, n2 := startRolloutNodes(t)
	ctx := context.Background()
	good1 := p.PushVariant(t, cptest.FlakyGuest, "flaky", "1.0.0", nil)
	bad2 := p.PushVariant(t, cptest.FlakyGuest, "flaky", "2.0.0", map[string]string{"FAIL_EVERY": "20"})
	good3 := p.PushVariant(t, cptest.FlakyGuest, "flaky", "3.0.0", nil)

	spec := v1.DeploymentSpec{Image: good1, Daemon: true, Rollout: canaryStrategy()}
	d1, _, err := c.PutDeployment(ctx, "flaky", spec, client.CreateOnly())
	if err != nil {
		t.Fatal(err)
	}
	f.waitConverged(t, "flaky", 60*time.Second)
	if d1.Stable != nil {
		t.Fatalf("a first deploy starts no rollout, got stable %+v", d1.Stable)
	}
	load := startLoad(t, []string{n1.gw + "/flaky", n2.gw + "/flaky"}, 100, 40000)

	// v2 fails one request in 20: its first analysis window, or an extension of it,
	// fails it, and it is rolled back on every node.
	spec.Image = bad2
	d2, _, err := c.PutDeployment(ctx, "flaky", spec, client.Unconditional())
	if err != nil {
		t.Fatal(err)
	}
	if d2.Stable == nil || d2.Stable.Version.Digest != d1.Version.Digest {
		t.Fatalf("deploy of v2 recorded stable %+v, want v1", d2.Stable)
	}
	// A second deploy while the rollout runs is refused, naming it.
	_, _, err = c.PutDeployment(ctx, "flaky", v1.DeploymentSpec{Image: good3, Daemon: true, Rollout: canaryStrategy()}, client.Unconditional())
	if !client.IsCode(err, v1.CodeConflict) {
		t.Fatalf("deploy during a rollout: %v, want a conflict", err)
	}
	ro := waitRollout(t, c, "flaky", d2.Change.Number, 120*time.Second)
	if ro.Phase != "rolled_back" {
		t.Fatalf("rollout of v2 ended %s (%s), want rolled_back", ro.Phase, ro.Reason)
	}
	last := ro.Verdicts[len(ro.Verdicts)-1]
	failed := false
	for _, ch := range last.Checks {
		if ch.Result == "fail" && ch.NCanary > 0 && ch.Canary > ch.Threshold && ch.P >= 0 && ch.P < 0.05 {
			failed = true
		}
	}
	if last.Result != "fail" || !failed {
		t.Fatalf("last verdict %+v: want a failed check with its numbers", last)
	}
	st := f.waitConverged(t, "flaky", 60*time.Second)
	if st.Deployment.Version.Digest != d1.Version.Digest || st.Deployment.Change.Cause != v1.CauseRollback || st.Deployment.Stable != nil {
		t.Fatalf("after the rollback the deployment is %s (change %+v), want v1 as a rollback revision", st.Deployment.Version.Version, st.Deployment.Change)
	}
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		st, err := c.DeploymentStatus(ctx, "flaky")
		if err != nil {
			return err
		}
		for _, n := range st.Nodes {
			if n.Actual == nil || n.Actual.Canary != nil || n.Actual.Digest != d1.Version.Digest {
				return fmt.Errorf("%s runs %+v, want v1 and no canary", n.Node, n.Actual)
			}
		}
		return nil
	})
	t.Logf("v2 rollout: %v; verdict %+v", load.Take(), last)

	// v3 is good: it goes through every step to 100 % and is promoted, and no
	// request fails on the way.
	spec.Image = good3
	d3, _, err := c.PutDeployment(ctx, "flaky", spec, client.Unconditional())
	if err != nil {
		t.Fatal(err)
	}
	if d3.Stable == nil || d3.Stable.Version.Digest != d1.Version.Digest {
		t.Fatalf("deploy of v3 recorded stable %+v, want v1", d3.Stable)
	}
	ro = waitRollout(t, c, "flaky", d3.Change.Number, 180*time.Second)
	if ro.Phase != "succeeded" {
		t.Fatalf("rollout of v3 ended %s (%s), want succeeded", ro.Phase, ro.Reason)
	}
	if len(ro.Verdicts) < 3 {
		t.Errorf("v3 went through %d analyses, want one per step: %+v", len(ro.Verdicts), ro.Verdicts)
	}
	st = f.waitConverged(t, "flaky", 60*time.Second)
	if st.Deployment.Version.Digest != d3.Version.Digest {
		t.Fatalf("after the promotion the deployment runs %s", st.Deployment.Version.Version)
	}
	codes := load.Take()
	load.Stop()
	if bad := non2xx(codes); bad != 0 || codes[200] == 0 {
		t.Fatalf("during v3's rollout: %v, want only 200s", codes)
	}
	t.Logf("v3 rollout: %v", codes)
}
