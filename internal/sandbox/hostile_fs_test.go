package sandbox_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
)

// Hostile guests against files grants (issue 12): a guest names paths that lead out of
// its grant through symbolic links of every kind and a hard link, and must get an error
// for each, never the content of the file outside, which the test wrote itself. The same
// function then serves a well-behaved request.

const (
	guestFSProbe    = "examples/testdata/faults/fsprobe"
	guestFSProbeCGI = "examples/testdata/faults/fsprobecgi"
)

// probe asks the guest to try each "op:path" and returns its report, one line per query.
func probe(t *testing.T, f *sandbox.Function, route string, qs ...string) []string {
	t.Helper()
	v := url.Values{"q": qs}
	resp := wantOK(t, f, get(route+"?"+v.Encode()), "")
	lines := strings.Split(strings.TrimSpace(string(resp.Body)), "\n")
	if len(lines) != len(qs) {
		t.Fatalf("guest answered %d lines for %d probes: %q", len(lines), len(qs), truncate(resp.Body))
	}
	return lines
}

func TestHostileGuestFileGrants(t *testing.T) {
	h := sandbox.NewHostileTree(t)
	guests := []struct {
		name, route string
		wasm        func(*testing.T) []byte
	}{
		{"reactor", "/fsprobe", func(t *testing.T) []byte { return reactor(t, guestFSProbe) }},
		{"command", "/fsprobecgi", func(t *testing.T) []byte { return command(t, guestFSProbeCGI) }},
	}
	// Every way out, through each operation that could reveal the file behind it.
	var escapes []string
	for _, p := range sandbox.Escapes {
		escapes = append(escapes, "read:/static/"+p, "stat:/static/"+p)
	}
	escapes = append(escapes, "list:/static/abs-dir", "list:/static/rel-dir", "list:/static/root",
		"read:/static/../../outside/secret.txt", "read:"+filepath.Join(h.Outside, "secret.txt"),
		"write:/static/new.txt", "write:/static/hello.txt")

	for _, g := range guests {
		t.Run(g.name, func(t *testing.T) {
			if g.name == "command" && testing.Short() {
				t.Skip("short: one more guest to build; both ABIs mount grants through moduleConfig")
			}
			e, _ := newEngine(t)
			s := spec(strings.TrimPrefix(g.route, "/"), g.wasm(t))
			s.Capabilities.Files = []manifest.Mount{{Source: h.Grant, Destination: "/static"}}
			f := load(t, e, s)

			// One request tries every way out (a command module pays an instance per
			// request); each answer line is judged on its own.
			for i, line := range probe(t, f, g.route, escapes...) {
				if q := escapes[i]; !strings.HasPrefix(line, q+": error: ") {
					t.Errorf("%s: the guest was not refused: %q", q, line)
				}
				if strings.Contains(line, h.Secret) {
					t.Errorf("host content leaked: %q", line)
				}
			}
			if _, err := os.Stat(filepath.Join(h.Grant, "new.txt")); err == nil {
				t.Error("the guest created a file in its read-only grant")
			}

			// Links that stay inside the grant work, and a well-behaved request still
			// answers after all the refusals.
			var good []string
			for _, p := range sandbox.Allowed {
				good = append(good, "read:/static/"+p)
			}
			good = append(good, "list:/static", "lstat:/static/abs-file", "readlink:/static/inside")
			for i, line := range probe(t, f, g.route, good...) {
				switch q := good[i]; {
				case strings.HasPrefix(q, "read:") && line != q+": ok: \""+h.Inside+"\"":
					t.Errorf("want %s to read %q: %q", q, h.Inside, line)
				case !strings.HasPrefix(line, q+": ok: "):
					t.Errorf("want %s to succeed: %q", q, line)
				case strings.Contains(line, h.Secret):
					t.Errorf("host content leaked: %q", line)
				}
			}
		})
	}
}

func TestHostileGrantSourceRefusedAtLoad(t *testing.T) {
	tmp := t.TempDir()
	root := filepath.Join(tmp, "static")
	if err := os.Symlink("/", root); err != nil {
		t.Fatal(err)
	}
	e, _ := newEngine(t)
	wasm := reactor(t, guestFSProbe)
	s := spec("fsprobe", wasm)
	s.Capabilities.Files = []manifest.Mount{{Source: root, Destination: "/static"}}
	f, err := e.Load(context.Background(), s)
	if err == nil {
		f.Close(context.Background())
		t.Fatal("a grant whose source is a symbolic link to / was loaded")
	}
	if !strings.Contains(err.Error(), root) || !strings.Contains(err.Error(), "symbolic link to /") {
		t.Fatalf("error %q does not name the link and its target", err)
	}

	// The engine is unharmed: the same module with a real directory serves.
	s.Capabilities.Files = []manifest.Mount{{Source: tmp, Destination: "/static"}}
	good := load(t, e, s)
	if line := probe(t, good, "/fsprobe", "lstat:/static/static")[0]; !strings.Contains(line, ": ok: L") {
		t.Fatalf("lstat of the link inside a real grant: %q", line)
	}
}
