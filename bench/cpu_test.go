package bench

import (
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time. Benchmarks report it per operation
// (cpu-ns/op) next to wall time: on a shared 2-core machine wall time drifts with the
// neighbours' load while CPU time per operation mostly does not.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU runs fn's loop and reports CPU ns per op.
func reportCPU(b *testing.B, loop func()) {
	b.Helper()
	start := cpuTime()
	n := 0
	for b.Loop() {
		loop()
		n++
	}
	b.ReportMetric(float64(cpuTime()-start)/float64(n), "cpu-ns/op")
}
