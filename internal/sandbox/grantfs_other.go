//go:build !linux

package sandbox

// newResolver resolves with os.Root: there is no openat2 outside Linux.
func newResolver(dir string) (resolver, error) { return newRootResolver(dir) }
