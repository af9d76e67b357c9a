package sandbox

import (
	"fmt"
	"syscall"
)

// limitSelf bounds the worker's own memory and CPU time: past the first the Go runtime
// fails its next allocation and exits, past the second the kernel sends SIGXCPU.
// RLIMIT_DATA, not RLIMIT_AS: since Linux 4.7 it counts private writable mappings, the
// memory the Go heap actually maps, while the address space Go reserves up front makes
// RLIMIT_AS fail a worker at 1 GiB before it compiles anything.
func limitSelf(memory, cpuSeconds uint64) error {
	if memory > 0 {
		if err := syscall.Setrlimit(syscall.RLIMIT_DATA, &syscall.Rlimit{Cur: memory, Max: memory}); err != nil {
			return fmt.Errorf("set data limit: %w", err)
		}
	}
	if cpuSeconds > 0 {
		if err := syscall.Setrlimit(syscall.RLIMIT_CPU, &syscall.Rlimit{Cur: cpuSeconds, Max: cpuSeconds + 1}); err != nil {
			return fmt.Errorf("set CPU limit: %w", err)
		}
	}
	return nil
}
