//go:build !linux

package threadusage

import "time"

// Measured says whether CPU and Faults read the thread's own counters here.
const Measured = false

// CPU is not measured here: it returns zero.
func CPU() time.Duration { return 0 }

// Faults is not measured here: it returns zero.
func Faults() int64 { return 0 }
