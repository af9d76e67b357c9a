package controlplane_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/fermiontest"
)

// TestRolloutRollingSwitchesInBatches rolls a daemon on three simulated nodes from v1
// to v2 with kind rolling and max_unavailable 1 through the rollout controller. The
// first batch's node is held "starting" (the test answers its heartbeats for it), so
// the controller must wait: while it is held the other two keep v1. A sampler watches
// the nodes all along and fails if more nodes run v2 than the batches reached so far
// allow, or if a node goes back to v1. Released, the rollout succeeds batch by batch
// and every node runs v2.
func TestRolloutRollingSwitchesInBatches(t *testing.T) {
	f := newFleet(t, map[string]map[string]string{"edge-1": nil, "edge-2": nil, "edge-3": nil})
	ctx := context.Background()
	img1 := f.p.PushExample(t, "hello", "1.0.0", artifact.Meta{Revision: "one"})
	img2 := f.p.PushExample(t, "hello", "2.0.0", artifact.Meta{Revision: "two"})
	d1, _, err := f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: img1, Daemon: true}, client.CreateOnly())
	if err != nil {
		t.Fatal(err)
	}
	f.waitConverged(t, "hello", 10*time.Second)
	names := []string{"edge-1", "edge-2", "edge-3"}

	// Hold edge-1 (the first batch: nodes go by name): it stops hearing pushes, and
	// the test heartbeats for it, reporting what it last ran, then v2 "starting"
	// once its reply assigns v2, so its lease stays and it never turns ready.
	held := f.agents["edge-1"]
	held.Pause()
	holdCtx, stopHold := context.WithCancel(ctx)
	var holdWG sync.WaitGroup
	var holdMu sync.Mutex
	heardV2, beats := false, 0
	report := v1.InstanceStatus{Deployment: "hello", Node: "edge-1", Generation: d1.Generation, Digest: d1.Version.Digest,
		Version: d1.Version.Version, State: v1.InstanceReady, Instances: 1}
	holdWG.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			holdMu.Lock()
			st := report
			holdMu.Unlock()
			if hr, err := held.Heartbeat(holdCtx, v1.Heartbeat{Statuses: []v1.InstanceStatus{st}}); err == nil && hr.Error == nil {
				holdMu.Lock()
				beats++
				holdMu.Unlock()
				for _, as := range hr.Assignments.Assignments {
					if as.Deployment == "hello" && as.Version.Digest != d1.Version.Digest {
						holdMu.Lock()
						heardV2 = true
						report = v1.InstanceStatus{Deployment: "hello", Node: "edge-1", Generation: as.Generation, Digest: as.Version.Digest,
							Version: as.Version.Version, State: v1.InstanceStarting}
						holdMu.Unlock()
					}
				}
			}
			select {
			case <-holdCtx.Done():
				return
			case <-tick.C:
			}
		}
	})
	release := func() {
		stopHold()
		holdWG.Wait()
		held.Resume()
	}
	defer release()

	d2, _, err := f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: img2, Daemon: true,
		Rollout: &v1.RolloutStrategy{Kind: v1.RolloutRolling, MaxUnavailable: "1"}}, client.Unconditional())
	if err != nil {
		t.Fatal(err)
	}
	v2 := d2.Version.Digest

	// The sampler reads the nodes first and the rollout after: the step only grows,
	// so a node count within (step+1) batches of the later step never fails wrongly.
	sampleCtx, stopSample := context.WithCancel(ctx)
	var sampleWG sync.WaitGroup
	var sampleErr error
	samples, maxSeen := 0, 0
	sampleWG.Go(func() {
		on := map[string]bool{}
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-sampleCtx.Done():
				return
			case <-tick.C:
			}
			n := 0
			for _, name := range names {
				if f.agents[name].AssignedDigest("hello") == v2 {
					on[name] = true
					n++
				} else if on[name] {
					sampleErr = fmt.Errorf("%s went back from v2 to v1 during the rolling update", name)
					return
				}
			}
			ro, err := f.c.Rollout(sampleCtx, "hello")
			if err != nil || ro.To.Number != d2.Change.Number {
				continue // not started yet, or the test is ending
			}
			samples++
			maxSeen = max(maxSeen, n)
			if n > ro.Step+1 {
				sampleErr = fmt.Errorf("%d nodes run v2 at step %d (%s) of batches of one: %v", n, ro.Step, ro.Phase, ro.Steps)
				return
			}
		}
	})
	stopSampler := func() {
		stopSample()
		sampleWG.Wait()
		if sampleErr != nil {
			t.Fatal(sampleErr)
		}
	}
	defer func() { stopSample(); sampleWG.Wait() }()

	// The first batch waits for edge-1, which the test keeps starting.
	var ro *v1.Rollout
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		var err error
		if ro, err = f.c.Rollout(ctx, "hello"); err != nil {
			return err
		}
		holdMu.Lock()
		defer holdMu.Unlock()
		if ro.To.Number != d2.Change.Number || len(ro.CanaryNodes) == 0 || !heardV2 {
			return fmt.Errorf("rollout to %d at step %d on %v, edge-1 assigned v2: %v", ro.To.Number, ro.Step, ro.CanaryNodes, heardV2)
		}
		return nil
	})
	if ro.Step != 0 || ro.Terminal || !slices.Equal(ro.CanaryNodes, []string{"edge-1"}) || len(ro.Steps) != 3 {
		t.Fatalf("rolling update %s at step %d on %v over steps %v, want edge-1 first of three batches", ro.Phase, ro.Step, ro.CanaryNodes, ro.Steps)
	}
	// Twenty heartbeats of edge-1 "starting" later, the rest still run v1: the
	// controller waits for the batch, however long it takes.
	holdMu.Lock()
	from := beats
	holdMu.Unlock()
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		for _, name := range names[1:] {
			if got := f.agents[name].AssignedDigest("hello"); got != d1.Version.Digest {
				t.Fatalf("%s runs %s while the first batch is not ready, want v1", name, got)
			}
		}
		holdMu.Lock()
		defer holdMu.Unlock()
		if beats < from+20 {
			return fmt.Errorf("edge-1 sent %d heartbeats since, want 20", beats-from)
		}
		return nil
	})
	if ro, err := f.c.Rollout(ctx, "hello"); err != nil || ro.Step != 0 || ro.Terminal {
		t.Fatalf("while edge-1 starts the rollout is %+v (%v), want at the first batch", ro, err)
	}

	release()
	ro = waitRollout(t, f.c, "hello", d2.Change.Number, 30*time.Second)
	stopSampler()
	if ro.Phase != "succeeded" || ro.Step < len(ro.Steps)-1 {
		t.Fatalf("rolling update ended %s at step %d (%s), want succeeded after three batches", ro.Phase, ro.Step, ro.Reason)
	}
	f.waitConverged(t, "hello", 10*time.Second)
	// The record drops its stable revision just after the rollout ends.
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		d, err := f.c.GetDeployment(ctx, "hello")
		if err != nil {
			return err
		}
		if d.Version.Digest != v2 || d.Stable != nil {
			return fmt.Errorf("after the rolling update the deployment is at %v with stable %+v, want v2 and no stable", d.Version.Digest, d.Stable)
		}
		return nil
	})
	for _, name := range names {
		if got := f.agents[name].AssignedDigest("hello"); got != v2 {
			t.Errorf("%s runs %s after the rolling update, want v2", name, got)
		}
	}
	if samples == 0 || maxSeen == 0 {
		t.Fatalf("the sampler saw %d samples, at most %d nodes on v2: it watched nothing", samples, maxSeen)
	}
	t.Logf("%d samples, steps %v", samples, ro.Steps)
}
