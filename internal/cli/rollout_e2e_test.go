package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	fclient "fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/controlplane/cptest"
	"fermion.dev/fermion/internal/fermiontest"
)

// steadyLoad sends GETs to each URL, one at a time per URL, until stop; the load is
// bounded by the gateways' speed and the test's length, and only goes to loopback.
func steadyLoad(t *testing.T, urls []string) (codes func() map[int]int) {
	t.Helper()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[int]int{}
	hc := &http.Client{Timeout: 5 * time.Second}
	for _, u := range urls {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				code := 0
				if resp, err := hc.Get(u); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
				mu.Lock()
				counts[code]++
				mu.Unlock()
			}
		})
	}
	t.Cleanup(func() { close(stop); wg.Wait() })
	return func() map[int]int {
		mu.Lock()
		defer mu.Unlock()
		out := counts
		counts = map[int]int{}
		return out
	}
}

// TestRolloutVerbs is issue 15's "done when" through the CLI: two real agents serve
// v1 of a guest under load; a canary v2 failing 5 % of its requests is rolled back by
// its analysis, and `fermion rollout status` shows the verdict with its numbers; then
// `fermion deploy --strategy canary --steps …` rolls out v3 through manual gates that
// `fermion rollout promote` passes, and `fermion rollout status --watch` follows it to
// success.
func TestRolloutVerbs(t *testing.T) {
	if testing.Short() {
		t.Skip("real agents, wasm guests and analysis windows: not in -short")
	}
	apiEnv(t)
	p := cptest.Start(t, controlplane.Config{})
	ctx := context.Background()
	join := p.NodeToken(t)
	gw1 := startRegionNode(t, p.NATSURL(), join, "edge-1", "eu")
	gw2 := startRegionNode(t, p.NATSURL(), join, "edge-2", "us")
	cptest.WaitNodes(t, p.Server, 2, v1.NodeReady, 20*time.Second)
	img1 := p.PushVariant(t, cptest.FlakyGuest, "flaky", "1.0.0", nil)
	img2 := p.PushVariant(t, cptest.FlakyGuest, "flaky", "2.0.0", map[string]string{"FAIL_EVERY": "20"})
	img3 := p.PushVariant(t, cptest.FlakyGuest, "flaky", "3.0.0", nil)
	api := func(args ...string) (int, string, string) {
		t.Helper()
		return run(t, append(args, "--server", p.API, "--token", p.Token)...)
	}
	must := func(args ...string) string {
		t.Helper()
		code, stdout, stderr := api(args...)
		if code != 0 {
			t.Fatalf("fermion %s exited %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout, stderr)
		}
		return stdout
	}
	contains(t, "deploy v1", must("deploy", img1, "--name", "flaky", "--daemon"), "converged")
	if code, _, stderr := api("rollout", "status", "flaky"); code != 1 || !strings.Contains(stderr, "has had no rollout") {
		t.Fatalf("status before any rollout exited %d: %s", code, stderr)
	}
	codes := steadyLoad(t, []string{gw1 + "/flaky", gw2 + "/flaky"})

	// v2, with checks sized for a test's traffic, through the API.
	cl, err := fclient.New(p.API, p.Token)
	if err != nil {
		t.Fatal(err)
	}
	strat := &v1.RolloutStrategy{Kind: v1.RolloutCanary, Steps: []string{"20%", "50%", "100%"}, Interval: "3s", MaxExtensions: 8,
		Analysis: &v1.RolloutAnalysis{MaxErrorRatio: 1, MaxErrorIncrease: 0.5, MinRequests: 20}}
	if _, _, err := cl.PutDeployment(ctx, "flaky", v1.DeploymentSpec{Image: img2, Daemon: true, Rollout: strat}, fclient.Unconditional()); err != nil {
		t.Fatal(err)
	}
	fermiontest.WaitFor(t, 120*time.Second, func() error {
		ro, err := cl.Rollout(ctx, "flaky")
		if err != nil || !ro.Terminal {
			return fmt.Errorf("rollout of v2 not ended: %+v %v", ro, err)
		}
		return nil
	})
	out := must("rollout", "status", "flaky")
	t.Logf("fermion rollout status flaky:\n%s", out)
	contains(t, "status after the rollback", out, "phase:   rolled_back", "reason:  step 1 failed analysis", "VERDICTS",
		"CHECK", "CANARY", "STABLE", "THRESHOLD", "error_ratio", "fail", "1.00%")
	var ro v1.Rollout
	if err := json.Unmarshal([]byte(must("rollout", "status", "flaky", "-o", "json")), &ro); err != nil || ro.Phase != "rolled_back" || len(ro.Verdicts) == 0 {
		t.Fatalf("rollout status -o json: %+v, %v", ro, err)
	}
	if code, _, stderr := api("rollout", "abort", "flaky"); code != 1 || !strings.Contains(stderr, "has ended (rolled_back)") {
		t.Fatalf("abort of an ended rollout exited %d: %s", code, stderr)
	}
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		d, err := cl.GetDeployment(ctx, "flaky")
		if err != nil || d.Change == nil || d.Change.Cause != v1.CauseRollback {
			return fmt.Errorf("the deployment is not back at v1 yet: %+v %v", d, err)
		}
		return nil
	})
	out = must("history", "flaky")
	t.Logf("fermion history flaky:\n%s", out)
	contains(t, "history after the automatic rollback", out, "rollout rolled_back", "rollout controller")
	t.Logf("during v2: %v", codes())

	// v3 through manual gates, from the CLI.
	out = must("deploy", img3, "--name", "flaky", "--daemon", "--strategy", "canary", "--steps", "20%,manual,100%,manual", "--interval", "3s", "--wait=false")
	contains(t, "deploy v3", out, "rollout started: revision 3 → 4, canary 20%,manual,100%,manual", "fermion rollout status flaky --watch")
	for step := 1; step <= 2; step++ {
		fermiontest.WaitFor(t, 60*time.Second, func() error {
			ro, err := cl.Rollout(ctx, "flaky")
			if err != nil || ro.To.Number != 4 || ro.Phase != "paused" || ro.Step != step-1 {
				return fmt.Errorf("want v3 waiting at gate %d: %+v %v", step, ro, err)
			}
			return nil
		})
		contains(t, "promote", must("rollout", "promote", "flaky", "-m", "looks good"), "revision 4")
	}
	out = must("rollout", "status", "flaky", "--watch")
	contains(t, "watch", out, "succeeded")
	if c := codes(); c[200] == 0 || len(c) != 1 {
		t.Errorf("during v3's rollout: %v, want only 200s", c)
	}
	contains(t, "status after v3", must("status", "flaky"), "3.0.0")
}
