package threadusage

import (
	"time"

	"golang.org/x/sys/unix"
)

// Measured says whether CPU and Faults read the thread's own counters here.
const Measured = true

// CPU is the calling thread's CPU time so far (CLOCK_THREAD_CPUTIME_ID), or zero if the
// clock cannot be read.
func CPU() time.Duration {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// Faults is the calling thread's page faults so far, minor and major (RUSAGE_THREAD):
// on a virtual machine a first touch of a page can cost tens of microseconds, so a new
// instance's tail follows how many pages it faults in.
func Faults() int64 {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_THREAD, &ru) != nil {
		return 0
	}
	return ru.Minflt + ru.Majflt
}
