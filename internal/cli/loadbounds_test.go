package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildRefusesUnknownImports: fermion build (and so push) refuses a module that
// imports what the host does not provide, naming each import, and leaves no artifact.
func TestBuildRefusesUnknownImports(t *testing.T) {
	dir := t.TempDir()
	// A module importing env.foo and wasi_experimental_http.req, both () -> ().
	wasm := []byte("\x00asm\x01\x00\x00\x00" +
		"\x01\x04\x01\x60\x00\x00" +
		"\x02\x28\x02" + "\x03env\x03foo\x00\x00" + "\x16wasi_experimental_http\x03req\x00\x00")
	if err := os.WriteFile(filepath.Join(dir, "bad.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	toml := "manifest_version = 1\n[app]\nname = \"bad\"\nversion = \"1.0.0\"\n[component]\nsource = \"bad.wasm\"\n[[routes]]\npath = \"/\"\n"
	if err := os.WriteFile(filepath.Join(dir, "fermion.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, "build", dir, "--cache-dir", t.TempDir())
	if code == 0 {
		t.Fatal("build succeeded")
	}
	for _, want := range []string{"env.foo", "wasi_experimental_http.req", "does not provide"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, ".fermion", "artifact")); err == nil {
		t.Error("a refused build left an artifact")
	}
}

// TestLoadBoundFlags: a bad load bound flag is a usage error naming the flag.
func TestLoadBoundFlags(t *testing.T) {
	for _, tt := range []struct{ flag, want string }{
		{"--max-module-size=lots", "--max-module-size"},
		{"--max-functions=0", "must be greater than 0"},
		{"--compile-timeout=soon", "--compile-timeout"},
	} {
		code, _, stderr := run(t, "run", t.TempDir(), tt.flag, "--no-telemetry")
		if code != 2 || !strings.Contains(stderr, tt.want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q", tt.flag, code, stderr, tt.want)
		}
	}
}
