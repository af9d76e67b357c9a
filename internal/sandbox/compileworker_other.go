//go:build !linux

package sandbox

// limitSelf sets no rlimit outside Linux: the parent's kill at compile_timeout is the
// only bound there.
func limitSelf(memory, cpuSeconds uint64) error { return nil }
