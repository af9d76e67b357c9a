package cli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"fermion.dev/fermion/internal/fermiontest"
)

// TestNewRustThenRun is the README's Rust loop: fermion new --lang rust, then fermion
// run . builds the crate with the command new wrote and serves it.
func TestNewRustThenRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Rust crate from scratch")
	}
	tc := fermiontest.RustToolchain(t)
	dir := filepath.Join(t.TempDir(), "hello-rs")
	code, stdout, stderr := run(t, "new", "hello-rs", "--lang", "rust", "--dir", dir)
	if code != 0 {
		t.Fatalf("new --lang rust exited %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "created hello-rs in "+dir) || !strings.Contains(stdout, "fermion run .") {
		t.Fatalf("new printed %q", stdout)
	}
	for _, f := range []string{"Cargo.toml", "src/lib.rs", "fermion.toml", ".gitignore", ".fermion/sdk/rust/Cargo.toml", ".fermion/sdk/rust/src/lib.rs", ".fermion/sdk/rust/src/outbound.rs"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("new did not write %s: %v", f, err)
		}
	}
	toml, _ := os.ReadFile(filepath.Join(dir, "fermion.toml"))
	if want := "build --offline --release --target " + tc.Target; !strings.Contains(string(toml), want) {
		t.Fatalf("fermion.toml does not build with %q:\n%s", want, toml)
	}

	// The template's own test runs natively with the same toolchain.
	test := exec.Command(tc.Cargo, "test", "--offline", "--quiet")
	test.Dir = dir
	test.Env = append(os.Environ(), "RUSTC="+tc.Rustc, "RUSTDOC="+filepath.Join(filepath.Dir(tc.Rustc), "rustdoc"))
	if out, err := test.CombinedOutput(); err != nil {
		t.Fatalf("cargo test: %v\n%s", err, out)
	}

	s := startRun(t, false, dir, "--listen", "127.0.0.1:0", "--admin-listen", "", "--cache-dir", t.TempDir())
	r := get(t, s.gateway+"/hello-rs")
	if r.status != 200 || r.body != "Hello from hello-rs! You asked for /hello-rs\n" {
		t.Fatalf("GET /hello-rs = %d %q", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Fatalf("Content-Type %q", ct)
	}
}

// TestNewRustNames: a function name cargo would refuse as a package name gets a
// prefixed crate; the function, its route and its module keep the name.
func TestNewRustNames(t *testing.T) {
	tests := []struct{ name, crate string }{
		{"hello", "hello"},
		{"1st", "fn-1st"},
		{"fermion", "fn-fermion"},
		{"test", "fn-test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "fn")
			if code, _, stderr := run(t, "new", tt.name, "--lang", "rust", "--dir", dir); code != 0 {
				t.Fatalf("new exited %d: %s", code, stderr)
			}
			cargo, _ := os.ReadFile(filepath.Join(dir, "Cargo.toml"))
			if !strings.Contains(string(cargo), `name = "`+tt.crate+`"`) {
				t.Fatalf("Cargo.toml does not name the crate %q:\n%s", tt.crate, cargo)
			}
			toml, _ := os.ReadFile(filepath.Join(dir, "fermion.toml"))
			lib := strings.ReplaceAll(tt.crate, "-", "_")
			if !strings.Contains(string(toml), "release/"+lib+".wasm "+tt.name+".wasm") || !strings.Contains(string(toml), `path = "/`+tt.name+`"`) {
				t.Fatalf("fermion.toml does not build %s.wasm into %s.wasm or route /%s:\n%s", lib, tt.name, tt.name, toml)
			}
		})
	}
	t.Run("bad name", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "fn")
		code, _, stderr := run(t, "new", "Bad_Name", "--lang", "rust", "--dir", dir)
		if code != 2 || !strings.Contains(stderr, "is not a valid name") {
			t.Fatalf("exited %d: %s", code, stderr)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Fatalf("new created %s", dir)
		}
	})
	t.Run("http-api is Go's", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "fn")
		code, _, stderr := run(t, "new", "x", "--lang", "rust", "--http-api", "net/http", "--dir", dir)
		if code != 2 || !strings.Contains(stderr, "does not apply to --lang rust") {
			t.Fatalf("exited %d: %s", code, stderr)
		}
	})
	t.Run("non-empty directory needs --force", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "keep"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := run(t, "new", "x", "--lang", "rust", "--dir", dir)
		if code != 1 || !strings.Contains(stderr, "--force") {
			t.Fatalf("exited %d: %s", code, stderr)
		}
	})
}

// TestRustWithoutHandler: a crate that never calls fermion::handler! exports none of
// the ABI; fermion build says so and how to fix it, for Rust as well as Go.
func TestRustWithoutHandler(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Rust crate from scratch")
	}
	fermiontest.RustToolchain(t)
	dir := filepath.Join(t.TempDir(), "nohandler")
	if code, _, stderr := run(t, "new", "nohandler", "--lang", "rust", "--dir", dir); code != 0 {
		t.Fatalf("new exited %d: %s", code, stderr)
	}
	lib := "pub fn unused() -> u32 { 1 }\n"
	if err := os.WriteFile(filepath.Join(dir, "src", "lib.rs"), []byte(lib), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, "build", dir, "--cache-dir", t.TempDir())
	if code != 1 || !strings.Contains(stderr, "neither the reactor ABI") || !strings.Contains(stderr, "fermion::handler!") {
		t.Fatalf("build exited %d: %s", code, stderr)
	}
}
