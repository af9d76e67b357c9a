package fermiontest

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCompileCacheKey: the shared compilation cache is named by go.sum and the
// sandbox's sources, and by nothing else (its tests, other packages).
func TestCompileCacheKey(t *testing.T) {
	root := t.TempDir()
	write := func(rel, body string) { t.Helper(); writeTree(t, root, rel, body) }
	write("go.sum", "github.com/tetratelabs/wazero v1.0.0 h1:x\n")
	write("internal/sandbox/engine.go", "package sandbox\n")
	key := func() string {
		t.Helper()
		k, err := compileCacheKey(root)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	base := key()
	for _, tc := range []struct {
		name, file, body string
		changes          bool
	}{
		{"a sandbox test", "internal/sandbox/engine_test.go", "package sandbox\n// more\n", false},
		{"another package", "internal/gateway/gateway.go", "package gateway\n", false},
		{"the sandbox's source", "internal/sandbox/engine.go", "package sandbox\n// changed\n", true},
		{"a new sandbox file", "internal/sandbox/rewrite.go", "package sandbox\n", true},
		{"go.sum", "go.sum", "github.com/tetratelabs/wazero v1.1.0 h1:y\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := key()
			write(tc.file, tc.body)
			if got := key(); (got != before) != tc.changes {
				t.Errorf("key %s → %s; want a change: %v", before, got, tc.changes)
			}
		})
	}
	if key() == base {
		t.Error("the key did not change at all")
	}
}

// TestPruneCompileCaches removes only other caches unused for a week.
func TestPruneCompileCaches(t *testing.T) {
	base := t.TempDir()
	now := time.Now()
	for name, age := range map[string]time.Duration{
		"compile-current": 30 * 24 * time.Hour, // the one in use: kept whatever its age
		"compile-recent":  time.Hour,
		"compile-old":     8 * 24 * time.Hour,
		"other-old":       8 * 24 * time.Hour, // not a cache of ours
	} {
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	pruneCompileCaches(base, filepath.Join(base, "compile-current"), now)
	for name, want := range map[string]bool{"compile-current": true, "compile-recent": true, "compile-old": false, "other-old": true} {
		if _, err := os.Stat(filepath.Join(base, name)); (err == nil) != want {
			t.Errorf("%s: present %v, want %v", name, err == nil, want)
		}
	}
}

// writeTree writes body to root/rel, making its directories.
func writeTree(t *testing.T, root, rel, body string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
