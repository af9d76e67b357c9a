package manifest

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// grantManifest mounts static at /static; the source line is line 11.
const grantManifest = minimalManifest + `[capabilities]
files = [
  { source = "static", destination = "/static" },
]
`

// grantApp writes grantManifest into a fresh app directory beside a directory
// "outside" holding secret.txt, creates static/ with hello.txt, runs setup in the app
// directory, and returns the app directory.
func grantApp(t *testing.T, manifest string, setup func(t *testing.T, app string)) string {
	t.Helper()
	tmp := t.TempDir()
	app := filepath.Join(tmp, "app")
	for _, d := range []string{filepath.Join(app, "static"), filepath.Join(tmp, "outside")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, s := range map[string]string{
		filepath.Join(app, FileName):                manifest,
		filepath.Join(app, "static", "hello.txt"):   "hello",
		filepath.Join(tmp, "outside", "secret.txt"): "secret",
	} {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if setup != nil {
		setup(t, app)
	}
	return app
}

func symlink(t *testing.T, target, name string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, name); err != nil {
		t.Fatal(err)
	}
}

func TestLoadGrantLinks(t *testing.T) {
	replaceStatic := func(target string) func(*testing.T, string) {
		return func(t *testing.T, app string) {
			if err := os.RemoveAll(filepath.Join(app, "static")); err != nil {
				t.Fatal(err)
			}
			symlink(t, target, filepath.Join(app, "static"))
		}
	}
	tests := []struct {
		name     string
		manifest string
		setup    func(t *testing.T, app string)
		want     []string // substrings of the error; none means Load must succeed
	}{
		{name: "plain grant", manifest: grantManifest},
		{name: "missing source is left to the sandbox", manifest: grantManifest,
			setup: func(t *testing.T, app string) { os.RemoveAll(filepath.Join(app, "static")) }},
		{name: "relative links that stay inside", manifest: grantManifest, setup: func(t *testing.T, app string) {
			symlink(t, "hello.txt", filepath.Join(app, "static", "inside"))
			symlink(t, "../hello.txt", filepath.Join(app, "static", "sub", "up"))
			symlink(t, "sub", filepath.Join(app, "static", "subdir"))
			symlink(t, "missing", filepath.Join(app, "static", "dangling"))
		}},
		{name: "source is a link to /", manifest: grantManifest, setup: replaceStatic("/"),
			want: []string{FileName + ":11:", "capabilities.files[0].source", `"static" is a symbolic link to "/", outside the manifest's directory`}},
		{name: "source is a link inside the app", manifest: grantManifest, setup: func(t *testing.T, app string) {
			os.Rename(filepath.Join(app, "static"), filepath.Join(app, "assets"))
			symlink(t, "assets", filepath.Join(app, "static"))
		}, want: []string{`"static" is a symbolic link to "assets"; a grant must be a real directory`}},
		{name: "source below a linked directory", manifest: strings.Replace(grantManifest, `source = "static"`, `source = "web/static"`, 1),
			setup: func(t *testing.T, app string) { symlink(t, "../outside", filepath.Join(app, "web")) },
			want:  []string{`"web" is a symbolic link to "../outside", outside the manifest's directory`}},
		{name: "source is a file", manifest: grantManifest, setup: func(t *testing.T, app string) {
			os.RemoveAll(filepath.Join(app, "static"))
			os.WriteFile(filepath.Join(app, "static"), nil, 0o644)
		}, want: []string{`"static" is a file`}},
		{name: "absolute link to a file outside", manifest: grantManifest, setup: func(t *testing.T, app string) {
			symlink(t, "/etc/passwd", filepath.Join(app, "static", "passwd"))
		}, want: []string{`"static/passwd" is a symbolic link to the absolute path "/etc/passwd"`}},
		{name: "absolute link to a directory outside", manifest: grantManifest, setup: func(t *testing.T, app string) {
			symlink(t, "/etc", filepath.Join(app, "static", "etc"))
		}, want: []string{`"static/etc" is a symbolic link to the absolute path "/etc"`}},
		{name: "absolute link inside", manifest: grantManifest, setup: func(t *testing.T, app string) {
			symlink(t, filepath.Join(app, "static", "hello.txt"), filepath.Join(app, "static", "abs"))
		}, want: []string{`"static/abs" is a symbolic link to the absolute path`, "make it relative"}},
		{name: "relative link out", manifest: grantManifest, setup: func(t *testing.T, app string) {
			symlink(t, "../../outside/secret.txt", filepath.Join(app, "static", "secret"))
		}, want: []string{`"static/secret" is a symbolic link to "../../outside/secret.txt", which leads out of the grant`}},
		{name: "link to the manifest beside the grant", manifest: grantManifest, setup: func(t *testing.T, app string) {
			symlink(t, "../"+FileName, filepath.Join(app, "static", "m"))
		}, want: []string{`"static/m" is a symbolic link to "../fermion.toml", which leads out of the grant`}},
		{name: "link in a middle component", manifest: grantManifest, setup: func(t *testing.T, app string) {
			symlink(t, "../..", filepath.Join(app, "static", "link"))
		}, want: []string{`"static/link" is a symbolic link to "../..", which leads out`}},
		{name: "chain of links out", manifest: grantManifest, setup: func(t *testing.T, app string) {
			symlink(t, "b", filepath.Join(app, "static", "a"))
			symlink(t, "sub/../c", filepath.Join(app, "static", "b"))
			os.Mkdir(filepath.Join(app, "static", "sub"), 0o755)
			symlink(t, "../../outside/secret.txt", filepath.Join(app, "static", "c"))
		}, want: []string{`"static/a" is a symbolic link to "b", which leads out`, `"static/b" is a symbolic link to "sub/../c", which leads out`,
			`"static/c" is a symbolic link to "../../outside/secret.txt", which leads out`}},
		{name: "dot-dot through a linked directory", manifest: grantManifest, setup: func(t *testing.T, app string) {
			// Lexically "deep/../../x" is "../x", but deep is two levels down: the kernel
			// lands on static/x. The check must follow links as the kernel does.
			os.MkdirAll(filepath.Join(app, "static", "a", "b"), 0o755)
			symlink(t, "a/b", filepath.Join(app, "static", "deep"))
			symlink(t, "deep/../../hello.txt", filepath.Join(app, "static", "ok"))
		}},
		{name: "loop", manifest: grantManifest, setup: func(t *testing.T, app string) {
			symlink(t, "y", filepath.Join(app, "static", "x"))
			symlink(t, "x", filepath.Join(app, "static", "y"))
		}, want: []string{`"static/x" is a symbolic link to "y" that does not resolve within 40 links`}},
		{name: "hard link", manifest: grantManifest, setup: func(t *testing.T, app string) {
			if err := os.Link(filepath.Join(app, "..", "outside", "secret.txt"), filepath.Join(app, "static", "secret")); err != nil {
				t.Skip(err)
			}
		}, want: []string{`"static/secret" has 2 hard links`, "cp, not ln"}},
		{name: "named pipe", manifest: grantManifest, setup: func(t *testing.T, app string) {
			if err := mkfifo(filepath.Join(app, "static", "pipe")); err != nil {
				t.Skip(err)
			}
		}, want: []string{`"static/pipe" is a named pipe`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := grantApp(t, tt.manifest, tt.setup)
			m, err := Load(app)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if err := CheckGrants(m); err != nil {
					t.Fatalf("CheckGrants after a clean Load: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Load accepted the grant")
			}
			var merr *Error
			if !errors.As(err, &merr) {
				t.Fatalf("error %v (%T) is not a *Error", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestCheckGrantsAfterLoad(t *testing.T) {
	app := grantApp(t, grantManifest, nil)
	m, err := Load(app)
	if err != nil {
		t.Fatal(err)
	}
	// A build command writes a link out after Load: the second check catches it.
	symlink(t, "/etc/passwd", filepath.Join(app, "static", "generated"))
	err = CheckGrants(m)
	if err == nil || !strings.Contains(err.Error(), FileName+":11:") || !strings.Contains(err.Error(), `"static/generated"`) {
		t.Fatalf("CheckGrants = %v", err)
	}
	// Loaded through a path relative to the working directory, the line is still found.
	t.Chdir(filepath.Dir(app))
	m, err = Load("app")
	if err == nil {
		t.Fatal("Load accepted the link written after the first Load")
	}
	os.Remove(filepath.Join(app, "static", "generated"))
	if m, err = Load("app"); err != nil {
		t.Fatal(err)
	}
	symlink(t, "/etc/passwd", filepath.Join(app, "static", "generated"))
	if err := CheckGrants(m); err == nil || !strings.Contains(err.Error(), filepath.Join("app", FileName)+":11:") {
		t.Fatalf("CheckGrants after a relative Load = %v", err)
	}
	// Without an absolute directory there is nothing on disk to check.
	if err := CheckGrants(mustParse(t, grantManifest, "")); err != nil {
		t.Fatalf("CheckGrants without a directory: %v", err)
	}
}

func TestGrantProblemsAreBounded(t *testing.T) {
	app := grantApp(t, grantManifest, func(t *testing.T, app string) {
		for i := range maxGrantProblems + 5 {
			symlink(t, "/etc/passwd", filepath.Join(app, "static", "l"+string(rune('a'+i))))
		}
	})
	_, err := Load(app)
	if err == nil {
		t.Fatal("Load accepted the grant")
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != maxGrantProblems+1 || !strings.Contains(err.Error(), "and 5 more problems") {
		t.Fatalf("%d lines:\n%v", n, err)
	}
}

// memLinks is an in-memory tree for resolveBeneath: directories, files and links.
type memLinks map[string]string // name → "dir", "file" or "link:TARGET"

func (m memLinks) lookup(name string) (string, bool, error) {
	// A component below a file is ENOTDIR, as the kernel says.
	for p := path.Dir(name); p != "."; p = path.Dir(p) {
		if m[p] == "file" {
			return "", false, syscall.ENOTDIR
		}
	}
	v, ok := m[name]
	switch {
	case !ok:
		return "", false, fs.ErrNotExist
	case strings.HasPrefix(v, "link:"):
		return strings.TrimPrefix(v, "link:"), true, nil
	}
	return "", false, nil
}

func TestResolveBeneath(t *testing.T) {
	tree := memLinks{
		"a": "dir", "a/b": "dir", "f": "file",
		"deep": "link:a/b", "out": "link:../x", "abs": "link:/etc", "in": "link:f",
		"viadeep": "link:deep/../../f", "loop": "link:loop", "c1": "link:c2", "c2": "link:out",
		"a/up": "link:../../x", "a/ok": "link:../f",
	}
	tests := []struct {
		name    string
		escapes bool
		err     error
	}{
		{"f", false, nil}, {"a/b", false, nil}, {"in", false, nil}, {"deep", false, nil},
		{"viadeep", false, nil}, {"a/ok", false, nil}, {"missing/../../x", false, nil},
		// The kernel stops at ENOTDIR here; counting the climb is the safe side.
		{"f/../..", true, nil},
		{"..", true, nil}, {"a/../..", true, nil}, {"out", true, nil}, {"abs", true, nil}, {"abs/passwd", true, nil},
		{"c1", true, nil}, {"a/up", true, nil}, {"deep/../../..", true, nil}, {"/etc", true, nil},
		{"loop", false, errLinkLoop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			escapes, err := resolveBeneath(tt.name, tree.lookup)
			if escapes != tt.escapes || !errors.Is(err, tt.err) {
				t.Fatalf("resolveBeneath(%q) = %v, %v; want %v, %v", tt.name, escapes, err, tt.escapes, tt.err)
			}
		})
	}
}

// FuzzResolveBeneath checks that resolving any name through any small tree of links
// ends, never panics, and never reports staying inside a root it lexically left
// without a link being involved.
func FuzzResolveBeneath(f *testing.F) {
	f.Add("a/../b", "..", "x/y")
	f.Add("l/passwd", "/etc", "")
	f.Add("l", "l", "m")
	f.Add("deep/../../f", "a/b", "../../x")
	f.Fuzz(func(t *testing.T, name, target1, target2 string) {
		tree := memLinks{"a": "dir", "a/b": "dir", "f": "file", "l": "link:" + target1, "a/m": "link:" + target2}
		lookups := 0
		_, err := resolveBeneath(name, func(n string) (string, bool, error) {
			if lookups++; lookups > 10000 {
				t.Fatalf("resolveBeneath(%q) does not end", name)
			}
			return tree.lookup(n)
		})
		if err != nil && !errors.Is(err, errLinkLoop) {
			t.Fatalf("resolveBeneath(%q): unexpected error %v", name, err)
		}
		// Without links, ".." above the root is the only way out.
		plain, _ := resolveBeneath(name, memLinks{"a": "dir", "a/b": "dir", "f": "file"}.lookup)
		if !plain {
			return
		}
		if !path.IsAbs(name) && !lexicallyClimbs(name) {
			t.Fatalf("resolveBeneath(%q) escapes with no links and no climb", name)
		}
	})
}

// lexicallyClimbs reports whether some prefix of name goes above its root.
func lexicallyClimbs(name string) bool {
	depth := 0
	for _, c := range strings.Split(name, "/") {
		switch c {
		case "", ".":
		case "..":
			if depth--; depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}
