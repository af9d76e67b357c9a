package agent_test

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/telemetry"
)

// TestNodeLoadFailureIsolated: an assignment whose module the sandbox refuses (here its
// memory limit is below what the module declares) is reported failed with its reason,
// counted, and retried with backoff, never in a loop; the node's other deployment serves
// throughout and the node stays ready.
func TestNodeLoadFailureIsolated(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane, a registry and a node")
	}
	reg := startRegistry(t)
	cp := startControlPlane(t, false)
	helloM, helloWasm := example(t, "hello")
	echoM, echoWasm := example(t, "echo")
	_, vHello := reg.pushApp(t, reg.host, "acme/hello", helloM, helloWasm)
	small := *echoM
	small.Limits.MemoryBytes = 1 << 20 // the least a manifest may ask: below the module's declared minimum
	_, vBad := reg.pushApp(t, reg.host, "acme/echo", &small, echoWasm)
	n := startNodeWith(t, cp, "n1", t.TempDir(), joinToken, true)

	assigned := time.Now()
	cp.assign("n1", v1.AssignmentSet{Revision: 1, Assignments: []v1.Assignment{
		assignment("web", "n1", 1, vHello),
		assignment("api", "n1", 1, vBad),
	}})
	waitFor(t, func() error { return serves(n.url+"/hello", hello1) })
	reported(t, cp, "n1", "web", v1.InstanceReady, vHello, 1)
	s := reported(t, cp, "n1", "api", v1.InstanceFailed, vBad, 1)
	if !strings.HasPrefix(s.LastError, telemetry.LoadModule+": start echo@0.1.0 from "+vBad.Repository) || !strings.Contains(s.LastError, "raise limits.memory") {
		t.Fatalf("reported lastError %q, want the reason (module) first, then what failed and how to fix it", s.LastError)
	}
	if err := n.Ready(); err != nil {
		t.Fatalf("Ready() = %v: a deployment that cannot load must not hold the node's readiness", err)
	}
	if status, _ := mustGet(t, n.url+"/echo"); status != 404 {
		t.Fatalf("GET /echo = %d, want 404: it never loaded", status)
	}

	// Retried: the failures are counted, by reason.
	waitFor(t, func() error {
		if got := n.metric(t, "fermion_load_failures_total", "reason", telemetry.LoadModule); got < 2 {
			return fmt.Errorf("%v module load failures, want a retry", got)
		}
		return nil
	})
	// ... but with backoff: the waits after failures 1, 2, 3… are at least 0.25 s, 0.5 s,
	// 1 s…, so by elapsed time T no more than log2(4T+1) failures can have happened (a
	// slow machine only makes fewer).
	failed := n.metric(t, "fermion_agent_reconciles_total", "result", "failed")
	elapsed := time.Since(assigned).Seconds()
	if most := math.Floor(math.Log2(4*elapsed+1)) + 1; failed > most {
		t.Fatalf("%v failed attempts in %.1fs: more than backoff allows (%v)", failed, elapsed, most)
	}
	if err := serves(n.url+"/hello", hello1); err != nil {
		t.Fatalf("a deployment that cannot load disturbed another: %v", err)
	}
	for _, r := range []string{telemetry.LoadPull, telemetry.LoadRejected, telemetry.LoadRoutes} {
		if got := n.metric(t, "fermion_load_failures_total", "reason", r); got != 0 {
			t.Fatalf("fermion_load_failures_total{reason=%q} = %v, want 0", r, got)
		}
	}
}
