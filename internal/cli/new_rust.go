package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	fermion "fermion.dev/fermion"
	"fermion.dev/fermion/internal/rustbuild"
)

// rustTemplates are the files of `fermion new --lang rust`: a cdylib crate whose
// handler uses the Rust SDK (copied to .fermion/sdk/rust), and its fermion.toml.
var rustTemplates = map[string]string{
	"Cargo.toml": `[package]
name = "{{.Crate}}"
version = "0.1.0"
edition = "2021"
publish = false

# A Fermion function is a cdylib: its exports are the reactor ABI's.
[lib]
crate-type = ["cdylib"]

[dependencies]
fermion = { path = ".fermion/sdk/rust" }

[profile.release]
lto = true
codegen-units = 1
panic = "abort"
strip = "debuginfo"
`,
	"src/lib.rs": `//! {{.Name}} is a Fermion function.

use fermion::{Request, ResponseWriter};

fermion::handler!(handle);

fn handle(w: &mut ResponseWriter, r: &Request) {
    w.header().set("Content-Type", "text/plain; charset=utf-8");
    write!(w, "Hello from {{.Name}}! You asked for {}\n", r.path());
}

#[cfg(test)]
mod tests {
    use super::*;

    // The handler runs natively under cargo test; fermion run serves it in wasm.
    #[test]
    fn greets() {
        let mut w = ResponseWriter::new();
        handle(&mut w, &Request::new("GET", "/{{.Name}}"));
        assert_eq!(w.status(), 200);
        assert_eq!(w.body(), "Hello from {{.Name}}! You asked for /{{.Name}}\n".as_bytes());
    }
}
`,
	"fermion.toml": `manifest_version = 1

[app]
name = "{{.Name}}"
version = "0.1.0"
description = "A Fermion function in Rust"

[component]
source = "{{.Name}}.wasm"

[component.build]
command = {{.Command}}
{{- if .Env}}
env = { {{.Env}} }
{{- end}}

[[routes]]
path = "/{{.Name}}"

[limits]
memory = "64MiB"
timeout = "10s"

[scaling]
min_warm = 1
max_instances = 16
`,
	".gitignore": "target/\n*.wasm\n",
}

// rustReserved are names cargo refuses for a package, or that would clash with the
// SDK's crate.
var rustReserved = map[string]bool{"fermion": true, "test": true, "core": true, "std": true, "alloc": true, "proc-macro": true}

// crateName is the package name for a function: its name, unless cargo would refuse it
// (a leading digit, a reserved name).
func crateName(name string) string {
	if rustReserved[name] || (name != "" && name[0] >= '0' && name[0] <= '9') {
		return "fn-" + name
	}
	return name
}

// scaffoldRust writes a Rust function into dir. The build command names the toolchain
// rustbuild.Find chose; without one it assumes a cargo on PATH with the wasm32-wasip1
// target and says so, so the user learns what to install before the first build.
func scaffoldRust(ctx context.Context, name, dir string, force bool, stderr io.Writer) error {
	if err := checkName(name); err != nil {
		return err
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 && !force {
		return fmt.Errorf("directory %s exists and is not empty; choose another --dir or pass --force", dir)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tc, err := rustbuild.Find(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "warning: %v\nthe build command assumes cargo on PATH with the wasm32-wasip1 target\n", err)
		tc = rustbuild.Toolchain{Target: "wasm32-wasip1", OnPath: true}
	}
	crate := crateName(name)
	var env []string
	for k, v := range tc.Env() {
		env = append(env, k+" = "+strconv.Quote(v))
	}
	sort.Strings(env)
	data := map[string]string{
		"Name":    name,
		"Crate":   crate,
		"Command": strconv.Quote(tc.BuildCommand(crate, name+".wasm")),
		"Env":     strings.Join(env, ", "),
	}
	files := map[string][]byte{}
	for path, text := range rustTemplates {
		var b bytes.Buffer
		if err := template.Must(template.New(path).Parse(text)).Execute(&b, data); err != nil {
			return err
		}
		files[path] = b.Bytes()
	}
	err = fs.WalkDir(fermion.RustSDK, "sdk/rust", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fermion.RustSDK.ReadFile(path)
		files[filepath.Join(".fermion/sdk/rust", strings.TrimPrefix(path, "sdk/rust/"))] = b
		return err
	})
	if err != nil {
		return fmt.Errorf("read embedded rust sdk: %w", err)
	}
	for path, b := range files {
		p := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("create %s: %w", filepath.Dir(p), err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	return nil
}
