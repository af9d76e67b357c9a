//go:build wasip1

package fhttp

import "unsafe"

// canonicalCache is CanonicalHeaderKey's cache in a guest, where all goroutines run on
// one thread and switch only at calls (where they block, yield or are asked to by the
// runtime): neither a lookup nor a store makes a call between an entry's two strings.
var canonicalCache = new(nameCache)

// staticEnd lies after every string literal of the module: the wasm linker lays out
// read-only data (the literals), then data, then the zeroed variables, and the heap
// starts after all of them.
var staticEnd byte

// keepable reports whether the cache may keep name: only a name in the module's static
// data, such as a literal, whose bytes are never freed. A name on the heap (sliced
// from a request's head, say, or from a large string) would keep alive whatever it
// was cut from.
func keepable(name string) bool {
	return uintptr(unsafe.Pointer(unsafe.StringData(name))) < uintptr(unsafe.Pointer(&staticEnd))
}
