package bench

import (
	"context"
	"net/http"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
)

// BenchmarkNewInstance is a request on a new instance, every time: a function whose
// instances serve one request each (max_requests_per_instance = 1), started by running
// _initialize (init) or restored from the snapshot (snapshot). new-p50-ms and
// new-p99-ms are what fermion_instance_start_seconds observes (instantiate + init or
// restore); ns/op includes the request and discarding the instance.
func BenchmarkNewInstance(b *testing.B) {
	root := fermiontest.Root(b)
	m, err := manifest.Load(filepath.Join(root, "examples/hello"))
	if err != nil {
		b.Fatal(err)
	}
	m.Scaling.MinWarm = 0
	m.Scaling.MaxRequestsPerInstance = 1
	cache := b.TempDir()
	for _, g := range []string{"examples/hello", "examples/enrich", "examples/echo"} {
		for _, snap := range []bool{false, true} {
			name := filepath.Base(g) + map[bool]string{false: "/init", true: "/snapshot"}[snap]
			b.Run(name, func(b *testing.B) {
				var mu sync.Mutex
				var starts []time.Duration
				e, err := sandbox.NewEngine(sandbox.EngineConfig{CacheDir: cache, NoSnapshots: !snap,
					OnInstanceStart: func(inst, init time.Duration) {
						mu.Lock()
						starts = append(starts, inst+init)
						mu.Unlock()
					}})
				if err != nil {
					b.Fatal(err)
				}
				defer e.Close(context.Background())
				f, err := e.Load(context.Background(), sandbox.SpecFromManifest(m, fermiontest.Guest(b, g, true)))
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close(context.Background())
				if snap && !f.Snapshot().Used {
					b.Fatalf("no snapshot: %s", f.Snapshot().Reason)
				}
				req := &sandbox.Request{ID: "bench", Method: "GET", URI: "/hello", Host: "localhost", Header: http.Header{}}
				mu.Lock()
				starts = starts[:0] // the snapshot's own instance, if any
				mu.Unlock()
				b.ReportAllocs()
				flt0, cpu0 := minorFaults(), cpuTime()
				for b.Loop() {
					if _, err := f.Invoke(context.Background(), req); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(minorFaults()-flt0)/float64(b.N), "minflt/op")
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
				mu.Lock()
				defer mu.Unlock()
				if len(starts) == 0 {
					return
				}
				sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
				b.ReportMetric(float64(starts[len(starts)/2].Microseconds())/1000, "new-p50-ms")
				b.ReportMetric(float64(starts[len(starts)*99/100].Microseconds())/1000, "new-p99-ms")
			})
		}
	}
}

// minorFaults is the process's minor page faults so far.
func minorFaults() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Minflt
}
