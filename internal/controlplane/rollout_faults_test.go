package controlplane_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/controlplane/cptest"
	"fermion.dev/fermion/internal/fermiontest"
)

// manualCanary is a canary of node steps behind manual gates: no analysis, so
// simulated agents (which serve nothing) can carry it, and two revisions of one app
// version may be rolled out.
func manualCanary(steps ...string) *v1.RolloutStrategy {
	return &v1.RolloutStrategy{Kind: v1.RolloutCanary, Steps: steps}
}

// waitPhase polls name's rollout of revision to until it is in phase.
func waitPhase(t *testing.T, c *client.Client, name string, to int64, phase string, step int) *v1.Rollout {
	t.Helper()
	var ro *v1.Rollout
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		var err error
		ro, err = c.Rollout(context.Background(), name)
		if err != nil {
			return err
		}
		if ro.To.Number != to || ro.Phase != phase || ro.Step != step {
			return fmt.Errorf("rollout to %d: %s at step %d (%s), want %s at %d", ro.To.Number, ro.Phase, ro.Step, ro.Reason, phase, step)
		}
		return nil
	})
	return ro
}

// waitBackAt polls until name's record is a rollback revision at digest.
func waitBackAt(t *testing.T, c *client.Client, name, digest string) *v1.Deployment {
	t.Helper()
	var d *v1.Deployment
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		var err error
		d, err = c.GetDeployment(context.Background(), name)
		if err != nil {
			return err
		}
		if d.Version.Digest != digest || d.Change == nil || d.Change.Cause != v1.CauseRollback || d.Stable != nil {
			return fmt.Errorf("deployment at %s (change %+v), want back at %s", d.Version.Digest, d.Change, digest)
		}
		return nil
	})
	return d
}

// TestRolloutFaults runs the rollout controller's faults that simulated nodes can
// show, on one control plane: a canary refused at admission (same app version with
// analysis), a second deploy while a rollout runs (409), actions that do not apply
// (409), an abort in the middle of a step (the stable revision everywhere, as a
// revision), a step whose selector matches no node (failed), and two deploys racing
// (one starts its rollout, the other gets a conflict).
func TestRolloutFaults(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := cptest.Start(t, controlplane.Config{Metrics: reg})
	ctx := context.Background()
	join := p.NodeToken(t)
	for i, region := range []string{"eu", "us"} {
		a, err := cptest.JoinSimAgent(ctx, p.NATSURL(), join, fmt.Sprintf("edge-%d", i+1), v1.Register{
			Labels: map[string]string{"region": region}, Capacity: v1.Resources{MemoryBytes: 4 << 30, Instances: 64}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.Close)
	}
	cptest.WaitNodes(t, p.Server, 2, v1.NodeReady, 10*time.Second)
	c, err := client.New(p.API, p.Token)
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{p: p, c: c}
	img1 := p.PushExample(t, "hello", "1.0.0", artifact.Meta{Revision: "one"})
	img2 := p.PushExample(t, "hello", "2.0.0", artifact.Meta{Revision: "two"})
	img3 := p.PushExample(t, "hello", "3.0.0", artifact.Meta{Revision: "three"})
	d1, _, err := c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: img1, Daemon: true}, client.CreateOnly())
	if err != nil {
		t.Fatal(err)
	}
	f.waitConverged(t, "hello", 30*time.Second)

	t.Run("analysis needs distinct app versions", func(t *testing.T) {
		_, _, err := c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: img2, Daemon: true,
			Rollout: &v1.RolloutStrategy{Kind: v1.RolloutCanary, Steps: []string{"10%", "100%"}}}, client.Unconditional())
		var e *v1.Error
		if !client.IsCode(err, v1.CodeBadRequest) || !errors.As(err, &e) || e.Field != "spec.rollout" || !strings.Contains(e.Message, "raise version") {
			t.Fatalf("got %v, want a bad request on spec.rollout saying to raise the version", err)
		}
		_, _, err = c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: img2, Daemon: true,
			Rollout: &v1.RolloutStrategy{Kind: v1.RolloutCanary, Steps: []string{"10%", "5%"}}}, client.Unconditional())
		if !client.IsCode(err, v1.CodeBadRequest) || !errors.As(err, &e) || e.Field != "spec.rollout" || !strings.Contains(e.Message, "weights must increase") {
			t.Fatalf("shrinking weights: %v", err)
		}
	})

	t.Run("abort during a step", func(t *testing.T) {
		d2, _, err := c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: img2, Daemon: true,
			Rollout: manualCanary("1node", "manual", "100%nodes", "manual")}, client.Unconditional())
		if err != nil {
			t.Fatal(err)
		}
		ro := waitPhase(t, c, "hello", d2.Change.Number, "paused", 0)
		if !slices.Equal(ro.CanaryNodes, []string{"edge-1"}) {
			t.Fatalf("canary nodes %v, want the first by name", ro.CanaryNodes)
		}
		if _, _, err := c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: img3, Daemon: true}, client.Unconditional()); !client.IsCode(err, v1.CodeConflict) ||
			!strings.Contains(err.Error(), "rollout in progress") {
			t.Fatalf("a deploy during the rollout: %v, want a conflict naming it", err)
		}
		if _, err := c.Rollback(ctx, "hello", v1.RollbackRequest{}); !client.IsCode(err, v1.CodeConflict) {
			t.Fatalf("a rollback during the rollout: %v, want a conflict", err)
		}
		for _, a := range []string{v1.RolloutResume, v1.RolloutPause} {
			if _, err := c.RolloutAction(ctx, "hello", a, ""); !client.IsCode(err, v1.CodeConflict) {
				t.Errorf("%s at a manual gate: %v, want a conflict", a, err)
			}
		}
		ro, err = c.RolloutAction(ctx, "hello", v1.RolloutAbort, "wrong build")
		if err != nil || ro.Phase != "aborted" || !strings.Contains(ro.Reason, "wrong build") {
			t.Fatalf("abort: %+v, %v", ro, err)
		}
		if _, err := c.RolloutAction(ctx, "hello", v1.RolloutAbort, ""); !client.IsCode(err, v1.CodeConflict) {
			t.Errorf("a second abort: %v, want a conflict", err)
		}
		back := waitBackAt(t, c, "hello", d1.Version.Digest)
		if back.Change.RollbackOf != d1.Change.Number || !strings.Contains(back.Change.Message, "aborted") {
			t.Errorf("the return to v1 is %+v", back.Change)
		}
		st := f.waitConverged(t, "hello", 30*time.Second)
		for _, n := range st.Nodes {
			if n.Desired == nil || n.Desired.Digest != d1.Version.Digest {
				t.Errorf("%s is assigned %+v, want v1", n.Node, n.Desired)
			}
		}
	})

	t.Run("selector matching no node", func(t *testing.T) {
		d, _, err := c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: img2, Daemon: true,
			Rollout: manualCanary("1node@region=mars", "manual")}, client.Unconditional())
		if err != nil {
			t.Fatal(err)
		}
		ro := waitPhase(t, c, "hello", d.Change.Number, "failed", 0)
		if !strings.Contains(ro.Reason, "region:mars") || !strings.Contains(ro.Reason, "matches none of the 2 nodes") {
			t.Errorf("reason %q", ro.Reason)
		}
		waitBackAt(t, c, "hello", d1.Version.Digest)
	})

	t.Run("two deploys at once", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, img := range []string{img2, img3} {
			wg.Go(func() {
				_, _, errs[i] = c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: img, Daemon: true,
					Rollout: manualCanary("1node", "manual")}, client.Unconditional())
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !client.IsCode(err, v1.CodeConflict):
				t.Fatalf("a racing deploy failed otherwise: %v", err)
			}
		}
		if won != 1 {
			t.Fatalf("%d deploys won (%v), want exactly one and a conflict", won, errs)
		}
		d, err := c.GetDeployment(ctx, "hello")
		if err != nil {
			t.Fatal(err)
		}
		waitPhase(t, c, "hello", d.Change.Number, "paused", 0)
		if _, err := c.RolloutAction(ctx, "hello", v1.RolloutPromote, ""); err != nil {
			t.Fatal(err)
		}
		ro := waitPhase(t, c, "hello", d.Change.Number, "succeeded", 1)
		if ro.Terminal != true {
			t.Fatalf("%+v", ro)
		}
		st := f.waitConverged(t, "hello", 30*time.Second)
		if st.Deployment.Version.Digest != d.Version.Digest {
			t.Fatalf("after the promotion the deployment runs %s", st.Deployment.Version.Digest)
		}
		fermiontest.WaitFor(t, 10*time.Second, func() error {
			got, err := c.GetDeployment(ctx, "hello")
			if err != nil || got.Stable != nil || got.Change.Number != d.Change.Number || got.Generation != d.Generation {
				return fmt.Errorf("after success the deployment is %+v (%v), want no stable, same revision and generation", got, err)
			}
			return nil
		})
	})

	// Each ended rollout is counted once, by its outcome.
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		for outcome, want := range map[string]float64{"aborted": 1, "failed": 1, "succeeded": 1, "rolled_back": 0} {
			if got := metricValue(t, reg, "fermion_rollouts_total", map[string]string{"outcome": outcome}); got != want {
				return fmt.Errorf("fermion_rollouts_total{outcome=%q} = %v, want %v", outcome, got, want)
			}
		}
		return nil
	})
}

// TestRolloutFaultsOnRealNodes runs the faults that need real agents: a canary that
// traps on start fails its step with the node's reason and the deployment returns to
// v1; a canary three times slower than its stable under loopback load is rolled back
// by the p95/p99 latency checks, with their numbers in the verdict; and with the
// registry stopped, aborting a node step puts v1 back on the canary
// node from its cache (the stable revision's artifact stays pinned).
func TestRolloutFaultsOnRealNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("real agents and wasm guests: not in -short")
	}
	p, c, f, n1, n2 := startRolloutNodes(t)
	ctx := context.Background()
	img1 := p.PushVariant(t, cptest.FlakyGuest, "flaky", "1.0.0", nil)
	trap2 := p.PushVariant(t, cptest.FlakyGuest, "flaky", "2.0.0", map[string]string{"TRAP_ON_START": "1"})
	img3 := p.PushVariant(t, cptest.FlakyGuest, "flaky", "3.0.0", nil)
	slowStable := p.PushVariant(t, cptest.FlakyGuest, "flaky", "4.0.0", map[string]string{"SLOW_MS": "100"})
	slowCanary := p.PushVariant(t, cptest.FlakyGuest, "flaky", "5.0.0", map[string]string{"SLOW_MS": "300"})
	d1, _, err := c.PutDeployment(ctx, "flaky", v1.DeploymentSpec{Image: img1, Daemon: true}, client.CreateOnly())
	if err != nil {
		t.Fatal(err)
	}
	f.waitConverged(t, "flaky", 60*time.Second)

	t.Run("canary traps on start", func(t *testing.T) {
		d2, _, err := c.PutDeployment(ctx, "flaky", v1.DeploymentSpec{Image: trap2, Daemon: true, Rollout: canaryStrategy()}, client.Unconditional())
		if err != nil {
			t.Fatal(err)
		}
		ro := waitRollout(t, c, "flaky", d2.Change.Number, 60*time.Second)
		if ro.Phase != "failed" || !strings.Contains(ro.Reason, "canary (revision") || !strings.Contains(ro.Reason, "failed") {
			t.Fatalf("rollout of a trapping canary ended %s: %s", ro.Phase, ro.Reason)
		}
		t.Logf("reason: %s", ro.Reason)
		waitBackAt(t, c, "flaky", d1.Version.Digest)
		for _, gw := range []string{n1.gw, n2.gw} {
			if err := get(gw + "/flaky"); err != nil {
				t.Errorf("stable stopped serving on %s: %v", gw, err)
			}
		}
	})

	t.Run("canary 3x slower", func(t *testing.T) {
		// A stable that waits 100 ms per request, all at once, then a canary that
		// waits 300 ms judged on latency alone: its p95 and p99 are three times
		// stable's, far past the 1.5× allowed, so the first window that has its
		// sample (or an extension) fails it on a latency check. The waits are long
		// so that a busy machine's scheduling delay, added to both sides, cannot
		// bring the ratio under 1.5 (it would take 300 ms of it per request).
		fast, _, err := c.PutDeployment(ctx, "flaky", v1.DeploymentSpec{Image: slowStable, Daemon: true}, client.Unconditional())
		if err != nil {
			t.Fatal(err)
		}
		f.waitConverged(t, "flaky", 60*time.Second)
		load := startLoad(t, []string{n1.gw + "/flaky", n2.gw + "/flaky"}, 50, 20000)
		strategy := &v1.RolloutStrategy{Kind: v1.RolloutCanary, Steps: []string{"20%", "100%"}, Interval: "3s", MaxExtensions: 8,
			Analysis: &v1.RolloutAnalysis{MaxP95Ratio: 1.5, MaxP99Ratio: 1.5, MinRequests: 20, Alpha: 0.05}}
		d, _, err := c.PutDeployment(ctx, "flaky", v1.DeploymentSpec{Image: slowCanary, Daemon: true, Rollout: strategy}, client.Unconditional())
		if err != nil {
			t.Fatal(err)
		}
		ro := waitRollout(t, c, "flaky", d.Change.Number, 120*time.Second)
		load.Stop()
		if ro.Phase != "rolled_back" || !strings.Contains(ro.Reason, "latency") {
			t.Fatalf("rollout of a 3x slower canary ended %s (%s), want rolled_back on a latency check", ro.Phase, ro.Reason)
		}
		last := ro.Verdicts[len(ro.Verdicts)-1]
		var failed []v1.RolloutCheck
		for _, ch := range last.Checks {
			if ch.Result == "fail" && strings.HasSuffix(ch.Check, "_latency") && ch.Stable > 0 && ch.Canary > ch.Threshold &&
				ch.Threshold >= 1.5*ch.Stable*0.999 && ch.NCanary >= 20 && ch.P >= 0 && ch.P < 0.05 {
				failed = append(failed, ch)
			}
		}
		if last.Result != "fail" || len(failed) == 0 {
			t.Fatalf("last verdict %+v: want a failed p95 or p99 check with its numbers", last)
		}
		t.Logf("reason: %s; failed checks %+v; load %v", ro.Reason, failed, load.Take())
		waitBackAt(t, c, "flaky", fast.Version.Digest)
		// Put v1 back for the registry fault below, which expects it as stable.
		if _, _, err := c.PutDeployment(ctx, "flaky", v1.DeploymentSpec{Image: img1, Daemon: true}, client.Unconditional()); err != nil {
			t.Fatal(err)
		}
		fermiontest.WaitFor(t, 60*time.Second, func() error {
			st, err := c.DeploymentStatus(ctx, "flaky")
			if err != nil {
				return err
			}
			for _, n := range st.Nodes {
				if n.Actual == nil || n.Actual.Digest != d1.Version.Digest || n.Actual.State != v1.InstanceReady || n.Actual.Canary != nil {
					return fmt.Errorf("%s runs %+v, want v1 ready", n.Node, n.Actual)
				}
			}
			return nil
		})
	})

	t.Run("registry down during a rollback", func(t *testing.T) {
		d3, _, err := c.PutDeployment(ctx, "flaky", v1.DeploymentSpec{Image: img3, Daemon: true, Rollout: manualCanary("1node", "manual")}, client.Unconditional())
		if err != nil {
			t.Fatal(err)
		}
		waitPhase(t, c, "flaky", d3.Change.Number, "paused", 0) // edge-1 runs v3, ready
		p.StopRegistry()
		if _, err := c.RolloutAction(ctx, "flaky", v1.RolloutAbort, "registry maintenance"); err != nil {
			t.Fatal(err)
		}
		waitBackAt(t, c, "flaky", d1.Version.Digest)
		fermiontest.WaitFor(t, 60*time.Second, func() error {
			st, err := c.DeploymentStatus(ctx, "flaky")
			if err != nil {
				return err
			}
			for _, n := range st.Nodes {
				if n.Actual == nil || n.Actual.Digest != d1.Version.Digest || n.Actual.State != v1.InstanceReady {
					return fmt.Errorf("%s runs %+v, want v1 ready from its cache", n.Node, n.Actual)
				}
			}
			return nil
		})
		for _, gw := range []string{n1.gw, n2.gw} {
			if err := get(gw + "/flaky"); err != nil {
				t.Errorf("GET %s/flaky after the rollback: %v", gw, err)
			}
		}
	})
}

// TestAgentPartitionedDuringRolloutConverges cuts the canary node off while its
// rollout waits at the first step, aborts the rollout meanwhile, and checks that the
// node, when it returns, runs what the rollout ended with: the stable revision.
func TestAgentPartitionedDuringRolloutConverges(t *testing.T) {
	f := newFleet(t, map[string]map[string]string{"edge-1": {"zone": "a"}, "edge-2": {"zone": "b"}})
	ctx := context.Background()
	img1 := f.p.PushExample(t, "hello", "1.0.0", artifact.Meta{Revision: "one"})
	img2 := f.p.PushExample(t, "hello", "2.0.0", artifact.Meta{Revision: "two"})
	d1, _, err := f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: img1, Daemon: true}, client.Unconditional())
	if err != nil {
		t.Fatal(err)
	}
	f.waitConverged(t, "hello", 10*time.Second)
	d2, _, err := f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: img2, Daemon: true, Rollout: manualCanary("1node", "manual")}, client.Unconditional())
	if err != nil {
		t.Fatal(err)
	}
	waitPhase(t, f.c, "hello", d2.Change.Number, "paused", 0)
	edge1 := f.agents["edge-1"]
	if got := edge1.AssignedDigest("hello"); got != d2.Version.Digest {
		t.Fatalf("the canary node runs %s, want v2", got)
	}
	edge1.Pause()
	if _, err := f.c.RolloutAction(ctx, "hello", v1.RolloutAbort, "cut off"); err != nil {
		t.Fatal(err)
	}
	waitBackAt(t, f.c, "hello", d1.Version.Digest)
	if got := edge1.AssignedDigest("hello"); got != d2.Version.Digest {
		t.Fatalf("a cut-off node heard of the abort: runs %s", got)
	}
	edge1.Resume()
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if got := edge1.AssignedDigest("hello"); got != d1.Version.Digest {
			return fmt.Errorf("edge-1 runs %s after it returned, want v1", got)
		}
		return nil
	})
	f.waitConverged(t, "hello", 10*time.Second)
}
