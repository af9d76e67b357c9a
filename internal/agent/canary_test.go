package agent_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/gateway"
	"fermion.dev/fermion/internal/manifest"
)

const (
	stableBody = "Hello from Fermion!\n"
	canaryBody = "Canary from Fermion!\n"
)

// canaryPlane serves hello 0.1.0 under "web" with 0.2.0 (answering "Canary") loaded
// as its canary at weight (basis points).
func canaryPlane(t *testing.T, weight int, sticky string) (p *servedPlane, m2 *manifest.Manifest, wasm []byte) {
	t.Helper()
	p = startPlane(t)
	m, wasm := example(t, "hello")
	timeout := 30 * time.Second // each plane compiles afresh: far slower under -race
	if raceEnabled {
		timeout = 3 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if _, err := p.dp.DeployAs(ctx, "web", withVersion(m, "0.1.0", nil), wasm); err != nil {
		t.Fatal(err)
	}
	m2 = withVersion(m, "0.2.0", map[string]string{"GREETING": "Canary"})
	fn, err := p.dp.DeployCanary(ctx, "web", m2, wasm, weight, sticky)
	if err != nil {
		t.Fatalf("DeployCanary: %v", err)
	}
	// Warm before it takes any weight: min_warm instances are up when DeployCanary returns.
	if st := fn.Stats(); st.Warm < m2.Scaling.MinWarm || st.Warm == 0 {
		t.Fatalf("canary has %d warm instances after DeployCanary, want min_warm %d", st.Warm, m2.Scaling.MinWarm)
	}
	return p, m2, wasm
}

func sides(t *testing.T, url string, n int) (stable, canary int) {
	t.Helper()
	for range n {
		status, body := mustGet(t, url+"/hello")
		switch {
		case status == http.StatusOK && body == stableBody:
			stable++
		case status == http.StatusOK && body == canaryBody:
			canary++
		default:
			t.Fatalf("GET /hello = %d %q", status, body)
		}
	}
	return stable, canary
}

// TestCanaryWeights: the weight moves traffic at once on every route; 0 keeps the
// canary warm with no traffic, 100 % sends it everything.
func TestCanaryWeights(t *testing.T) {
	p, _, _ := canaryPlane(t, 0, "")
	for _, tc := range []struct {
		weight         int
		stable, canary int // of 100 requests
	}{{0, 100, 0}, {1000, 90, 10}, {5000, 50, 50}, {gateway.MaxWeight, 0, 100}} {
		if err := p.dp.SetCanaryWeight("web", tc.weight, ""); err != nil {
			t.Fatal(err)
		}
		if s, c := sides(t, p.url, 100); s != tc.stable || c != tc.canary {
			t.Fatalf("weight %d: stable %d canary %d of 100, want %d and %d", tc.weight, s, c, tc.stable, tc.canary)
		}
	}
	if fn, w := p.dp.Canary("web"); fn == nil || w != gateway.MaxWeight {
		t.Fatalf("Canary = %v, %d", fn, w)
	}
}

// TestCanaryRefused: a canary of another app, with other routes, out-of-range weight or
// bad stickiness, or without a stable version, is refused and the deployment keeps
// serving as before.
func TestCanaryRefused(t *testing.T) {
	p, m2, wasm := canaryPlane(t, 5000, "")
	echoM, echoWasm := example(t, "echo")
	otherRoutes := *m2
	otherRoutes.Routes = append([]manifest.Route{{Path: "/other"}}, m2.Routes...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name   string
		deploy func() error
		msg    string
	}{
		{"other app", func() error { _, err := p.dp.DeployCanary(ctx, "web", echoM, echoWasm, 100, ""); return err }, "same app"},
		{"other routes", func() error { _, err := p.dp.DeployCanary(ctx, "web", &otherRoutes, wasm, 100, ""); return err }, "same routes"},
		{"weight", func() error { _, err := p.dp.DeployCanary(ctx, "web", m2, wasm, 10001, ""); return err }, "out of range"},
		{"sticky", func() error { _, err := p.dp.DeployCanary(ctx, "web", m2, wasm, 100, "query:x"); return err }, "header:NAME"},
		{"no stable", func() error { _, err := p.dp.DeployCanary(ctx, "nothing", m2, wasm, 100, ""); return err }, "no stable version"},
		{"set weight", func() error { return p.dp.SetCanaryWeight("web", -1, "") }, "out of range"},
		{"set weight no canary", func() error { return p.dp.SetCanaryWeight("nothing", 1, "") }, "no canary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.deploy()
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err %v, want one saying %q", err, tc.msg)
			}
			if s, c := sides(t, p.url, 20); s != 10 || c != 10 {
				t.Fatalf("after the refusal: stable %d canary %d of 20, want the 50 %% split kept", s, c)
			}
		})
	}
}

// TestCanaryRemovalDrains: removing the canary sends new requests to the stable
// version at once, while a request already routed to the canary finishes there; the
// drain waits for it before closing the canary.
func TestCanaryRemovalDrains(t *testing.T) {
	p, _, _ := canaryPlane(t, gateway.MaxWeight, "")
	// A request routed to the canary that is still sending its body.
	pr, pw := io.Pipe()
	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := client.Post(p.url+"/hello", "text/plain", pr)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{resp.StatusCode, string(b), err}
	}()
	if _, err := pw.Write([]byte("part")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() error { return inFlight(p, 1) })

	drain, err := p.dp.RemoveCanary("web")
	if err != nil || drain == nil {
		t.Fatalf("RemoveCanary: %v", err)
	}
	if s, c := sides(t, p.url, 10); s != 10 || c != 0 {
		t.Fatalf("after removal: stable %d canary %d, want every request on stable", s, c)
	}
	drained := make(chan error, 1)
	go func() { drained <- drain(context.Background()) }()
	select {
	case err := <-drained:
		t.Fatalf("drain returned (%v) with a request still in flight on the canary", err)
	case r := <-done:
		t.Fatalf("in-flight request ended early: %+v", r)
	default:
	}
	pw.Close()
	r := <-done
	if r.err != nil || r.status != http.StatusOK || r.body != canaryBody {
		t.Fatalf("in-flight request = %d %q %v, want 200 from the canary", r.status, r.body, r.err)
	}
	if err := <-drained; err != nil {
		t.Fatalf("drain: %v", err)
	}
	if fn, _ := p.dp.Canary("web"); fn != nil {
		t.Fatal("canary still deployed")
	}
}

func inFlight(p *servedPlane, want float64) error {
	if got := testutil.ToFloat64(p.dp.Metrics.InFlight); got != want {
		return fmt.Errorf("%v requests in flight, want %v", got, want)
	}
	return nil
}

// TestCanaryPromotion: promoting makes the canary's warm function the stable one: it
// serves every request with no new instance and no cold start, and the former stable
// version drains.
func TestCanaryPromotion(t *testing.T) {
	p, _, _ := canaryPlane(t, 1000, "")
	canary, _ := p.dp.Canary("web")
	sides(t, p.url, 20) // the canary serves some
	cold := testutil.ToFloat64(p.dp.Metrics.ColdStarts.WithLabelValues("hello", "0.2.0"))
	before := canary.Stats().Total
	drain, err := p.dp.PromoteCanary("web")
	if err != nil {
		t.Fatal(err)
	}
	if s, c := sides(t, p.url, 50); s != 0 || c != 50 {
		t.Fatalf("after promotion: stable %d canary %d, want every request on the promoted version", s, c)
	}
	if got := p.dp.Stable("web"); got != canary {
		t.Fatal("the promoted function is not the canary's: it was started anew")
	}
	if after := canary.Stats().Total; after != before {
		t.Fatalf("instances %d → %d across the promotion, want none started", before, after)
	}
	if got := testutil.ToFloat64(p.dp.Metrics.ColdStarts.WithLabelValues("hello", "0.2.0")); got != cold {
		t.Fatalf("cold starts %v → %v across the promotion", cold, got)
	}
	if err := drain(context.Background()); err != nil {
		t.Fatalf("drain the former stable version: %v", err)
	}
	if fn, _ := p.dp.Canary("web"); fn != nil {
		t.Fatal("a canary is left after promotion")
	}
	if _, err := p.dp.PromoteCanary("web"); err == nil {
		t.Fatal("promoting without a canary succeeded")
	}
}

// TestNodeCanary: a node follows its assignment's canary under a steady loopback load
// without a failed request: the canary starts warm and takes its weight, the weight
// changes, an assignment set with an invalid canary is refused (the node keeps the
// previous one), the canary is promoted without starting anew, and a canary dropped
// from the assignment is removed. The heartbeat status reports both versions.
func TestNodeCanary(t *testing.T) {
	if testing.Short() {
		t.Skip("a node under load through several assignment changes")
	}
	reg := startRegistry(t)
	cp := startControlPlane(t, false)
	helloM, helloWasm := example(t, "hello")
	echoM, echoWasm := example(t, "echo")
	_, vStable := reg.pushApp(t, reg.host, "acme/hello", withVersion(helloM, "0.1.0", nil), helloWasm)
	_, vCanary := reg.pushApp(t, reg.host, "acme/hello", withVersion(helloM, "0.2.0", map[string]string{"GREETING": "Canary"}), helloWasm)
	_, vEcho := reg.pushApp(t, reg.host, "acme/echo", echoM, echoWasm)
	n := startNodeWith(t, cp, "c1", t.TempDir(), joinToken, true)
	web := func(v v1.Version, c *v1.Canary) v1.AssignmentSet {
		a := assignment("web", "c1", 1, v)
		a.Canary = c
		return v1.AssignmentSet{Assignments: []v1.Assignment{a}}
	}
	rev := uint64(0)
	assign := func(set v1.AssignmentSet) {
		rev++
		set.Revision = rev
		cp.assign("c1", set)
	}
	canaryState := func(weight int) func() error {
		return func() error {
			s, ok := n.status("web")
			if !ok || s.Canary == nil || s.Canary.State != v1.InstanceReady || s.Canary.Weight != weight || s.Canary.Instances == 0 || s.Canary.Digest != vCanary.Digest {
				return fmt.Errorf("status %+v, canary %+v: want the canary ready at weight %d", s, s.Canary, weight)
			}
			return nil
		}
	}

	assign(web(vStable, nil))
	waitFor(t, func() error { return serves(n.url+"/hello", stableBody) })
	h := startHammer(t, n.url+"/hello")
	h.waitSeen(t, stableBody, 10)

	assign(web(vStable, &v1.Canary{Version: vCanary, Weight: 50}))
	waitFor(t, canaryState(50))
	h.waitSeen(t, canaryBody, 20)
	h.waitSeen(t, stableBody, 20)

	// Invalid: a canary of another app. Refused whole; the node keeps revision 2.
	assign(web(vStable, &v1.Canary{Version: vEcho, Weight: 50}))
	waitFor(t, func() error {
		if got := n.metric(t, "fermion_agent_assignments_refused_total", "", ""); got != 1 {
			return fmt.Errorf("refused sets %v, want 1", got)
		}
		return nil
	})
	if r, _ := n.Revision(); r != 2 {
		t.Fatalf("revision %d after an invalid set, want 2 kept", r)
	}
	h.waitSeen(t, canaryBody, 10)
	h.waitSeen(t, stableBody, 10)

	assign(web(vStable, &v1.Canary{Version: vCanary, Weight: 100}))
	waitFor(t, canaryState(100))
	canaryFn, _ := n.dp.Canary("web")
	if canaryFn == nil {
		t.Fatal("no canary in the data plane")
	}

	// Promotion: the canary's digest becomes the version, with no canary.
	assign(web(vCanary, nil))
	waitFor(t, func() error {
		s, ok := n.status("web")
		if !ok || s.Digest != vCanary.Digest || s.State != v1.InstanceReady || s.Canary != nil {
			return fmt.Errorf("status %+v, want the promoted version ready and no canary", s)
		}
		return nil
	})
	if got := n.dp.Stable("web"); got != canaryFn {
		t.Fatal("promotion started the version anew instead of reusing the warm canary")
	}
	h.waitSeen(t, canaryBody, 20)

	// A canary added, then dropped: removed and drained.
	assign(web(vCanary, &v1.Canary{Version: vStable, Weight: 10}))
	waitFor(t, func() error {
		if fn, w := n.dp.Canary("web"); fn == nil || w != 1000 {
			return fmt.Errorf("canary %v at %d basis points, want the old version at 1000", fn, w)
		}
		return nil
	})
	h.waitSeen(t, stableBody, 5)
	assign(web(vCanary, nil))
	waitFor(t, func() error {
		if fn, _ := n.dp.Canary("web"); fn != nil {
			return fmt.Errorf("canary %s still deployed", fn.Version())
		}
		if s, _ := n.status("web"); s.Canary != nil {
			return fmt.Errorf("status still reports canary %+v", s.Canary)
		}
		return nil
	})
	failures, ok := h.result()
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed across the canary's life: %q", len(failures), ok+len(failures), failures[:min(5, len(failures))])
	}
	t.Logf("%d requests, none failed", ok)
}
