package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/rustbuild"
)

// The Rust targets' names, as printed and as printBudgets finds them.
const (
	rustOnName   = "fermion, hello-rust (telemetry on)"
	rustOffName  = "fermion, hello-rust (telemetry off)"
	rustBareName = "bare wazero, hello-rust"
)

// rustTargets serves examples/hello-rust (the Rust SDK, sdk/rust) through Fermion with
// telemetry on and off, and from the bare wazero prototype with bare. It answers
// hello's body, so it runs under hello's manifest (limits, warm instances) and is
// compared with the same native handler. The crate is built with the toolchain
// rustbuild finds (Debian's when a rustup one without wasm targets is first on PATH).
func rustTargets(root string, m *manifest.Manifest, bare bool, conns int, logw io.Writer) ([]target, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tc, err := rustbuild.Find(ctx)
	if err != nil {
		return nil, fmt.Errorf("-rust: %w", err)
	}
	wasm, err := tc.Build(ctx, filepath.Join(root, "examples", "hello-rust"), filepath.Join(os.TempDir(), "fermion-rust-target"))
	if err != nil {
		return nil, fmt.Errorf("-rust: %w", err)
	}
	on, err := fermionTarget(rustOnName, m, wasm, true, logw, "", "")
	if err != nil {
		return nil, err
	}
	off, err := fermionTarget(rustOffName, m, wasm, false, logw, "", "")
	if err != nil {
		on.close()
		return nil, err
	}
	ts := []target{on, off}
	if bare {
		bt, err := bareTarget(rustBareName, wasm, conns)
		if err != nil {
			on.close()
			off.close()
			return nil, err
		}
		ts = append(ts, bt)
	}
	return ts, nil
}
