package fhttp

import "unsafe"

// nameCache remembers the canonical forms of the header names it was given, by where
// their bytes are: a handler passes the same literal ("Content-Type") to Header().Set
// on every request, and finding it again here costs a few word compares where
// checking its bytes costs a table lookup and a taken branch per byte (in a Go wasm
// guest about 8 ns a byte: 0.1 µs of hello's 1.5 for "Content-Type"). A name that needs
// rewriting ("content-type") is found again too, which saves the copy the rewriting
// allocates.
//
// A match by address and length is a match by content because Go strings are
// immutable (unsafe.String's contract) and each entry keeps its name alive, so its
// bytes can neither change nor be freed and reused for another string. Names longer
// than maxCachedName are not kept, and CanonicalHeaderKey offers the guest's cache
// only names in the module's static data (see keepable), so it pins nothing on the
// heap.
//
// It is direct-mapped, not searched: a name is looked for in one entry, picked by its
// address, and replaces what was there. It is not safe for concurrent use; see
// canonicalCache for where one is used.
type nameCache [nameCacheSize]struct{ in, out string }

const (
	nameCacheSize = 8
	maxCachedName = 64
)

func (c *nameCache) entry(name string) *struct{ in, out string } {
	// String data is byte-aligned; the low bits of nearby literals still differ.
	return &c[uintptr(unsafe.Pointer(unsafe.StringData(name)))%nameCacheSize]
}

// get returns name's canonical form if the cache holds it.
func (c *nameCache) get(name string) (string, bool) {
	e := c.entry(name)
	if len(e.in) == len(name) && unsafe.StringData(e.in) == unsafe.StringData(name) && len(name) > 0 {
		return e.out, true
	}
	return "", false
}

// put remembers that canonical is name's canonical form.
func (c *nameCache) put(name, canonical string) {
	if len(name) == 0 || len(name) > maxCachedName {
		return
	}
	e := c.entry(name)
	e.in, e.out = name, canonical
}
