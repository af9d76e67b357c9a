package bench

import (
	"testing"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/wasmbin"
)

// BenchmarkInspect is the static part of Load's load-bound check: reading a module's
// outline (every function body's instructions) with wasmbin.Inspect. Compare it with
// BenchmarkLoadCached of the same guest in the same run: it is paid on every Load, cache
// or not.
func BenchmarkInspect(b *testing.B) {
	for _, g := range guestCallGuests {
		b.Run(g.name, func(b *testing.B) {
			wasm := fermiontest.Guest(b, g.pkg, true)
			b.SetBytes(int64(len(wasm)))
			for b.Loop() {
				if _, err := wasmbin.Inspect(wasm); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
