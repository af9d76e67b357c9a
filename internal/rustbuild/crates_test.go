package rustbuild

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestCrateUnitTests runs the Rust SDK's own tests and the examples' with cargo test,
// natively, so the Go suite covers the SDK's decoding, headers and outbound results
// (sdk/rust/src/tests.rs) wherever a toolchain is installed.
func TestCrateUnitTests(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the Rust SDK natively")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tc, err := Find(ctx)
	if err != nil {
		t.Skipf("Rust: %v", err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"sdk/rust", "examples/hello-rust"} {
		t.Run(dir, func(t *testing.T) {
			cmd := exec.CommandContext(ctx, tc.Cargo, "test", "--offline", "--quiet")
			cmd.Dir = filepath.Join(root, dir)
			cmd.Env = append(os.Environ(), "RUSTC="+tc.Rustc, "RUSTDOC="+filepath.Join(filepath.Dir(tc.Rustc), "rustdoc"),
				"CARGO_TARGET_DIR="+filepath.Join(os.TempDir(), "fermion-rust-target"))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("cargo test in %s: %v\n%s", dir, err, out)
			}
		})
	}
}
