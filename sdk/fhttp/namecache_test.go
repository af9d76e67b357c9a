package fhttp

import (
	"net/http"
	"strings"
	"testing"
)

func TestNameCache(t *testing.T) {
	long := strings.Repeat("x", maxCachedName+1)
	same := func(s string) string { return s }
	for _, tt := range []struct {
		name string
		put  string
		look func(put string) string // what is looked up after put(put, its canonical form)
		hit  bool
	}{
		{"same string", "Content-Type", same, true},
		{"equal bytes elsewhere", "Content-Type", strings.Clone, false},
		{"a prefix of it", "Content-Type", func(s string) string { return s[:7] }, false},
		{"rewritten name", "content-type", same, true},
		{"too long to keep", long, same, false},
		{"empty", "", same, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var c nameCache
			canon := http.CanonicalHeaderKey(tt.put)
			c.put(tt.put, canon)
			look := tt.look(tt.put)
			got, ok := c.get(look)
			if ok != tt.hit || ok && got != canon {
				t.Fatalf("get(%q) = %q, %v; want hit %v with %q", look, got, ok, tt.hit, canon)
			}
		})
	}
}

// TestNameCacheReplaces: an entry taken by another name no longer answers for the
// first, and the second is answered right.
func TestNameCacheReplaces(t *testing.T) {
	var c nameCache
	buf := strings.Repeat("abcdefghij-", nameCacheSize+1)
	a, b := buf[:4], buf[nameCacheSize:nameCacheSize+4] // same entry: addresses nameCacheSize apart
	c.put(a, "A")
	c.put(b, "B")
	if _, ok := c.get(a); ok {
		t.Fatalf("get(%q) hit after its entry was replaced", a)
	}
	if got, ok := c.get(b); !ok || got != "B" {
		t.Fatalf("get(%q) = %q, %v; want \"B\", true", b, got, ok)
	}
}

// TestCanonicalHeaderKeyCached runs CanonicalHeaderKey with the cache a guest has:
// answers from it match net/http's, and a name that needs rewriting is rewritten
// (and allocated) once, not on every call.
func TestCanonicalHeaderKeyCached(t *testing.T) {
	defer func(c *nameCache) { canonicalCache = c }(canonicalCache)
	canonicalCache = new(nameCache)
	names := []string{"content-type", "Content-Type", "x-forwarded-for", "x y", "", "ünicode", strings.Repeat("a-", 40)}
	for range 2 {
		for _, s := range names {
			if got, want := CanonicalHeaderKey(s), http.CanonicalHeaderKey(s); got != want {
				t.Errorf("CanonicalHeaderKey(%q) = %q, net/http says %q", s, got, want)
			}
			if c := strings.Clone(s); CanonicalHeaderKey(c) != http.CanonicalHeaderKey(s) { // same bytes, another address
				t.Errorf("CanonicalHeaderKey of a copy of %q = %q", s, CanonicalHeaderKey(c))
			}
		}
	}
	name := "x-request-id"
	CanonicalHeaderKey(name)
	if n := testing.AllocsPerRun(100, func() { CanonicalHeaderKey(name) }); n != 0 {
		t.Fatalf("CanonicalHeaderKey(%q) again: %v allocations, want 0 (from the cache)", name, n)
	}
}

// FuzzNameCache: whatever was put is found under the same string and only under it.
func FuzzNameCache(f *testing.F) {
	for _, s := range []string{"content-type", "X-A", "", "ÿ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var c nameCache
		canon := http.CanonicalHeaderKey(s)
		c.put(s, canon)
		got, ok := c.get(s)
		if want := len(s) > 0 && len(s) <= maxCachedName; ok != want || ok && got != canon {
			t.Fatalf("get(%q) after put = %q, %v; want hit %v", s, got, ok, want)
		}
		if _, ok := c.get(strings.Clone(s)); ok && len(s) > 0 {
			t.Fatalf("get of a copy of %q hit", s)
		}
	})
}

// TestCanonicalHeaderKeyRewriteAllocatesOnce: a name that needs rewriting, and that no
// cache holds, costs one allocation: the rewritten copy, which is the string.
func TestCanonicalHeaderKeyRewriteAllocatesOnce(t *testing.T) {
	name := strings.Clone("x-request-id")
	if n := testing.AllocsPerRun(100, func() { canonicalHeaderKey(name) }); n != 1 {
		t.Fatalf("canonicalHeaderKey(%q): %v allocations, want 1", name, n)
	}
}
