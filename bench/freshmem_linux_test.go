package bench

import (
	"sort"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkFreshMemory is what a new instance on fresh memory pays the kernel, without
// wazero: a linear-memory reservation mapped as the sandbox maps it (memory_linux.go),
// then the bytes a restored examples/hello writes (its 2.4 MB of data segments, then
// the snapshot's 340 KB of pages spread over the next 0.8 MB), in bursts of 20 kept
// mapped until the burst ends, as a prewarm does. The sub-benchmarks compare 2 MiB
// pages (MADV_HUGEPAGE, what the sandbox asks for) with 4 KiB ones, each with and
// without MADV_POPULATE_WRITE (faulting the range in one call instead of page by page).
// p50-ms and p99-ms are per new memory.
func BenchmarkFreshMemory(b *testing.B) {
	const (
		reservation = 128 << 20
		data        = 2400 << 10
		size        = 3200 << 10
		burst       = 20
	)
	for _, c := range []struct {
		name           string
		huge, populate bool
	}{
		{"huge", true, false},
		{"huge+populate", true, true},
		{"4k", false, false},
		{"4k+populate", false, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			var ds []time.Duration
			live := make([][]byte, 0, burst)
			unmap := func() {
				for _, m := range live {
					unix.Munmap(m)
				}
				live = live[:0]
			}
			defer unmap()
			for b.Loop() {
				t0 := time.Now()
				m, err := unix.Mmap(-1, 0, reservation, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
				if err != nil {
					b.Fatal(err)
				}
				if c.huge {
					unix.Madvise(m, unix.MADV_HUGEPAGE)
				}
				if c.populate {
					if err := unix.Madvise(m[:size], unix.MADV_POPULATE_WRITE); err != nil {
						b.Skipf("MADV_POPULATE_WRITE: %v (Linux 5.14 or later)", err)
					}
				}
				for i := 0; i < data; i += 64 {
					m[i] = 1
				}
				for i := data; i < size; i += 4 << 10 {
					m[i] = 2
				}
				ds = append(ds, time.Since(t0))
				if live = append(live, m); len(live) == burst {
					unmap()
				}
			}
			sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
			b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
