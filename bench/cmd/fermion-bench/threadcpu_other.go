//go:build !linux

package main

import "time"

// threadCPU is not measured here: the rows that use it print zeros.
func threadCPU() time.Duration { return 0 }

// threadFaults is not measured here: the rows that use it print zeros.
func threadFaults() int64 { return 0 }
