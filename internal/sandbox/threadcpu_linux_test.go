package sandbox

import (
	"time"

	"golang.org/x/sys/unix"
)

// threadCPU is the calling thread's CPU time so far (lock the goroutine to its thread
// around the work measured): on a shared machine it leaves out the time the thread
// waited for a core, which wall time counts.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
