package bench

import (
	"context"
	"path/filepath"
	"testing"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
)

// BenchmarkLoadCached is a process start's Load of examples/hello with its compiled
// code already in the on-disk cache (a new engine each time, min_warm 0).
func BenchmarkLoadCached(b *testing.B) {
	root := fermiontest.Root(b)
	m, err := manifest.Load(filepath.Join(root, "examples/hello"))
	if err != nil {
		b.Fatal(err)
	}
	m.Scaling.MinWarm = 0
	spec := sandbox.SpecFromManifest(m, fermiontest.Guest(b, "examples/hello", true))
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
	load() // populate the cache
	for b.Loop() {
		load()
	}
}
