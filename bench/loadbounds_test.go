package bench

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/wasmbin"
)

// BenchmarkLoadBounds measures the static part of Load's load-bound check, reading a
// module's outline (every function body's instructions) with wasmbin.Inspect, against
// its baseline in the same run: a process start's Load of the same module from a warm
// compilation cache (as BenchmarkLoadCached), which includes the check. Besides ns/op
// each reports cpu-ms/op, the process's CPU time per operation, which a machine shared
// with other work disturbs less than wall time.
func BenchmarkLoadBounds(b *testing.B) {
	root := fermiontest.Root(b)
	m, err := manifest.Load(filepath.Join(root, "examples/hello"))
	if err != nil {
		b.Fatal(err)
	}
	m.Scaling.MinWarm = 0
	for _, g := range guestCallGuests {
		wasm := fermiontest.Guest(b, g.pkg, true)
		b.Run(g.name+"/inspect", func(b *testing.B) {
			b.SetBytes(int64(len(wasm)))
			cpu := cpuTime()
			for b.Loop() {
				if _, err := wasmbin.Inspect(wasm); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
		})
		b.Run(g.name+"/load-cached", func(b *testing.B) {
			spec := sandbox.SpecFromManifest(m, wasm)
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
			cpu := cpuTime()
			for b.Loop() {
				load()
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
		})
	}
}
