//go:build !wasip1

package fhttp

// canonicalCache is nil outside a guest: there handlers may run in parallel (natively
// compiled tests, fhttptest), and the cache is not safe for concurrent use.
var canonicalCache *nameCache

// keepable lets the cache keep any name outside a guest, where only tests install
// one.
func keepable(string) bool { return true }
