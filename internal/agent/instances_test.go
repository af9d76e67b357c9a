package agent_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/telemetry"
)

// TestTimelinesKeepReplacedVersions: after a redeploy the replaced version's instances
// stay listed (discarded as closed) beside the new version's, under the deployment's
// name; removing the deployment forgets them.
func TestTimelinesKeepReplacedVersions(t *testing.T) {
	if testing.Short() {
		t.Skip("deploys two versions of hello")
	}
	p := startPlane(t)
	m, wasm := example(t, "hello")
	deploy(t, p.dp, m, wasm)
	if status, _ := mustGet(t, p.url+"/hello"); status != 200 {
		t.Fatalf("GET /hello: %d", status)
	}
	deploy(t, p.dp, withVersion(m, "0.2.0", nil), wasm)
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		tls, _ := p.dp.Timelines("hello")
		var old, live int
		for _, tl := range tls {
			if tl.Deployment != "hello" {
				return fmt.Errorf("timeline under %q", tl.Deployment)
			}
			switch {
			case tl.Version == "0.1.0" && tl.DiscardReason == telemetry.ReasonClosed:
				old++
			case tl.Version == "0.2.0" && tl.State != "discarded":
				live++
			}
		}
		if old == 0 || live == 0 {
			return fmt.Errorf("%d closed 0.1.0 and %d live 0.2.0 instances in %+v", old, live, tls)
		}
		return nil
	})
	if other, _ := p.dp.Timelines("echo"); len(other) != 0 {
		t.Errorf("Timelines(echo) = %+v, want none", other)
	}
	if err := p.dp.Remove(context.Background(), "hello"); err != nil {
		t.Fatal(err)
	}
	if tls, _ := p.dp.Timelines(""); len(tls) != 0 {
		t.Errorf("after Remove: %+v, want none", tls)
	}
}
