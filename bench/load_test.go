package bench

import (
	"context"
	"path/filepath"
	"testing"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
)

// BenchmarkLoadCached is a process start's Load of a module with its compiled code (and
// its interrupt rewrite) already in the on-disk cache: a new engine each time,
// min_warm 0. hello uses fhttp (3.0 MB), hello-nethttp the same handler on net/http
// (5.3 MB), minimal the ABI alone (1.9 MB): the cost follows module size. cpu-ns/op is
// the process's CPU time per load (all threads: wazero's, the collector's).
func BenchmarkLoadCached(b *testing.B) {
	root := fermiontest.Root(b)
	m, err := manifest.Load(filepath.Join(root, "examples/hello"))
	if err != nil {
		b.Fatal(err)
	}
	m.Scaling.MinWarm = 0
	for _, g := range guestCallGuests {
		b.Run(g.name, func(b *testing.B) {
			spec := sandbox.SpecFromManifest(m, fermiontest.Guest(b, g.pkg, true))
			dir := b.TempDir()
			load := func() {
				e, err := sandbox.NewEngine(sandbox.EngineConfig{CacheDir: dir})
				if err != nil {
					b.Fatal(err)
				}
				f, err := e.Load(context.Background(), spec)
				if err != nil {
					b.Fatal(err)
				}
				f.Close(context.Background())
				e.Close(context.Background())
			}
			load() // populate the caches
			b.ReportMetric(float64(len(spec.Wasm))/1e6, "module-MB")
			cpu0 := cpuTime()
			for b.Loop() {
				load()
			}
			// The process's CPU per load: on a shared machine the wall time is mostly
			// waiting for a core.
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
