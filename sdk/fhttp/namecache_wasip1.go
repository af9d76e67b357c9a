//go:build wasip1

package fhttp

// canonicalCache is CanonicalHeaderKey's cache in a guest, where all goroutines run on
// one thread and switch only where they block or yield, which nothing between a
// lookup and its use does.
var canonicalCache = new(nameCache)
