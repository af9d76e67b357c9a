package sandbox

import (
	"context"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
)

// BenchmarkSnapshotReset is what a reused memory's reset costs (writeInto, inside
// instantiation), for the examples' snapshots: the memory as a discarded instance left
// it, every byte of the snapshot's size possibly dirty. bytes/op is the snapshot's size.
func BenchmarkSnapshotReset(b *testing.B) {
	for _, g := range []string{"examples/hello", "examples/enrich", "examples/echo"} {
		b.Run(g[len("examples/"):], func(b *testing.B) {
			s := loadSnapshot(b, g)
			size := uint64(s.pages) << 16
			buf := make([]byte, size+1<<20)
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, ok := s.writeInto(buf, size); !ok {
					b.Fatal("not restored")
				}
			}
		})
	}
}

// loadSnapshot loads a reactor guest and returns its snapshot.
func loadSnapshot(tb testing.TB, guest string) *snapshot {
	tb.Helper()
	e, err := NewEngine(EngineConfig{CacheDir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close(context.Background()) })
	f, err := e.Load(context.Background(), Spec{
		Name: "s", Version: "1", Wasm: fermiontest.Guest(tb, guest, true),
		Limits: manifest.Limits{MemoryBytes: 64 << 20, Timeout: 5 * time.Second, MaxRequestBody: 1 << 20,
			MaxResponseBody: 1 << 20, MaxConcurrency: 4, QueueTimeout: 100 * time.Millisecond},
		Scaling: manifest.Scaling{MaxInstances: 4, IdleTimeout: time.Minute},
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close(context.Background()) })
	if f.snaps.snap == nil {
		tb.Fatalf("%s: no snapshot: %s", guest, f.Snapshot().Reason)
	}
	return f.snaps.snap
}
