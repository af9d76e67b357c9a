package cli_test

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestPushPullProgress pushes and pulls a Go guest's module (about 2.5 MB, over the
// 1 MiB threshold) with standard error a pipe, not a terminal: progress comes as
// lines at each quarter and a last line with the total and the time, on standard
// error, while standard output keeps only the results.
func TestPushPullProgress(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a guest")
	}
	const token = "push-token"
	t.Setenv("FERMION_REGISTRY_TOKEN", "")
	host := startRegistryServe(t, token)
	dir := filepath.Join(t.TempDir(), "hello")
	cache := t.TempDir()
	mustRun(t, "new", "hello", "--dir", dir)
	ref := host + "/acme/hello:0.1.0"
	code, out, errOut := run(t, "push", ref, "--dir", dir, "--cache-dir", cache, "--token", token)
	if code != 0 {
		t.Fatalf("push: %d\n%s\n%s", code, out, errOut)
	}
	checkProgress(t, "pushing", errOut)
	if strings.Contains(out, "pushing module") {
		t.Errorf("progress on standard output:\n%s", out)
	}
	code, out, errOut = run(t, "pull", ref, "-o", filepath.Join(t.TempDir(), "hello.wasm"))
	if code != 0 {
		t.Fatalf("pull: %d\n%s\n%s", code, out, errOut)
	}
	checkProgress(t, "pulling", errOut)
}

func checkProgress(t *testing.T, verb, stderr string) {
	t.Helper()
	partial := regexp.MustCompile(`(?m)^` + verb + ` module sha256:[0-9a-f]{12}: [0-9.]+MiB / ([0-9.]+MiB) \((\d+)%\)$`)
	final := regexp.MustCompile(`(?m)^` + verb + ` module sha256:[0-9a-f]{12}: ([0-9.]+MiB) / ([0-9.]+MiB) \(100%\) in \S+$`)
	lines := partial.FindAllStringSubmatch(stderr, -1)
	if len(lines) < 2 || len(lines) > 3 {
		t.Errorf("%d %s lines at the quarters, want 2 or 3 (25%%, 50%%, 75%%; a read may cross two):\n%s", len(lines), verb, stderr)
	}
	if strings.Contains(stderr, "\r") {
		t.Errorf("a terminal's redraws in a pipe:\n%q", stderr)
	}
	m := final.FindStringSubmatch(stderr)
	if m == nil || m[1] != m[2] {
		t.Fatalf("no final %s line with the whole size:\n%s", verb, stderr)
	}
}
