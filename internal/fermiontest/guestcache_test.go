package fermiontest

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestGuestCacheKey: a cached guest is named by the files it is built from (the guest's
// package and every package of the module it imports), go.mod and the build mode, and by
// nothing else, so a cached module is what a fresh build would give.
func TestGuestCacheKey(t *testing.T) {
	root := t.TempDir()
	write := func(rel, body string) { t.Helper(); writeTree(t, root, rel, body) }
	write("go.mod", "module example.test\n\ngo 1.22\n")
	write("guest/main.go", "package main\n\nimport \"example.test/lib\"\n\nfunc main() { lib.F() }\n")
	write("lib/lib.go", "package lib\n\nfunc F() {}\n")
	write("other/other.go", "package other\n")
	key := func(reactor bool) string {
		t.Helper()
		k, err := guestCacheKey(root, "guest", reactor)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	base := key(false)
	prev := base
	if key(true) == base {
		t.Fatal("a reactor and a command build of one guest share a key")
	}
	for _, tc := range []struct {
		name, file, body string
		changes          bool
	}{
		{"a guest test file", "guest/main_test.go", "package main\n", false},
		{"an unimported package", "other/other.go", "package other\n// changed\n", false},
		{"a file for another GOOS", "lib/lib_windows.go", "package lib\n", false},
		{"the guest's source", "guest/main.go", "package main\n\nimport \"example.test/lib\"\n\nfunc main() { lib.F(); lib.F() }\n", true},
		{"an imported package", "lib/lib.go", "package lib\n\nfunc F() { println() }\n", true},
		{"a new file of an imported package", "lib/more.go", "package lib\n", true},
		{"a wasip1 file", "lib/lib_wasip1.go", "package lib\n", true},
		{"go.mod", "go.mod", "module example.test\n\ngo 1.23\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			write(tc.file, tc.body)
			got := key(false)
			if (got != prev) != tc.changes {
				t.Errorf("key %s → %s; want a change: %v", prev, got, tc.changes)
			}
			prev = got
		})
	}
	if prev == base {
		t.Error("the key did not change at all")
	}
	if _, err := guestCacheKey(root, "nosuchguest", false); err == nil {
		t.Error("a guest directory that does not exist got a key")
	}
}

// TestPruneGuests removes only cached guests unused for a week.
func TestPruneGuests(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	for name, age := range map[string]time.Duration{"fresh.wasm": time.Hour, "old.wasm": 8 * 24 * time.Hour, "x.1.tmp": 9 * 24 * time.Hour} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("\x00asm"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	pruneGuests(dir, now)
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(des) != 1 || des[0].Name() != "fresh.wasm" {
		t.Fatalf("left %v, want only fresh.wasm", des)
	}
}

// TestGuestCacheRejectsCutModules: a cached module cut short (as a full disk left some,
// magic intact) is not served: the guest is built again and the cache entry replaced.
func TestGuestCacheRejectsCutModules(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a guest")
	}
	if guestCache() == "" {
		t.Skip("no guest cache here")
	}
	root := t.TempDir()
	writeTree(t, root, "go.mod", "module example.test/cut\n\ngo 1.22\n")
	writeTree(t, root, "guest/main.go", "package main\n\nfunc main() { println(\""+t.Name()+"\") }\n")
	first, err := cachedBuildGuest(root, "guest", false)
	if err != nil {
		t.Fatal(err)
	}
	key, err := guestCacheKey(root, "guest", false)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(guestCache(), key+".wasm")
	if b, err := os.ReadFile(p); err != nil || len(b) != len(first) {
		t.Fatalf("cache entry after the first build: %d bytes, %v; want %d bytes", len(b), err, len(first))
	}
	if !wholeModule(first) || wholeModule(first[:len(first)/2]) || wholeModule(nil) {
		t.Fatal("wholeModule does not tell a whole module from a cut one")
	}
	if err := os.WriteFile(p, first[:len(first)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	again, err := cachedBuildGuest(root, "guest", false)
	if err != nil {
		t.Fatal(err)
	}
	if !wholeModule(again) {
		t.Fatalf("served a cut module of %d bytes from the cache", len(again))
	}
	if b, err := os.ReadFile(p); err != nil || !wholeModule(b) {
		t.Fatalf("cache entry not replaced: %d bytes, %v", len(b), err)
	}
	os.Remove(p)
}
