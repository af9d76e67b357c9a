package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"text/template"

	"github.com/spf13/cobra"

	fermion "fermion.dev/fermion"
	"fermion.dev/fermion/internal/manifest"
)

func newNewCmd() *cobra.Command {
	var lang, api, dir string
	var force bool
	c := &cobra.Command{
		Use:   "new NAME",
		Short: "Scaffold a function: guest code, fermion.toml and a vendored guest SDK",
		Long: `New writes a function directory that builds offline: a Go handler using the
Fermion guest SDK with a test for it (go test runs it natively), its fermion.toml, a
go.mod, and the SDK sources under .fermion/sdk (go.mod points there with a replace
directive).

The handler uses the SDK's fhttp API by default: net/http's shapes without linking
net/http, which keeps the module near 3 MB and its instances quick to start. With
--http-api net/http it is an ordinary net/http handler instead, for code that needs
net/http's own types (a 5 MB module that starts about twice as slowly).

With --lang rust it is a Rust crate (a cdylib) using the Rust SDK, copied under
.fermion/sdk/rust, with no other dependency: cargo builds it offline. The build command
in fermion.toml names the Rust toolchain found with a wasm32 WASI target (the rustc on
PATH, else Debian's /usr/bin/rustc).`,
		Example: `  fermion new hello --lang go
  fermion new hello --lang rust
  fermion new legacy --http-api net/http
  cd hello && fermion run .`,
		Args: exactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			name := args[0]
			if dir == "" {
				dir = name
			}
			if lang == "rust" { // new_rust.go
				if c.Flags().Changed("http-api") {
					return usageError{fmt.Errorf("--http-api chooses between the Go SDK's APIs; it does not apply to --lang rust")}
				}
				if err := scaffoldRust(c.Context(), name, dir, force, c.ErrOrStderr()); err != nil {
					return err
				}
				fmt.Fprintf(c.OutOrStdout(), "created %s in %s\nnext: cd %s && fermion run .\n", name, dir, dir)
				return nil
			}
			if lang != "go" {
				return usageError{fmt.Errorf("language %q is not supported; supported: go, rust", lang)}
			}
			handler, ok := apiTemplates[api]
			if !ok {
				return usageError{fmt.Errorf("--http-api %q is not supported; supported: fhttp, net/http", api)}
			}
			if err := scaffold(name, dir, handler, force); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "created %s in %s\nnext: cd %s && fermion run .\n", name, dir, dir)
			return nil
		},
	}
	c.Flags().StringVar(&lang, "lang", "go", "guest language: go or rust")
	c.Flags().StringVar(&api, "http-api", "fhttp", "the SDK's handler API: fhttp (no net/http linked) or net/http")
	c.Flags().StringVar(&dir, "dir", "", "directory to create (default: NAME)")
	c.Flags().BoolVar(&force, "force", false, "write into an existing non-empty directory")
	return c
}

// apiTemplates are the scaffold's handler and its test, by --http-api.
var apiTemplates = map[string]map[string]string{
	"fhttp": {
		"main.go": `// Command {{.Name}} is a Fermion function.
package main

import (
	"fmt"

	http "fermion.dev/fermion/sdk/fhttp"
)

// Handlers are registered in init: a reactor module's main is never called.
func init() { http.HandleFunc(handle) }

func handle(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "Hello from {{.Name}}! You asked for %s\n", r.URL.Path)
}

func main() {}
`,
		"main_test.go": `package main

import (
	"testing"

	"fermion.dev/fermion/sdk/fhttp/fhttptest"
)

// The handler runs natively under go test; fermion run serves it in wasm.
func TestHandle(t *testing.T) {
	w := fhttptest.NewRecorder()
	handle(w, fhttptest.NewRequest("GET", "/{{.Name}}", nil))
	if want := "Hello from {{.Name}}! You asked for /{{.Name}}\n"; w.Code != 200 || w.Body.String() != want {
		t.Fatalf("got %d %q, want 200 %q", w.Code, w.Body, want)
	}
}
`,
	},
	"net/http": {
		"main.go": `// Command {{.Name}} is a Fermion function.
package main

import (
	"fmt"
	"net/http"

	"fermion.dev/fermion/sdk/fermion"
)

// Handlers are registered in init: a reactor module's main is never called.
func init() { fermion.HandleFunc(handle) }

func handle(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "Hello from {{.Name}}! You asked for %s\n", r.URL.Path)
}

func main() {}
`,
		"main_test.go": `package main

import (
	"net/http/httptest"
	"testing"
)

// The handler runs natively under go test; fermion run serves it in wasm.
func TestHandle(t *testing.T) {
	w := httptest.NewRecorder()
	handle(w, httptest.NewRequest("GET", "/{{.Name}}", nil))
	if want := "Hello from {{.Name}}! You asked for /{{.Name}}\n"; w.Code != 200 || w.Body.String() != want {
		t.Fatalf("got %d %q, want 200 %q", w.Code, w.Body, want)
	}
}
`,
	},
}

var scaffoldFiles = map[string]string{
	"fermion.toml": `manifest_version = 1

[app]
name = "{{.Name}}"
version = "0.1.0"
description = "A Fermion function"

[component]
source = "{{.Name}}.wasm"

[component.build]
command = "go build -buildmode=c-shared -o {{.Name}}.wasm ."
env = { GOOS = "wasip1", GOARCH = "wasm" }

[[routes]]
path = "/{{.Name}}"

[limits]
memory = "64MiB"
timeout = "10s"

[scaling]
min_warm = 1
max_instances = 16
`,
	"go.mod": `module {{.Name}}

go 1.24

require fermion.dev/fermion v0.0.0

replace fermion.dev/fermion => ./.fermion/sdk
`,
	".gitignore":          "*.wasm\n",
	".fermion/sdk/go.mod": "module fermion.dev/fermion\n\ngo 1.24\n",
}

// checkName validates a function name the same way the manifest will, by rendering and
// parsing the scaffold's fermion.toml. The name is escaped for TOML there, so that a name
// with quotes or control characters gets the manifest's advice on names rather than a
// TOML syntax error.
func checkName(name string) error {
	quoted, err := json.Marshal(name) // a JSON string body is a valid TOML basic string body
	if err != nil {
		return usageError{fmt.Errorf("function name %q: %v", name, err)}
	}
	var toml bytes.Buffer
	data := map[string]string{"Name": string(quoted[1 : len(quoted)-1])}
	if err := template.Must(template.New("").Parse(scaffoldFiles["fermion.toml"])).Execute(&toml, data); err != nil {
		return err
	}
	_, err = manifest.Parse(manifest.FileName, toml.Bytes(), "")
	if err == nil {
		return nil
	}
	var me *manifest.Error
	if errors.As(err, &me) {
		for _, p := range me.Problems {
			if p.Field == "app.name" {
				return usageError{fmt.Errorf("function name: %s", p.Msg)}
			}
		}
	}
	return usageError{fmt.Errorf("function name %q: %v", name, err)}
}

func scaffold(name, dir string, handler map[string]string, force bool) error {
	if err := checkName(name); err != nil {
		return err
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 && !force {
		return fmt.Errorf("directory %s exists and is not empty; choose another --dir or pass --force", dir)
	}
	files := map[string][]byte{}
	templates := maps.Clone(scaffoldFiles)
	maps.Copy(templates, handler)
	for path, text := range templates {
		var b bytes.Buffer
		if err := template.Must(template.New(path).Parse(text)).Execute(&b, map[string]string{"Name": name}); err != nil {
			return err
		}
		files[path] = b.Bytes()
	}
	err := fs.WalkDir(fermion.SDK, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fermion.SDK.ReadFile(path)
		files[filepath.Join(".fermion/sdk", path)] = b
		return err
	})
	if err != nil {
		return fmt.Errorf("read embedded sdk: %w", err)
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
