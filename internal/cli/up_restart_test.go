package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/oci"
)

// TestUpRestartsWithAnotherBuildOfItsExample: up's state outlives the build of its
// example, and a pull of newer sources or another Go toolchain builds the same version
// into another digest. The version tag is immutable, so up keeps the earlier build,
// pushes this one under a tag naming its digest, and serves it.
func TestUpRestartsWithAnotherBuildOfItsExample(t *testing.T) {
	if testing.Short() {
		t.Skip("starts up twice and builds the example")
	}
	t.Setenv("FERMION_HOME", t.TempDir())
	data := t.TempDir()
	root := fermiontest.Root(t)
	args := append([]string{"up", "--data", data, "--agent-listen", "127.0.0.1:0", "--agent-admin-listen", ""}, quietListen...)
	first := startVerb(t, append(args, "--example", "")...)
	registry := first.waitLine(t, regexp.MustCompile(`(?m)^registry (\S+)$`), time.Minute)
	first.waitLine(t, regexp.MustCompile(`(?m)^(ready): `), time.Minute)

	// The earlier build: the same guest with a custom section appended (id 0, size 3,
	// name "x", payload "y"), a valid module with another digest.
	m, err := manifest.Load(filepath.Join(root, "examples", "hello"))
	if err != nil {
		t.Fatal(err)
	}
	wasm := append(append([]byte(nil), fermiontest.Guest(t, "examples/hello", true)...), 0, 3, 1, 'x', 'y')
	a, err := artifact.Package(m, wasm, artifact.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	token, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	oc := &oci.Client{Token: strings.TrimSpace(string(token)), PlainHTTP: true}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := oc.Push(ctx, oci.Ref{Registry: registry, Repo: m.App.Name, Tag: m.App.Version}, a); err != nil {
		t.Fatal(err)
	}
	first.cancel()
	select {
	case code := <-first.done:
		first.done <- code // for the cleanup's wait
	case <-time.After(30 * time.Second):
		t.Fatal("up did not stop 30s after its context was canceled")
	}

	second := startVerb(t, append(args, "--example", filepath.Join(root, "examples", "hello"))...)
	earlier := "sha256:" + a.ManifestDigest.Encoded()[:12]
	second.waitLine(t, regexp.MustCompile(`(?m)^hello:0\.1\.0 holds an earlier build of the example \(`+earlier+`\); pushing this one as (hello:0\.1\.0-[0-9a-f]{12})$`), 3*time.Minute)
	url := second.waitLine(t, answerLine, 3*time.Minute)
	code, body, err := httpGet(url)
	if err != nil || code != 200 || !strings.Contains(body, "Hello") {
		t.Fatalf("GET %s: %d %q %v", url, code, body, err)
	}
}
