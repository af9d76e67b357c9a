package rustbuild

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Toolchain is a rustc that can build wasm32 WASI modules, and its cargo.
type Toolchain struct {
	Rustc  string // absolute path
	Cargo  string // absolute path
	Target string // "wasm32-wasip1" (rustc 1.78 and later) or "wasm32-wasi" (before 1.84)
	// OnPath is true when Rustc is the rustc found on PATH, so a plain "cargo" runs it.
	OnPath bool
}

// debianRustc is where Debian's rustc package installs it.
const debianRustc = "/usr/bin/rustc"

// Install is the advice given when no toolchain is found.
const Install = "install Debian's toolchain (apt-get install rustc cargo libstd-rust-dev-wasm32 lld) or add a WASI target to yours (rustup target add wasm32-wasip1)"

// ErrNotFound is returned by Find when no rustc can build wasm32 WASI modules.
var ErrNotFound = errors.New("no Rust toolchain with the wasm32-wasip1 or wasm32-wasi target found; " + Install)

// Find returns the first usable toolchain: the rustc on PATH, then Debian's.
func Find(ctx context.Context) (Toolchain, error) {
	var candidates []string
	pathRustc, _ := exec.LookPath("rustc")
	if pathRustc != "" {
		candidates = append(candidates, pathRustc)
	}
	candidates = append(candidates, debianRustc)
	var tried []string
	for _, rustc := range candidates {
		tc, err := probe(ctx, rustc)
		if err != nil {
			tried = append(tried, err.Error())
			continue
		}
		tc.OnPath = rustc == pathRustc
		return tc, nil
	}
	return Toolchain{}, fmt.Errorf("%w (%s)", ErrNotFound, strings.Join(tried, "; "))
}

// probe checks one rustc: its sysroot must hold a WASI standard library, and a cargo
// must sit beside it.
func probe(ctx context.Context, rustc string) (Toolchain, error) {
	if _, err := os.Stat(rustc); err != nil {
		return Toolchain{}, fmt.Errorf("%s: not installed", rustc)
	}
	out, err := exec.CommandContext(ctx, rustc, "--print", "sysroot").Output()
	if err != nil {
		return Toolchain{}, fmt.Errorf("%s --print sysroot: %v", rustc, err)
	}
	sysroot := strings.TrimSpace(string(out))
	tc := Toolchain{Rustc: rustc}
	for _, target := range []string{"wasm32-wasip1", "wasm32-wasi"} {
		if st, err := os.Stat(filepath.Join(sysroot, "lib", "rustlib", target, "lib")); err == nil && st.IsDir() {
			tc.Target = target
			break
		}
	}
	if tc.Target == "" {
		return Toolchain{}, fmt.Errorf("%s: no wasm32-wasip1 or wasm32-wasi standard library in %s", rustc, sysroot)
	}
	tc.Cargo = filepath.Join(filepath.Dir(rustc), "cargo")
	if _, err := os.Stat(tc.Cargo); err != nil {
		return Toolchain{}, fmt.Errorf("%s: no cargo beside it", rustc)
	}
	return tc, nil
}

// Env is what cargo needs in its environment to use this toolchain's rustc.
func (tc Toolchain) Env() map[string]string {
	if tc.OnPath {
		return nil
	}
	return map[string]string{"RUSTC": tc.Rustc}
}

// BuildCommand is the shell command that builds the crate in the current directory
// and copies its module to out, for a fermion.toml's [component.build]; run it with
// Env added to the environment.
func (tc Toolchain) BuildCommand(crate, out string) string {
	cargo := "cargo"
	if !tc.OnPath {
		cargo = tc.Cargo
	}
	return fmt.Sprintf("%s build --offline --release --target %s && cp target/%s/release/%s.wasm %s",
		cargo, tc.Target, tc.Target, LibName(crate), out)
}

// LibName is the file name cargo gives a crate's library: its name with '_' for '-'.
func LibName(crate string) string { return strings.ReplaceAll(crate, "-", "_") }

// Build builds the crate in dir for the toolchain's WASI target, offline, with its
// build products under targetDir (shared between crates, so a common dependency such
// as the SDK is compiled once), and returns the module's bytes.
func (tc Toolchain) Build(ctx context.Context, dir, targetDir string) ([]byte, error) {
	crate, err := PackageName(filepath.Join(dir, "Cargo.toml"))
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, tc.Cargo, "build", "--offline", "--release", "--quiet", "--target", tc.Target)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RUSTC="+tc.Rustc, "CARGO_TARGET_DIR="+targetDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("cargo build %s: %v\n%s", dir, err, out)
	}
	file := filepath.Join(targetDir, tc.Target, "release", LibName(crate)+".wasm")
	wasm, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read built module: %w (is %s a cdylib?)", err, crate)
	}
	return wasm, nil
}

// PackageName reads [package] name from a Cargo.toml.
func PackageName(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read crate manifest: %w", err)
	}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			section = strings.Trim(line, "[] ")
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if section == "package" && ok && strings.TrimSpace(k) == "name" {
			if name := strings.Trim(strings.TrimSpace(v), `"`); name != "" {
				return name, nil
			}
		}
	}
	return "", fmt.Errorf("%s: no name under [package]", path)
}
