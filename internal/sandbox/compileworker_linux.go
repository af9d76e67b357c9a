package sandbox

import (
	"fmt"
	"syscall"
)

// limitSelf bounds the worker's own address space and CPU time: past the first the Go
// runtime fails its next allocation and exits, past the second the kernel sends SIGXCPU.
func limitSelf(memory, cpuSeconds uint64) error {
	if memory > 0 {
		if err := syscall.Setrlimit(syscall.RLIMIT_AS, &syscall.Rlimit{Cur: memory, Max: memory}); err != nil {
			return fmt.Errorf("set address space limit: %w", err)
		}
	}
	if cpuSeconds > 0 {
		if err := syscall.Setrlimit(syscall.RLIMIT_CPU, &syscall.Rlimit{Cur: cpuSeconds, Max: cpuSeconds + 1}); err != nil {
			return fmt.Errorf("set CPU limit: %w", err)
		}
	}
	return nil
}
