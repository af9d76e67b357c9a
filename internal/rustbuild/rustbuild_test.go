package rustbuild

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeRustc writes an executable rustc into dir/bin that prints a sysroot holding the
// given targets' standard libraries, and, with cargo, a cargo beside it.
func fakeRustc(t *testing.T, dir string, cargo bool, targets ...string) string {
	t.Helper()
	sysroot := filepath.Join(dir, "sysroot")
	for _, target := range targets {
		if err := os.MkdirAll(filepath.Join(sysroot, "lib", "rustlib", target, "lib"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	rustc := filepath.Join(bin, "rustc")
	if err := os.WriteFile(rustc, []byte("#!/bin/sh\necho "+sysroot+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if cargo {
		if err := os.WriteFile(filepath.Join(bin, "cargo"), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return rustc
}

func TestProbe(t *testing.T) {
	tests := []struct {
		name       string
		targets    []string
		cargo      bool
		wantTarget string
		wantErr    string
	}{
		{name: "debian", targets: []string{"wasm32-wasi", "wasm32-unknown-unknown"}, cargo: true, wantTarget: "wasm32-wasi"},
		{name: "rustup with wasip1", targets: []string{"wasm32-wasip1", "x86_64-unknown-linux-gnu"}, cargo: true, wantTarget: "wasm32-wasip1"},
		{name: "both prefer wasip1", targets: []string{"wasm32-wasi", "wasm32-wasip1"}, cargo: true, wantTarget: "wasm32-wasip1"},
		{name: "no wasm target", targets: []string{"x86_64-unknown-linux-gnu"}, cargo: true, wantErr: "no wasm32-wasip1 or wasm32-wasi standard library"},
		{name: "no cargo", targets: []string{"wasm32-wasi"}, wantErr: "no cargo beside it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rustc := fakeRustc(t, t.TempDir(), tt.cargo, tt.targets...)
			tc, err := probe(context.Background(), rustc)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.Target != tt.wantTarget || tc.Rustc != rustc || tc.Cargo != filepath.Join(filepath.Dir(rustc), "cargo") {
				t.Fatalf("got %+v", tc)
			}
		})
	}
	if _, err := probe(context.Background(), filepath.Join(t.TempDir(), "rustc")); err == nil || !strings.Contains(err.Error(), "not installed") {
		t.Fatalf("missing rustc: %v", err)
	}
}

func TestFindPrefersPath(t *testing.T) {
	rustc := fakeRustc(t, t.TempDir(), true, "wasm32-wasip1")
	t.Setenv("PATH", filepath.Dir(rustc))
	tc, err := Find(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if tc.Rustc != rustc || !tc.OnPath || tc.Env() != nil {
		t.Fatalf("got %+v, env %v", tc, tc.Env())
	}
	if got, want := tc.BuildCommand("my-fn", "my-fn.wasm"), "cargo build --offline --release --target wasm32-wasip1 && cp target/wasm32-wasip1/release/my_fn.wasm my-fn.wasm"; got != want {
		t.Fatalf("command %q, want %q", got, want)
	}
}

func TestFindNothing(t *testing.T) {
	if _, err := os.Stat(debianRustc); err == nil {
		t.Skip("Debian's rustc is installed")
	}
	t.Setenv("PATH", t.TempDir())
	_, err := Find(context.Background())
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "apt-get install") {
		t.Fatalf("err %v, want ErrNotFound with install advice", err)
	}
}

func TestExplicitToolchain(t *testing.T) {
	tc := Toolchain{Rustc: "/usr/bin/rustc", Cargo: "/usr/bin/cargo", Target: "wasm32-wasi"}
	if got, want := tc.BuildCommand("hello", "hello.wasm"), "/usr/bin/cargo build --offline --release --target wasm32-wasi && cp target/wasm32-wasi/release/hello.wasm hello.wasm"; got != want {
		t.Fatalf("command %q, want %q", got, want)
	}
	if env := tc.Env(); env["RUSTC"] != "/usr/bin/rustc" {
		t.Fatalf("env %v does not name the rustc", env)
	}
}

func TestPackageName(t *testing.T) {
	tests := []struct{ name, toml, want, wantErr string }{
		{name: "plain", toml: "[package]\nname = \"hello-rust\"\nversion = \"0.1.0\"\n", want: "hello-rust"},
		{name: "lib name first", toml: "[lib]\nname = \"other\"\n[package]\nname = \"pkg\"\n", want: "pkg"},
		{name: "spaces", toml: "[ package ]\n  name=\"x\"\n", want: "x"},
		{name: "missing", toml: "[dependencies]\nname = \"no\"\n", wantErr: "no name under [package]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "Cargo.toml")
			if err := os.WriteFile(p, []byte(tt.toml), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := PackageName(p)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q %v, want %q", got, err, tt.want)
			}
		})
	}
}
