package controlplane_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/fermiontest"
)

// TestDeploymentShowsItsRollout: while a rollout governs a deployment, every read of
// the deployment (GET one, the list, its status) says where the rollout stands, step
// by step; after it ended it says the outcome (promoted; aborted and back on the
// stable revision); a later all-at-once deploy clears it.
func TestDeploymentShowsItsRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("a control plane, two simulated nodes and three rollout phases: not in -short")
	}
	f := newFleet(t, map[string]map[string]string{"edge-1": nil, "edge-2": nil})
	ctx := context.Background()
	img1 := f.p.PushExample(t, "hello", "v1", artifact.Meta{Revision: "one"})
	img2 := f.p.PushExample(t, "hello", "v2", artifact.Meta{Revision: "two"})
	img3 := f.p.PushExample(t, "hello", "v3", artifact.Meta{Revision: "three"})

	// views returns the rollout summary of each read of hello, by the read's name.
	views := func() (map[string]*v1.RolloutSummary, error) {
		d, err := f.c.GetDeployment(ctx, "hello")
		if err != nil {
			return nil, err
		}
		l, err := f.c.ListDeployments(ctx)
		if err != nil || len(l.Deployments) != 1 {
			return nil, fmt.Errorf("list: %+v, %v", l, err)
		}
		st, err := f.c.DeploymentStatus(ctx, "hello")
		if err != nil {
			return nil, err
		}
		return map[string]*v1.RolloutSummary{"get": d.RolloutStatus, "list": l.Deployments[0].RolloutStatus, "status": st.Deployment.RolloutStatus}, nil
	}
	// waitShows polls until every read describes the rollout as want ("" for none).
	waitShows := func(t *testing.T, want string) map[string]*v1.RolloutSummary {
		t.Helper()
		var got map[string]*v1.RolloutSummary
		fermiontest.WaitFor(t, 30*time.Second, func() error {
			var err error
			if got, err = views(); err != nil {
				return err
			}
			for read, r := range got {
				switch {
				case want == "" && r != nil:
					return fmt.Errorf("%s shows %q, want no rollout", read, r.Describe())
				case want != "" && r == nil:
					return fmt.Errorf("%s shows no rollout, want %q", read, want)
				case r != nil && r.Describe() != want:
					return fmt.Errorf("%s shows %q, want %q", read, r.Describe(), want)
				}
			}
			return nil
		})
		return got
	}

	d1, _, err := f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: img1, Daemon: true}, client.CreateOnly())
	if err != nil {
		t.Fatal(err)
	}
	f.waitConverged(t, "hello", 30*time.Second)
	waitShows(t, "")

	d2, _, err := f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: img2, Daemon: true,
		Rollout: manualCanary("1node", "manual", "100%nodes", "manual")}, client.Unconditional())
	if err != nil {
		t.Fatal(err)
	}
	waitPhase(t, f.c, "hello", d2.Change.Number, "paused", 0)
	// Every image is examples/hello, app version 0.1.0: revision numbers tell them apart.
	v2 := fmt.Sprintf("0.1.0 (revision %d)", d2.Change.Number)
	for read, r := range waitShows(t, "rolling out: step 1/2 (1node, manual) canary "+v2+", paused at a manual gate") {
		if r.Kind != "canary" || r.Phase != "paused" || !r.Gated || r.Terminal || r.Step != 0 || r.Steps != 2 ||
			r.From.Number != d1.Change.Number || r.To.Number != d2.Change.Number || r.To.Digest != d2.Version.Digest {
			t.Errorf("%s: %+v", read, r)
		}
	}
	if _, err := f.c.RolloutAction(ctx, "hello", v1.RolloutPromote, ""); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, f.c, "hello", d2.Change.Number, "paused", 1)
	waitShows(t, "rolling out: step 2/2 (100%nodes, manual) canary "+v2+", paused at a manual gate")
	if _, err := f.c.RolloutAction(ctx, "hello", v1.RolloutPromote, ""); err != nil {
		t.Fatal(err)
	}
	waitPhase(t, f.c, "hello", d2.Change.Number, "succeeded", 2) // past the last step
	for read, r := range waitShows(t, "rolled out: "+v2+" on every node") {
		if !r.Terminal || r.Updated.IsZero() {
			t.Errorf("%s: %+v, want terminal with the time it ended", read, r)
		}
	}

	// Aborted: the deployment returns to v2 as a new revision, and still shows why.
	d3, _, err := f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: img3, Daemon: true,
		Rollout: manualCanary("1node", "manual", "100%nodes", "manual")}, client.Unconditional())
	if err != nil {
		t.Fatal(err)
	}
	waitPhase(t, f.c, "hello", d3.Change.Number, "paused", 0)
	if _, err := f.c.RolloutAction(ctx, "hello", v1.RolloutAbort, "wrong build"); err != nil {
		t.Fatal(err)
	}
	back := waitBackAt(t, f.c, "hello", d2.Version.Digest)
	got := waitShows(t, fmt.Sprintf("rollout aborted at step 1/2 (1node, manual), back to 0.1.0 (revision %d): %s", d2.Change.Number, mustRollout(t, f.c).Reason))
	if r := got["get"]; !strings.Contains(r.Reason, "wrong build") || r.To.Number != d3.Change.Number || back.Change.Number <= d3.Change.Number {
		t.Errorf("after the abort: %+v (deployment at revision %d)", r, back.Change.Number)
	}

	// Deployed again, all at once: the old outcome is not this deployment's news.
	if _, _, err := f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: img1, Daemon: true}, client.Unconditional()); err != nil {
		t.Fatal(err)
	}
	waitShows(t, "")
}

func mustRollout(t *testing.T, c *client.Client) *v1.Rollout {
	t.Helper()
	ro, err := c.Rollout(context.Background(), "hello")
	if err != nil {
		t.Fatal(err)
	}
	return ro
}
