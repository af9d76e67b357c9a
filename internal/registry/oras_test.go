package registry

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestOras pushes and pulls with the oras CLI, when it is on PATH
// (go install oras.land/oras/cmd/oras@v1.3.6).
func TestOras(t *testing.T) {
	oras, err := exec.LookPath("oras")
	if err != nil {
		t.Skip("oras is not on PATH")
	}
	tr := startRegistry(t, "", Config{PushTokens: []string{testPushToken}, PullTokens: []string{testPullToken}})
	ref := strings.TrimPrefix(tr.srv.URL, "http://") + "/fermion/hello"
	home := t.TempDir() // oras must not read or write the user's credentials
	run := func(dir, token string, args ...string) (string, error) {
		t.Helper()
		args = append(args, "--plain-http", "-u", "x", "-p", token)
		cmd := exec.Command(oras, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "HOME="+home, "DOCKER_CONFIG="+filepath.Join(home, ".docker"))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err != nil {
			return stdout.String() + stderr.String(), err
		}
		return stdout.String(), nil
	}
	must := func(dir, token string, args ...string) string {
		t.Helper()
		out, err := run(dir, token, args...)
		if err != nil {
			t.Fatalf("oras %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	src := t.TempDir()
	data := randomBytes(t, 300_000)
	if err := os.WriteFile(filepath.Join(src, "hello.wasm"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	must(src, testPushToken, "push", ref+":1.0.0", "hello.wasm:application/wasm", "--artifact-type", "application/vnd.fermion.function")

	dst := t.TempDir()
	must(dst, testPullToken, "pull", ref+":1.0.0", "-o", dst)
	got, err := os.ReadFile(filepath.Join(dst, "hello.wasm"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("pulled %d bytes (%v), pushed %d", len(got), err, len(data))
	}

	if out := must(dst, testPullToken, "repo", "tags", ref); strings.TrimSpace(out) != "1.0.0" {
		t.Fatalf("oras repo tags: %q", out)
	}

	// Referrers: attach a signature and discover it.
	if err := os.WriteFile(filepath.Join(src, "sig.txt"), []byte("signed"), 0o644); err != nil {
		t.Fatal(err)
	}
	must(src, testPushToken, "attach", ref+":1.0.0", "sig.txt:text/plain", "--artifact-type", "application/vnd.fermion.signature")
	if out := must(dst, testPullToken, "discover", ref+":1.0.0", "--format", "json"); !strings.Contains(out, "application/vnd.fermion.signature") {
		t.Fatalf("oras discover does not list the signature:\n%s", out)
	}

	// The version tag is immutable: a different artifact under 1.0.0 is refused.
	if err := os.WriteFile(filepath.Join(src, "hello.wasm"), []byte("other"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(src, testPushToken, "push", ref+":1.0.0", "hello.wasm:application/wasm")
	if err == nil || !strings.Contains(out, "immutable") {
		t.Fatalf("re-push of 1.0.0 with other content: %v\n%s", err, out)
	}
	// A pull token cannot push.
	if out, err := run(src, testPullToken, "push", ref+":2.0.0", "hello.wasm:application/wasm"); err == nil {
		t.Fatalf("push with a pull token succeeded:\n%s", out)
	}
}
