//go:build unix

package sandbox

import (
	"context"
	"syscall"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
)

// BenchmarkPoolCycle is the pool's share of a request alone: a concurrency slot and a
// warm instance taken and given back, with no guest call, in parallel on one goroutine
// per -cpu. Run with -cpu 1,2: with two goroutines on two cores, every word all
// requests write moves between the cores' caches, and cpu-ns/op (the process's CPU
// time per cycle) shows what that costs. The ABI-only guest, two instances warm.
func BenchmarkPoolCycle(b *testing.B) {
	e, err := NewEngine(EngineConfig{CacheDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close(context.Background())
	f, err := e.Load(context.Background(), Spec{
		Name: "minimal", Version: "1.0.0", Wasm: fermiontest.Guest(b, "examples/testdata/abi/minimal", true),
		Limits: manifest.Limits{MemoryBytes: 64 << 20, Timeout: 5 * time.Second, MaxRequestBody: 1 << 20,
			MaxResponseBody: 1 << 20, MaxConcurrency: 8, QueueTimeout: time.Second},
		Scaling: manifest.Scaling{MinWarm: 2, MaxInstances: 8, IdleTimeout: time.Minute},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close(context.Background())
	ctx := context.Background()
	b.ReportAllocs()
	start := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := poolCycle(ctx, f); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
}

// poolCycle is what Invoke does with the pool around its guest call.
func poolCycle(ctx context.Context, f *Function) error {
	inst, err := f.acquire(ctx, ctx)
	if err != nil {
		return err
	}
	if inst == nil {
		if inst, _, err = f.getInstance(ctx); err != nil {
			f.releaseSlot()
			return err
		}
	}
	f.putInstance(inst, "")
	return nil
}

// processCPU is the process's user and system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
