package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/controlplane/cptest"
	"fermion.dev/fermion/internal/fermiontest"
)

func writeFile(t *testing.T, path, data string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const signedPolicy = `apiVersion: fermion.dev/v1
kind: Policy
metadata:
  name: require-signed
spec:
  target: admission
  mode: %MODE%
  validations:
    - expression: %EXPR%
      messageExpression: '"artifact " + artifact.digest + " has no signature by a trusted key"'
`

func signedPolicyWith(mode, expr string) string {
	return strings.NewReplacer("%MODE%", mode, "%EXPR%", expr).Replace(signedPolicy)
}

func TestPolicyTestExamples(t *testing.T) {
	dir := filepath.Join(fermiontest.Root(t), "examples", "policies")
	code, stdout, stderr := run(t, "policy", "test", dir, "--cases", filepath.Join(dir, "cases"))
	if code != 0 {
		t.Fatalf("exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	contains(t, "stdout", stdout, "RESULT", "EXPECT", "GOT", "unsigned artifact is denied", " 0 failed\n")
	if strings.Contains(stdout, "FAIL") || stderr != "" {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
}

func TestPolicyTestFailures(t *testing.T) {
	dir := t.TempDir()
	pol := writeFile(t, filepath.Join(dir, "policies", "require-signed.yaml"), signedPolicyWith("deny", "artifact.signed"))
	cases := writeFile(t, filepath.Join(dir, "cases", "c.yaml"), `cases:
  - name: unsigned is allowed (wrong)
    target: admission
    input: {artifact: {digest: "sha256:1", signed: false}}
    expect: allow
  - name: signed is allowed
    target: admission
    input: {artifact: {digest: "sha256:1", signed: true}}
    expect: allow
`)
	code, stdout, stderr := run(t, "policy", "test", filepath.Dir(pol), "--cases", cases)
	if code != 1 {
		t.Fatalf("exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	contains(t, "stdout", stdout, "FAIL    unsigned is allowed (wrong)", "allow   deny", "c.yaml:2: policy require-signed: artifact sha256:1 has no signature by a trusted key (mode deny)",
		"ok      signed is allowed", "2 cases, 1 failed")
	contains(t, "stderr", stderr, "fermion: 1 of 2 cases failed")

	// A policy that does not compile: the error and where, no table.
	bad := writeFile(t, filepath.Join(dir, "bad", "p.yaml"), signedPolicyWith("deny", "artifact.signed &&"))
	code, stdout, stderr = run(t, "policy", "test", bad, "--cases", cases)
	if code != 1 || stdout != "" {
		t.Fatalf("exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	contains(t, "stderr", stderr, "p.yaml:9:", "Syntax error", "| artifact.signed &&")

	// Usage mistakes.
	for _, args := range [][]string{{"policy", "test", dir}, {"policy", "test", "--cases", cases}} {
		if code, _, stderr := run(t, args...); code != 2 {
			t.Errorf("%v exited %d: %s", args, code, stderr)
		}
	}
}

// TestPolicyVerbs drives apply, list, violations and delete against a real control
// plane, and deploy through the stages of a policy.
func TestPolicyVerbs(t *testing.T) {
	apiEnv(t)
	p := cptest.Start(t, controlplane.Config{})
	agent, err := cptest.JoinSimAgent(context.Background(), p.NATSURL(), p.NodeToken(t), "edge-1",
		v1.Register{Capacity: v1.Resources{MemoryBytes: 4 << 30, MilliCPU: 2000, Instances: 64}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(agent.Close)
	cptest.WaitNodes(t, p.Server, 1, v1.NodeReady, 10*time.Second)
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
	file := writeFile(t, filepath.Join(dir, "require-signed.yaml"), signedPolicyWith("deny", "artifact.signed"))

	stdout, _ := must("policy", "apply", file, "--mode", "audit")
	contains(t, "apply", stdout, "policy require-signed version 1 created: admission, mode audit")
	stdout, _ = must("policy", "apply", file, "--mode", "audit")
	contains(t, "re-apply", stdout, "policy require-signed version 1 unchanged: admission, mode audit")

	// Two files with the same policy in conflicting modes: nothing is applied.
	conflict := filepath.Join(dir, "conflict")
	writeFile(t, filepath.Join(conflict, "a.yaml"), signedPolicyWith("deny", "artifact.signed"))
	writeFile(t, filepath.Join(conflict, "b.yaml"), signedPolicyWith("warn", "artifact.signed"))
	code, _, stderr := api("policy", "apply", conflict)
	if code != 1 {
		t.Fatalf("conflicting modes: exited %d: %s", code, stderr)
	}
	contains(t, "stderr", stderr, "policy require-signed is given twice with conflicting modes", "a.yaml", "b.yaml", "nothing was applied")
	// A CEL mistake: its position, nothing applied.
	broken := writeFile(t, filepath.Join(dir, "broken", "require-signed.yaml"), signedPolicyWith("deny", `artifact.size == "big"`))
	code, _, stderr = api("policy", "apply", broken)
	if code != 1 {
		t.Fatalf("broken policy: exited %d: %s", code, stderr)
	}
	contains(t, "stderr", stderr, "broken/require-signed.yaml:9:", "no matching overload", "nothing was applied")
	code, _, stderr = api("policy", "apply", file, "--mode", "enforce")
	if code != 2 || !strings.Contains(stderr, `--mode "enforce"`) {
		t.Fatalf("bad mode: exited %d: %s", code, stderr)
	}

	stdout, _ = must("policy", "list")
	contains(t, "list", stdout, "NAME", "require-signed  1        admission  audit", "in force")

	// Audit → warn → deny with deploy.
	image := p.PushExample(t, "hello", "1.0.0", artifact.Meta{})
	stdout, stderr = must("deploy", image, "--wait=false")
	contains(t, "deploy in audit", stdout, "deployment hello created")
	if strings.Contains(stderr, "warning") {
		t.Errorf("audit mode warned: %s", stderr)
	}
	must("policy", "apply", file, "--mode", "warn")
	_, stderr = must("deploy", image, "--wait=false")
	contains(t, "deploy in warn", stderr, "warning: policy require-signed: artifact sha256:", "has no signature by a trusted key (mode warn)")
	stdout, _ = must("policy", "apply", file)
	contains(t, "apply deny", stdout, "policy require-signed version 3 applied: admission, mode deny")
	code, _, stderr = api("deploy", image, "--wait=false")
	if code != 1 {
		t.Fatalf("deploy in deny mode exited %d: %s", code, stderr)
	}
	contains(t, "deploy in deny", stderr, "fermion: denied: policy require-signed: artifact sha256:", "has no signature by a trusted key (mode deny) (policy_denied)", "nothing was written")

	stdout, _ = must("policy", "violations", "--since", "1h", "--policy", "require-signed")
	contains(t, "violations", stdout, "TIME", "POLICY", "require-signed@1  audit", "require-signed@2  warn", "require-signed@3  deny", "admission  hello")
	stdout, _ = must("policy", "violations", "-o", "json")
	contains(t, "violations -o json", stdout, `"type": "policy_denied"`, `"violation": {`)

	stdout, _ = must("policy", "delete", "require-signed")
	contains(t, "delete", stdout, "deleted policy require-signed")
	code, _, stderr = api("policy", "delete", "require-signed")
	if code != 1 || !strings.Contains(stderr, "no policy require-signed (not_found)") {
		t.Fatalf("delete twice: exited %d: %s", code, stderr)
	}
	stdout, _ = must("policy", "list", "-o", "json")
	contains(t, "list after delete", stdout, `"policies": []`)
}
