package fermiontest

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"fermion.dev/fermion/internal/rustbuild"
)

var (
	rustOnce      sync.Once
	rustTC        rustbuild.Toolchain
	rustErr       error
	rustTargetDir string
)

// RustToolchain returns the Rust toolchain that builds wasm32 WASI modules (see
// package rustbuild), and skips the test when there is none.
func RustToolchain(t testing.TB) rustbuild.Toolchain {
	t.Helper()
	rustOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		rustTC, rustErr = rustbuild.Find(ctx)
	})
	if rustErr != nil {
		t.Skipf("Rust guest: %v", rustErr)
	}
	return rustTC
}

// RustGuest builds the Rust crate in dir (relative to the repository root, for example
// "examples/hello-rust") and returns the module bytes, skipping the test when no Rust
// toolchain can build it, and in -short. Each crate is built once per test binary, all of them into
// one target directory, so the SDK they share is compiled once.
func RustGuest(t testing.TB, dir string) []byte {
	t.Helper()
	if testing.Short() {
		// A cargo build of the SDK and the crate is most of a minute of CPU on a
		// cold target directory: the full suite runs these tests.
		t.Skip("builds a Rust guest with cargo: not in -short")
	}
	tc := RustToolchain(t)
	key := "rust|" + dir
	buildMu.Lock()
	defer buildMu.Unlock()
	if b, ok := built[key]; ok {
		return b
	}
	if rustTargetDir == "" {
		// One directory for every test binary and run: cargo locks it against
		// concurrent builds, and what it built last time makes this build quick.
		rustTargetDir = filepath.Join(os.TempDir(), "fermion-rust-target")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	wasm, err := tc.Build(ctx, filepath.Join(Root(t), dir), rustTargetDir)
	if err != nil {
		t.Fatal(err)
	}
	built[key] = wasm
	return wasm
}
