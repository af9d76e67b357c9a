package cli_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/controlplane/cptest"
)

// TestSLOVerbs drives slo apply, list, status and delete and alerts against a real
// control plane.
func TestSLOVerbs(t *testing.T) {
	apiEnv(t)
	p := cptest.Start(t, controlplane.Config{})
	api := func(args ...string) (int, string, string) {
		t.Helper()
		return run(t, append(args, "--server", p.API, "--token", p.Token)...)
	}
	must := func(args ...string) (string, string) {
		t.Helper()
		code, stdout, stderr := api(args...)
		if code != 0 {
			t.Fatalf("fermion %s exited %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout, stderr)
		}
		return stdout, stderr
	}
	dir := t.TempDir()
	good := writeFile(t, filepath.Join(dir, "hello.yaml"), "name: hello-availability\napp: hello\nsli: availability\nobjective: 99.9\nscope: node\n---\nname: web\nselector: {team: web}\nsli: {kind: latency, threshold: 250ms}\nobjective: 99\n")
	stdout, stderr := must("slo", "apply", "-f", good)
	contains(t, "apply", stdout, "SLO hello-availability version 1: availability 99.9% over 30d, scope node", "SLO web version 1: latency<250ms 99% over 30d")
	contains(t, "apply warnings", stderr, "warning: SLO hello-availability: app hello is not deployed", "team=web matches no deployment")

	bad := writeFile(t, filepath.Join(dir, "bad.yaml"), "name: x\napp: hello\nsli: availability\nobjective: 100\n")
	code, _, stderr := api("slo", "apply", "-f", bad)
	if code != 1 {
		t.Fatalf("bad file: exited %d: %s", code, stderr)
	}
	contains(t, "bad file", stderr, "bad.yaml:4", "below 100 %", "nothing was applied")
	if code, _, stderr := api("slo", "apply"); code != 2 {
		t.Errorf("apply without -f exited %d: %s", code, stderr)
	}

	stdout, _ = must("slo", "list")
	contains(t, "list", stdout, "hello-availability", "{team=web}", "latency<250ms")
	stdout, _ = must("slo", "status", "hello-availability")
	contains(t, "status", stdout, "SLO hello-availability (version 1): availability of hello ≥ 99.9% over 30d, scope node", "no SLIs in the window yet")
	stdout, _ = must("slo", "status", "-o", "json")
	var sts []v1.SLOStatus
	if err := json.Unmarshal([]byte(stdout), &sts); err != nil || len(sts) != 2 {
		t.Fatalf("status -o json: %v\n%s", err, stdout)
	}
	stdout, _ = must("alerts")
	contains(t, "alerts", stdout, "no alerts")
	stdout, _ = must("alerts", "--all", "-o", "json")
	var al v1.AlertList
	if err := json.Unmarshal([]byte(stdout), &al); err != nil || al.Incidents == nil {
		t.Fatalf("alerts -o json: %v\n%s", err, stdout)
	}
	stdout, _ = must("slo", "delete", "web")
	contains(t, "delete", stdout, "deleted SLO web")
	if code, _, stderr := api("slo", "status", "web"); code != 1 || !strings.Contains(stderr, "no SLO web") {
		t.Errorf("status of a deleted SLO exited %d: %s", code, stderr)
	}
	if code, _, stderr := api("events", "--type", "slo_applied"); code != 0 {
		t.Errorf("events --type slo_applied exited %d: %s", code, stderr)
	}
}

// TestSLOServerFlags: the SLO flags of fermion server are checked before anything
// starts.
func TestSLOServerFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--slo-interval", "0s"}, "--slo-interval"},
		{[]string{"--alertmanager", "127.0.0.1:9093"}, "--alertmanager"},
		{[]string{"--alert-webhook", "ftp://x"}, "--alert-webhook"},
	} {
		args := append([]string{"server", "--data", t.TempDir(), "--save-context=false"}, tc.args...)
		code, _, stderr := run(t, args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v exited %d: %s; want a usage error naming %s", tc.args, code, stderr, tc.want)
		}
	}
}
