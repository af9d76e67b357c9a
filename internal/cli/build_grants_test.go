package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fermion.dev/fermion/internal/fermiontest"
)

// TestBuildRefusesGrantLinks: a files grant holding a link out of it fails `fermion
// build`, whether the link was there before (manifest load) or the build command wrote
// it (the check after the build), and no artifact is written.
func TestBuildRefusesGrantLinks(t *testing.T) {
	wasm := fermiontest.Guest(t, "examples/hello", true)
	const manifest = `manifest_version = 1
[app]
name = "grants"
version = "0.1.0"
[component]
source = "app.wasm"
[component.build]
command = "%s"
[[routes]]
path = "/"
[capabilities]
files = [{ source = "static", destination = "/static" }]
`
	tests := []struct {
		name, command string
		before        func(t *testing.T, dir string)
		want          string
	}{
		{name: "link before the build", command: "true",
			before: func(t *testing.T, dir string) {
				if err := os.Symlink("/etc/passwd", filepath.Join(dir, "static", "passwd")); err != nil {
					t.Fatal(err)
				}
			},
			want: `fermion.toml:12: capabilities.files[0].source: "static/passwd" is a symbolic link to the absolute path "/etc/passwd"`},
		{name: "link written by the build command", command: "ln -s ../../outside static/out",
			want: `fermion.toml:12: capabilities.files[0].source: "static/out" is a symbolic link to "../../outside", which leads out of the grant`},
		{name: "clean grant builds", command: "true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "app")
			if err := os.MkdirAll(filepath.Join(dir, "static"), 0o755); err != nil {
				t.Fatal(err)
			}
			for name, data := range map[string][]byte{
				"fermion.toml":     []byte(strings.Replace(manifest, "%s", tt.command, 1)),
				"app.wasm":         wasm,
				"static/hello.txt": []byte("hello"),
			} {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tt.before != nil {
				tt.before(t, dir)
			}
			code, stdout, stderr := run(t, "build", dir, "--cache-dir", t.TempDir())
			_, statErr := os.Stat(filepath.Join(dir, ".fermion", "artifact", "manifest.json"))
			if tt.want == "" {
				if code != 0 || statErr != nil {
					t.Fatalf("build exited %d (artifact: %v)\nstdout:\n%s\nstderr:\n%s", code, statErr, stdout, stderr)
				}
				return
			}
			if code == 0 || !strings.Contains(stderr, tt.want) {
				t.Fatalf("build exited %d, want a failure saying %q\nstderr:\n%s", code, tt.want, stderr)
			}
			if statErr == nil {
				t.Fatal("a refused build wrote an artifact")
			}
		})
	}
}
