// Package fermiontest helps tests run Fermion's real parts in-process: it builds the
// example and fault guests with the Go toolchain, and Rust guests with a Rust toolchain
// when there is one (rust.go), once per test binary; finds the
// repository root, waits for conditions without sleeping blindly, and issues TLS
// certificates from a test CA, and runs a real Alertmanager when one is installed.
package fermiontest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildMu  sync.Mutex
	built    = map[string][]byte{}
	buildDir string
)

// Root returns the repository root (the directory holding go.mod).
func Root(t testing.TB) string {
	t.Helper()
	dir, err := rootDir()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// Guest builds the guest in dir (relative to the repository root, for example
// "examples/hello") and returns the module bytes. Reactor guests are built with
// -buildmode=c-shared; command guests without. Each guest is built once per test binary,
// and kept on disk for the next binary and run with the same sources (guestcache.go).
func Guest(t testing.TB, dir string, reactor bool) []byte {
	t.Helper()
	key := fmt.Sprintf("%s|%v", dir, reactor)
	buildMu.Lock()
	defer buildMu.Unlock()
	if b, ok := built[key]; ok {
		return b
	}
	wasm, err := cachedBuildGuest(Root(t), dir, reactor)
	if err != nil {
		t.Fatal(err)
	}
	built[key] = wasm
	return wasm
}

// GuestFile is Guest, written to a file that lives as long as the test binary.
func GuestFile(t testing.TB, dir string, reactor bool) string {
	t.Helper()
	wasm := Guest(t, dir, reactor)
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir == "" {
		d, err := os.MkdirTemp("", "fermion-guests-")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = d
	}
	p := filepath.Join(buildDir, strings.ReplaceAll(dir, "/", "_")+fmt.Sprintf("_%v.wasm", reactor))
	if _, err := os.Stat(p); err != nil {
		if err := os.WriteFile(p, wasm, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// guestBuildFlags are the go build flags every guest is built with; the guest cache's
// key includes them, so changing them never serves a module built the old way.
var guestBuildFlags = []string{"-trimpath", "-buildvcs=false"}

// BuildGuest compiles a guest package with GOOS=wasip1 GOARCH=wasm, reproducibly as
// `fermion build` does (-trimpath -buildvcs=false): the same sources give the same
// module on any checkout, clean or dirty, so a compile cache keyed by the module's
// hash keeps serving it across commits.
func BuildGuest(root, dir string, reactor bool) ([]byte, error) {
	out, err := os.MkdirTemp("", "fermion-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(out)
	file := filepath.Join(out, "guest.wasm")
	args := append([]string{"build"}, guestBuildFlags...)
	args = append(args, "-o", file)
	if reactor {
		args = append(args, "-buildmode=c-shared")
	}
	args = append(args, "./"+filepath.ToSlash(dir))
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build guest %s: %v\n%s", dir, err, b)
	}
	return os.ReadFile(file)
}

// WaitFor polls cond every 10ms until it returns nil or timeout passes, then fails the
// test with cond's last error.
func WaitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
