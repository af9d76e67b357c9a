package main

import (
	"time"

	"golang.org/x/sys/unix"
)

// threadCPU is the calling thread's CPU time so far (lock the goroutine to its thread
// around the work measured).
func threadCPU() time.Duration {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts) != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// threadFaults is the calling thread's page faults so far, minor and major: on a
// virtual machine a first touch of a page can cost tens of microseconds, so a new
// instance's tail follows how many pages it faults in.
func threadFaults() int64 {
	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_THREAD, &ru) != nil {
		return 0
	}
	return ru.Minflt + ru.Majflt
}
