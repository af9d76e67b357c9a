//go:build !linux

package sandbox

import "time"

var threadEpoch = time.Now()

// threadCPU falls back to wall time where the thread's CPU clock is not at hand.
func threadCPU() time.Duration { return time.Since(threadEpoch) }
