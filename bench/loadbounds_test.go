package bench

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"

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

// BenchmarkCompileControlFlow compiles (wazero, compiler engine, no cache) one function
// made of n blocks with a br_if each, and one with a br_table of 5n targets, for n and
// 4n: the ratio of the two sizes' times shows how compile cost grows with a function's
// branches (4 if linear, 16 if quadratic). It is why max_function_branches exists
// (docs/limits.md).
func BenchmarkCompileControlFlow(b *testing.B) {
	uleb := func(v int) []byte { return wasmbin.AppendU32(nil, uint32(v)) }
	module := func(body []byte) []byte {
		body = append(append([]byte{0}, body...), 0x0b) // no locals; end
		code := append(append([]byte{1}, uleb(len(body))...), body...)
		m := []byte("\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x0a")
		m = append(m, uleb(len(code))...)
		return append(m, code...)
	}
	blocks := func(n int) []byte {
		return module(bytes.Repeat([]byte{0x02, 0x40, 0x41, 0x00, 0x0d, 0x00, 0x0b}, n))
	}
	brTable := func(n int) []byte {
		body := append([]byte{0x02, 0x40, 0x41, 0x00, 0x0e}, uleb(n)...)
		body = append(body, bytes.Repeat([]byte{0x00}, n+1)...)
		return module(append(body, 0x0b))
	}
	for _, c := range []struct {
		name string
		wasm []byte
	}{
		{"blocks-1000", blocks(1000)}, {"blocks-4000", blocks(4000)},
		{"br_table-5000", brTable(5000)}, {"br_table-20000", brTable(20000)},
	} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			cpu := cpuTime()
			for b.Loop() {
				rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
				if _, err := rt.CompileModule(ctx, c.wasm); err != nil {
					b.Fatal(err)
				}
				rt.Close(ctx)
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
		})
	}
}
