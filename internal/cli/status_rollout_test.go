package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	fclient "fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/controlplane/cptest"
	"fermion.dev/fermion/internal/fermiontest"
)

// TestStatusShowsRollout: `fermion status` (the list and one deployment, text and
// -o json) says "rolling out: step …" while a canary waits at its first gate, and
// the outcome, with how long ago, once it was aborted.
func TestStatusShowsRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("a control plane, two simulated nodes and a rollout: not in -short")
	}
	apiEnv(t)
	p := cptest.Start(t, controlplane.Config{})
	ctx := context.Background()
	join := p.NodeToken(t)
	for _, name := range []string{"edge-1", "edge-2"} {
		a, err := cptest.JoinSimAgent(ctx, p.NATSURL(), join, name, v1.Register{Capacity: v1.Resources{MemoryBytes: 4 << 30, Instances: 64}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.Close)
	}
	cptest.WaitNodes(t, p.Server, 2, v1.NodeReady, 20*time.Second)
	img1 := p.PushExample(t, "hello", "v1", artifact.Meta{Revision: "one"})
	img2 := p.PushExample(t, "hello", "v2", artifact.Meta{Revision: "two"})
	cl, err := fclient.New(p.API, p.Token)
	if err != nil {
		t.Fatal(err)
	}
	status := func(args ...string) string {
		t.Helper()
		code, stdout, stderr := run(t, append(append([]string{"status"}, args...), "--server", p.API, "--token", p.Token)...)
		if code != 0 {
			t.Fatalf("fermion status %s exited %d: %s", strings.Join(args, " "), code, stderr)
		}
		return stdout
	}
	// waitStatus polls `fermion status args…` until its output has every want.
	waitStatus := func(args []string, want ...string) string {
		t.Helper()
		var out string
		fermiontest.WaitFor(t, 30*time.Second, func() error {
			out = status(args...)
			for _, w := range want {
				if !strings.Contains(out, w) {
					return fmt.Errorf("fermion status %s lacks %q:\n%s", strings.Join(args, " "), w, out)
				}
			}
			return nil
		})
		return out
	}

	if _, _, err := cl.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: img1, Daemon: true}, fclient.CreateOnly()); err != nil {
		t.Fatal(err)
	}
	waitStatus([]string{"hello"}, "converged")
	if out := status(); strings.Contains(out, "rolling out") {
		t.Fatalf("status before any rollout:\n%s", out)
	}
	d2, _, err := cl.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: img2, Daemon: true,
		Rollout: &v1.RolloutStrategy{Kind: v1.RolloutCanary, Steps: []string{"1node", "manual", "100%nodes", "manual"}}}, fclient.Unconditional())
	if err != nil {
		t.Fatal(err)
	}
	live := fmt.Sprintf("rolling out: step 1/2 (1node, manual) canary 0.1.0 (revision %d), paused at a manual gate", d2.Change.Number)
	out := waitStatus(nil, live)
	t.Logf("fermion status:\n%s", out)
	out = waitStatus([]string{"hello"}, "rollout ", live+" (fermion rollout status hello)", "stable ")
	t.Logf("fermion status hello:\n%s", out)

	var l v1.DeploymentList
	if err := json.Unmarshal([]byte(status("-o", "json")), &l); err != nil || len(l.Deployments) != 1 || l.Deployments[0].RolloutStatus == nil {
		t.Fatalf("status -o json: %+v, %v", l, err)
	}
	if r := l.Deployments[0].RolloutStatus; r.Phase != "paused" || !r.Gated || r.Step != 0 || r.Steps != 2 || r.To.Number != d2.Change.Number {
		t.Errorf("status -o json: rolloutStatus %+v", r)
	}
	var st v1.DeploymentStatus
	if err := json.Unmarshal([]byte(status("hello", "-o", "json")), &st); err != nil || st.Deployment.RolloutStatus == nil || st.Deployment.RolloutStatus.Describe() != live {
		t.Fatalf("status hello -o json: %+v, %v", st.Deployment.RolloutStatus, err)
	}

	if _, err := cl.RolloutAction(ctx, "hello", v1.RolloutAbort, "wrong build"); err != nil {
		t.Fatal(err)
	}
	out = waitStatus(nil, "rollout aborted at step 1/2 (1node, manual), back to 0.1.0 (revision", "wrong build", "s ago)")
	t.Logf("fermion status after the abort:\n%s", out)
	waitStatus([]string{"hello"}, "rollout aborted at step 1/2", "wrong build")
}
