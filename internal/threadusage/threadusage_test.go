package threadusage

import (
	"runtime"
	"testing"
	"time"
)

// TestCPUCountsOwnWork: spinning on a locked thread moves its CPU clock forward, and
// sleeping (no CPU used) moves it far less than the wall time slept.
func TestCPUCountsOwnWork(t *testing.T) {
	if !Measured {
		t.Skip("no per-thread CPU clock on " + runtime.GOOS)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c0 := CPU()
	if c0 <= 0 {
		t.Fatalf("CPU() = %v, want the thread's positive CPU time", c0)
	}
	// Spin until the clock has moved by 5 ms: it must, however slow the machine.
	for CPU()-c0 < 5*time.Millisecond {
	}
	c1 := CPU()
	const slept = 200 * time.Millisecond
	time.Sleep(slept)
	if d := CPU() - c1; d >= slept/2 {
		t.Fatalf("a %v sleep counted %v of thread CPU, want far less", slept, d)
	}
}

// TestFaultsCountTouchedPages: touching fresh pages on a locked thread counts faults,
// never fewer than before.
func TestFaultsCountTouchedPages(t *testing.T) {
	if !Measured {
		t.Skip("no per-thread fault counter on " + runtime.GOOS)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f0 := Faults()
	b := make([]byte, 16<<20) // fresh pages from the OS: the runtime maps a large span
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	runtime.KeepAlive(b)
	if f := Faults(); f <= f0 {
		t.Fatalf("Faults() went from %d to %d over touching 16 MiB, want it to grow", f0, f)
	}
}
