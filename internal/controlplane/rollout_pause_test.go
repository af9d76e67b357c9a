package controlplane_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/controlplane/cptest"
	"fermion.dev/fermion/internal/fermiontest"
)

// TestRolloutPauseDuringAnalysis pauses a canary while its first step is being
// analysed and resumes it. Simulated nodes send no SLIs, so every 1 s window is
// inconclusive and extends the step (up to 100 times): that makes the analysis
// visible as a verdict a second. Paused, the rollout records no verdict however many
// windows would have closed, a second pause and a promote are refused (a pause is
// not a gate), and the canary node keeps the canary; resumed, it analyses again from
// a fresh window, and promotes go through to success.
func TestRolloutPauseDuringAnalysis(t *testing.T) {
	if testing.Short() {
		t.Skip("a wasm guest build and several analysis windows: not in -short")
	}
	f := newFleet(t, map[string]map[string]string{"edge-1": nil, "edge-2": nil})
	ctx := context.Background()
	// Analysis needs distinct app versions; the agents are simulated, so the guest
	// never runs.
	img1 := f.p.PushVariant(t, cptest.FlakyGuest, "hello", "1.0.0", nil)
	img2 := f.p.PushVariant(t, cptest.FlakyGuest, "hello", "2.0.0", nil)
	if _, _, err := f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: img1, Daemon: true}, client.CreateOnly()); err != nil {
		t.Fatal(err)
	}
	f.waitConverged(t, "hello", 10*time.Second)
	d2, _, err := f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: img2, Daemon: true,
		Rollout: &v1.RolloutStrategy{Kind: v1.RolloutCanary, Steps: []string{"1node", "100%nodes"}, Interval: "1s", MaxExtensions: 100}},
		client.Unconditional())
	if err != nil {
		t.Fatal(err)
	}

	// The first step analyses: wait for a verdict, which shows windows closing.
	verdicts := func(want int) *v1.Rollout {
		t.Helper()
		var ro *v1.Rollout
		fermiontest.WaitFor(t, 30*time.Second, func() error {
			var err error
			if ro, err = f.c.Rollout(ctx, "hello"); err != nil {
				return err
			}
			if ro.To.Number != d2.Change.Number || ro.Phase != "analysing" || ro.Step != 0 || len(ro.Verdicts) < want {
				return fmt.Errorf("rollout to %d: %s at step %d with %d verdicts (%s), want analysing step 0 with %d", ro.To.Number, ro.Phase, ro.Step, len(ro.Verdicts), ro.Reason, want)
			}
			return nil
		})
		return ro
	}
	ro := verdicts(1)
	if v := ro.Verdicts[0]; v.Result != "inconclusive" {
		t.Fatalf("a window with no traffic was judged %+v, want inconclusive", v)
	}

	paused, err := f.c.RolloutAction(ctx, "hello", v1.RolloutPause, "look at the logs")
	if err != nil || paused.Phase != "paused" {
		t.Fatalf("pause: %+v, %v", paused, err)
	}
	for _, a := range []string{v1.RolloutPause, v1.RolloutPromote} {
		if _, err := f.c.RolloutAction(ctx, "hello", a, ""); !client.IsCode(err, v1.CodeConflict) {
			t.Errorf("%s while paused: %v, want a conflict", a, err)
		}
	}
	// Let more windows pass than the step had closed when it paused; none may be
	// judged. (A busy machine only makes this weaker, never fails it wrongly.)
	quiet := time.Now().Add(3 * time.Second)
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		ro, err := f.c.Rollout(ctx, "hello")
		if err != nil {
			return err
		}
		if ro.Phase != "paused" || len(ro.Verdicts) != len(paused.Verdicts) {
			t.Fatalf("while paused the rollout went %s with %d verdicts, want paused with %d", ro.Phase, len(ro.Verdicts), len(paused.Verdicts))
		}
		if time.Now().Before(quiet) {
			return fmt.Errorf("paused; waiting for three windows to pass")
		}
		return nil
	})
	if got := f.agents["edge-1"].AssignedDigest("hello"); got != d2.Version.Digest {
		t.Fatalf("the canary node runs %s while paused, want v2", got)
	}
	if got := f.agents["edge-2"].AssignedDigest("hello"); got == d2.Version.Digest {
		t.Fatalf("edge-2 runs v2 while the canary is paused at its first node")
	}

	resumed, err := f.c.RolloutAction(ctx, "hello", v1.RolloutResume, "")
	if err != nil || resumed.Phase != "analysing" {
		t.Fatalf("resume: %+v, %v", resumed, err)
	}
	if !resumed.WindowStart.After(paused.WindowStart) || resumed.WindowEnd.Sub(resumed.WindowStart) != time.Second {
		t.Errorf("resumed window [%v, %v), paused at [%v, %v): want a fresh 1 s window", resumed.WindowStart, resumed.WindowEnd, paused.WindowStart, paused.WindowEnd)
	}
	if _, err := f.c.RolloutAction(ctx, "hello", v1.RolloutResume, ""); !client.IsCode(err, v1.CodeConflict) {
		t.Errorf("a second resume: %v, want a conflict", err)
	}
	verdicts(len(paused.Verdicts) + 1)

	// A promote skips the analysis of each step; the rollout ends on every node.
	if _, err := f.c.RolloutAction(ctx, "hello", v1.RolloutPromote, ""); err != nil {
		t.Fatal(err)
	}
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		ro, err := f.c.Rollout(ctx, "hello")
		if err != nil {
			return err
		}
		if ro.Terminal {
			return nil
		}
		if ro.Phase == "analysing" && ro.Step == 1 {
			if _, err := f.c.RolloutAction(ctx, "hello", v1.RolloutPromote, ""); err != nil && !client.IsCode(err, v1.CodeConflict) {
				return err
			}
		}
		return fmt.Errorf("rollout %s at step %d", ro.Phase, ro.Step)
	})
	ro = waitRollout(t, f.c, "hello", d2.Change.Number, 30*time.Second)
	if ro.Phase != "succeeded" {
		t.Fatalf("after promotes the rollout ended %s (%s)", ro.Phase, ro.Reason)
	}
	f.waitConverged(t, "hello", 10*time.Second)
	for name, a := range f.agents {
		if got := a.AssignedDigest("hello"); got != d2.Version.Digest {
			t.Errorf("%s runs %s after the rollout, want v2", name, got)
		}
	}
}
