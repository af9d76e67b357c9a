package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/cli"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/oci"
)

// serveRegistryOn runs `fermion registry serve` on the store in data and returns its
// host:port and a function that stops it and waits until it has.
func serveRegistryOn(t *testing.T, data, pushToken string) (string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &fermiontest.SyncBuffer{}, &fermiontest.SyncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- cli.RunContext(ctx, []string{"registry", "serve", "--data", data, "--listen", "127.0.0.1:0",
			"--push-token", pushToken, "--log-level", "error"}, stdout, stderr)
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("registry serve did not stop 30s after its context was canceled")
		}
	}
	t.Cleanup(stop)
	var host string
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		m := registryLine.FindStringSubmatch(stdout.String())
		if m == nil {
			return fmt.Errorf("no listening line yet in %q (stderr %q)", stdout, stderr)
		}
		host = m[1]
		return nil
	})
	return host, stop
}

// TestPullCorruptModule damages the registry's stored module on disk: fermion pull
// says the blob is corrupt and that pushing again, not pulling again, is the fix, and
// writes nothing.
func TestPullCorruptModule(t *testing.T) {
	const token = "push-token"
	t.Setenv("FERMION_REGISTRY_TOKEN", "")
	data := t.TempDir()
	host, stop := serveRegistryOn(t, data, token)
	m, err := manifest.Load(filepath.Join(fermiontest.Root(t), "examples", "hello"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := artifact.Package(m, fermiontest.Guest(t, "examples/hello", true), artifact.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := oci.ParseRef(host + "/acme/hello:1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&oci.Client{Token: token}).Push(context.Background(), ref, a); err != nil {
		t.Fatal(err)
	}
	stop()

	needle := a.Layer[len(a.Layer)/2 : len(a.Layer)/2+64]
	found := false
	err = filepath.WalkDir(data, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(p, ".blk") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if i := bytes.Index(b, needle); i >= 0 {
			b[i] ^= 0xff
			found = true
			return os.WriteFile(p, b, 0o600)
		}
		return nil
	})
	if err != nil || !found {
		t.Fatalf("damage the stored module: found %v, %v", found, err)
	}

	host, _ = serveRegistryOn(t, data, token)
	out := filepath.Join(t.TempDir(), "hello.wasm")
	code, _, stderr := run(t, "pull", host+"/acme/hello:1.0.0", "-o", out)
	if code == 0 || !strings.Contains(stderr, "corrupt") || !strings.Contains(stderr, "push the artifact again") ||
		strings.Contains(stderr, "stopped sending") {
		t.Fatalf("pull of a corrupt module exited %d:\n%s", code, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("pull wrote %s for a corrupt module (%v)", out, err)
	}
}
