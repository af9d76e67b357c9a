package telemetry

import (
	"os/exec"
	"testing"
)

// TestPrometheusRules checks docs/prometheus/fermion-rules.yaml and runs its unit tests
// with promtool, which .ci/run installs (Debian's prometheus package) when it can.
func TestPrometheusRules(t *testing.T) {
	if testing.Short() {
		t.Skip("promtool's unit tests of the alerting rules take seconds of CPU: not in -short")
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not on PATH (apt-get install prometheus); the alerting rules are not checked")
	}
	for _, args := range [][]string{{"check", "rules", "fermion-rules.yaml"}, {"test", "rules", "fermion-rules.test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "../../docs/prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
