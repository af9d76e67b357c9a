//go:build !unix

package controlplane

import (
	"testing"
	"time"
)

// processCPU needs getrusage: the benchmark measures CPU time only on Unix.
func processCPU(b *testing.B) time.Duration {
	b.Skip("CPU time per operation is measured on Unix only")
	return 0
}
