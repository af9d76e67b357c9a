package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/internal/cli"
	"fermion.dev/fermion/internal/fermiontest"
)

var (
	registryLine = regexp.MustCompile(`(?m)^registry listening on https?://(127\.0\.0\.1:\d+) `)
	digestLine   = regexp.MustCompile(`(?m)^digest (sha256:[0-9a-f]{64})$`)
	keyIDLine    = regexp.MustCompile(`(?m)^key id (sha256:[0-9a-f]{64})$`)
)

// startRegistryServe runs `fermion registry serve` in the background until the test
// ends and returns its host:port.
func startRegistryServe(t *testing.T, pushToken string, extra ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &fermiontest.SyncBuffer{}, &fermiontest.SyncBuffer{}
	done := make(chan int, 1)
	args := append([]string{"registry", "serve", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--push-token", pushToken, "--log-level", "warn"}, extra...)
	go func() { done <- cli.RunContext(ctx, args, stdout, stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("registry serve exited %d\nstderr:\n%s", code, stderr)
			}
		case <-time.After(30 * time.Second):
			t.Error("registry serve did not stop 30s after its context was canceled")
		}
	})
	var host string
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		select {
		case code := <-done:
			done <- code
			t.Fatalf("registry serve exited %d before listening\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		default:
		}
		m := registryLine.FindStringSubmatch(stdout.String())
		if m == nil {
			return fmt.Errorf("no listening line yet in %q", stdout)
		}
		host = m[1]
		return nil
	})
	return host
}

// mustRun runs a command that must succeed and returns its stdout.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := run(t, args...)
	if code != 0 {
		t.Fatalf("fermion %s exited %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout
}

func match(t *testing.T, re *regexp.Regexp, out string) string {
	t.Helper()
	m := re.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("output lacks %s:\n%s", re, out)
	}
	return m[1]
}

// TestArtifactFlow scaffolds, builds, signs, pushes, pulls and inspects an artifact with
// the CLI against the built-in registry, all in-process.
func TestArtifactFlow(t *testing.T) {
	const token = "push-token"
	t.Setenv("FERMION_PASSWORD", "correct horse battery")
	t.Setenv("FERMION_REGISTRY_TOKEN", "")
	host := startRegistryServe(t, token)
	work := t.TempDir()
	dir := filepath.Join(work, "hello")
	cache := t.TempDir()
	mustRun(t, "new", "hello", "--dir", dir)

	// The same sources give the same digest.
	out := mustRun(t, "build", dir, "--cache-dir", cache)
	digest := match(t, digestLine, out)
	if again := match(t, digestLine, mustRun(t, "build", dir, "--cache-dir", cache)); again != digest {
		t.Fatalf("two builds of the same sources: digests %s and %s", digest, again)
	}
	module, err := os.ReadFile(filepath.Join(dir, ".fermion", "artifact", "module.wasm"))
	if err != nil {
		t.Fatal(err)
	}

	keyID := match(t, keyIDLine, mustRun(t, "keys", "generate", "--out", filepath.Join(work, "signing")))
	otherID := match(t, keyIDLine, mustRun(t, "keys", "generate", "--out", filepath.Join(work, "other")))
	if keyID == otherID {
		t.Fatalf("two generated keys have the same id %s", keyID)
	}
	signingKey, signingPub, otherPub := filepath.Join(work, "signing.key"), filepath.Join(work, "signing.pub"), filepath.Join(work, "other.pub")

	ref := host + "/acme/hello:0.1.0"
	out = mustRun(t, "push", ref, "--dir", dir, "--no-build", "--cache-dir", cache, "--sign", signingKey, "--token", token)
	if got := match(t, digestLine, out); got != digest {
		t.Fatalf("pushed digest %s, built %s", got, digest)
	}
	if !strings.Contains(out, "signed with key "+keyID) {
		t.Fatalf("push did not report the signature by %s:\n%s", keyID, out)
	}

	for name, r := range map[string]string{"tag": ref, "digest": host + "/acme/hello@" + digest} {
		t.Run("pull by "+name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "hello.wasm")
			out := mustRun(t, "pull", r, "--verify", signingPub, "-o", file)
			if !strings.Contains(out, "verified signature by key "+keyID) || match(t, digestLine, out) != digest {
				t.Fatalf("pull printed:\n%s", out)
			}
			if b, err := os.ReadFile(file); err != nil || !bytes.Equal(b, module) {
				t.Fatalf("pulled module: %d bytes (%v), built %d", len(b), err, len(module))
			}
		})
	}

	t.Run("inspect", func(t *testing.T) {
		out := mustRun(t, "inspect", ref, "--verify", signingPub)
		for _, want := range []string{"digest     " + digest, "signatures verified by key " + keyID, "artifact   application/vnd.fermion.app.v1", "abi=reactor",
			"max_function_branches  10000     default", "compile_timeout        2m0s      default",
			"snapshot   yes: each node runs _initialize once per version"} {
			if !strings.Contains(out, want) {
				t.Fatalf("inspect lacks %q:\n%s", want, out)
			}
		}
		// Inspect with --verify is a check: it still prints, and fails.
		code, out, stderr := run(t, "inspect", ref, "--verify", otherPub)
		if code != 1 || !strings.Contains(out, "signatures NOT VERIFIED: ") || !strings.Contains(out, "no signature verifies with a trusted key") ||
			!strings.Contains(stderr, "no signature verified") {
			t.Fatalf("inspect with another key exited %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
		}
		if r := fermiontest.RepeatedContext(stderr); r != "" {
			t.Fatalf("inspect's error names %q twice: %s", r, stderr)
		}
	})

	// A signature binds the digest: the artifact reached under another name for the
	// same registry (localhost instead of 127.0.0.1) verifies, as with cosign verify
	// --key, unless the repository must match.
	t.Run("verify under another host name", func(t *testing.T) {
		_, port, err := net.SplitHostPort(host)
		if err != nil {
			t.Fatal(err)
		}
		alias := "localhost:" + port + "/acme/hello:0.1.0"
		out := mustRun(t, "pull", alias, "--verify", signingPub, "-o", filepath.Join(t.TempDir(), "x.wasm"))
		if !strings.Contains(out, "verified signature by key "+keyID) {
			t.Fatalf("pull %s printed:\n%s", alias, out)
		}
		mustRun(t, "inspect", alias, "--verify", signingPub)
		code, stdout, stderr := run(t, "pull", alias, "--verify", signingPub, "--match-repository", "-o", filepath.Join(t.TempDir(), "y.wasm"))
		if code != 1 || !strings.Contains(stderr, "signature is for a different repository") || !strings.Contains(stderr, host+"/acme/hello") {
			t.Fatalf("pull %s --match-repository exited %d\nstdout:\n%s\nstderr:\n%s", alias, code, stdout, stderr)
		}
		code, _, stderr = run(t, "inspect", alias, "--verify", signingPub, "--match-repository")
		if code != 1 || !strings.Contains(stderr, "different repository") {
			t.Fatalf("inspect %s --match-repository exited %d: %s", alias, code, stderr)
		}
	})

	t.Run("pull with another key", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "hello.wasm")
		code, stdout, stderr := run(t, "pull", ref, "--verify", otherPub, "-o", file)
		if code != 1 || !strings.Contains(stderr, "no signature verifies with a trusted key") || !strings.Contains(stderr, host+"/acme/hello") {
			t.Fatalf("pull with an untrusted key exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		t.Logf("refused: %s", stderr)
		if _, err := os.Stat(file); !os.IsNotExist(err) {
			t.Fatalf("a refused pull wrote %s (%v)", file, err)
		}
	})

	t.Run("co-signed", func(t *testing.T) {
		otherKey := filepath.Join(work, "other.key")
		mustRun(t, "push", ref, "--dir", dir, "--no-build", "--cache-dir", cache, "--sign", otherKey, "--token", token)
		out := mustRun(t, "inspect", ref, "--verify", signingPub, "--verify", otherPub)
		if !strings.Contains(out, "signatures verified by key ") || !strings.Contains(out, keyID) || !strings.Contains(out, otherID) {
			t.Fatalf("inspect of a co-signed artifact with both keys names not both signers:\n%s", out)
		}
		var doc struct {
			VerifiedBy []string
			Snapshot   struct{ Result string }
		}
		out = mustRun(t, "inspect", ref, "--json", "--verify", otherPub, "--verify", signingPub)
		if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.VerifiedBy) != 2 || !slices.Contains(doc.VerifiedBy, keyID) || !slices.Contains(doc.VerifiedBy, otherID) {
			t.Fatalf("inspect --json of a co-signed artifact: verifiedBy %v (%v)\n%s", doc.VerifiedBy, err, out)
		}
		if doc.Snapshot.Result != "taken" {
			t.Fatalf("inspect --json: snapshot %+v, want taken", doc.Snapshot)
		}
	})

	t.Run("wrong passphrase", func(t *testing.T) {
		t.Setenv("FERMION_PASSWORD", "wrong")
		code, _, stderr := run(t, "push", ref, "--dir", dir, "--no-build", "--cache-dir", cache, "--sign", signingKey, "--token", token)
		if code != 1 || !strings.Contains(stderr, "wrong passphrase") || !strings.Contains(stderr, "FERMION_PASSWORD") {
			t.Fatalf("push with a wrong passphrase exited %d: %s", code, stderr)
		}
	})

	t.Run("version tags are immutable", func(t *testing.T) {
		toml := filepath.Join(dir, "fermion.toml")
		b, err := os.ReadFile(toml)
		if err != nil {
			t.Fatal(err)
		}
		changed := strings.Replace(string(b), `description = "A Fermion function"`, `description = "Changed"`, 1)
		if changed == string(b) {
			t.Fatalf("the scaffold's description is not where the test expects it:\n%s", b)
		}
		if err := os.WriteFile(toml, []byte(changed), 0o644); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := run(t, "push", ref, "--dir", dir, "--no-build", "--cache-dir", cache, "--token", token)
		if code != 1 || !strings.Contains(stderr, "immutable") || !strings.Contains(stderr, "0.1.0") {
			t.Fatalf("push of other content to 0.1.0 exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		t.Logf("refused: %s", stderr)
		// The tag still names the signed artifact.
		if out := mustRun(t, "pull", ref, "--verify", signingPub, "-o", filepath.Join(t.TempDir(), "x.wasm")); match(t, digestLine, out) != digest {
			t.Fatalf("0.1.0 moved:\n%s", out)
		}
	})
}
