package sandbox

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"testing"

	"github.com/tetratelabs/wazero"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/wasmbin"
)

// module assembles a wasm binary from sections (id, body).
func module(sections ...[]byte) []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	for _, s := range sections {
		b = append(b, s[0])
		b = wasmbin.AppendU32(b, uint32(len(s)-1))
		b = append(b, s[1:]...)
	}
	return b
}

var (
	typeSec   = []byte{1, 1, 0x60, 0, 0}                                  // () -> ()
	funcSec   = []byte{3, 1, 0}                                           // one function of type 0
	memSec    = []byte{5, 1, 0x00, 0x01}                                  // one memory of one page
	globalSec = []byte{6, 1, 0x7f, 0x00, 0x41, 0x00, 0x0b}                // immutable i32 0
	exportSec = []byte{7, 1, 3, 'r', 'u', 'n', 0x00, 0x00}                // export func 0 as "run"
	loopBody  = []byte{0, 0x03, 0x40, 0x41, 0x01, 0x0d, 0x00, 0x0b, 0x0b} // loop { br_if 0 (i32.const 1) } — never ends
)

func codeSec(body []byte) []byte {
	b := []byte{10}
	b = append(b, 1)
	b = wasmbin.AppendU32(b, uint32(len(body)))
	return append(b, body...)
}

func TestInstrumentInterruptStopsALoop(t *testing.T) {
	wasm := module(typeSec, funcSec, memSec, globalSec, exportSec, codeSec(loopBody))
	out, err := instrumentInterrupt(wasm)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	mod, err := rt.Instantiate(ctx, out)
	if err != nil {
		t.Fatalf("instrumented module does not instantiate: %v", err)
	}
	inst := &instance{mod: mod}
	(&Function{interruptible: true}).bindInterrupt(inst)
	if inst.stop == nil {
		t.Fatal("no fermion_interrupt global exported")
	}
	done := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		_, err := mod.ExportedFunction("run").Call(ctx)
		done <- err
	}()
	<-started
	// A loop in compiled code cannot be preempted by Go: without the yield the
	// instrumentation adds, a collection's stop-the-world would wait for the loop
	// forever, and this test would hang until go test's timeout.
	for range 3 {
		runtime.GC()
	}
	inst.interrupt(0xefffffff)
	if err := <-done; err == nil {
		t.Fatal("tight loop returned without error after interrupt")
	}
}

func TestInstrumentInterruptGoGuest(t *testing.T) {
	wasm := fermiontest.Guest(t, "examples/hello", true)
	out, err := instrumentInterrupt(wasm)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(out, wasm) || len(out) <= len(wasm) {
		t.Fatal("module unchanged")
	}
	// Idempotent in effect: a second pass parses what the first wrote.
	if _, err := instrumentInterrupt(out); err != nil {
		t.Fatalf("re-instrument: %v", err)
	}
}

func TestInstrumentInterruptRefuses(t *testing.T) {
	simd := []byte{0, 0xfd, 0x0c}
	simd = append(simd, make([]byte, 16)...)
	simd = append(simd, 0x1a, 0x0b)
	for _, tc := range []struct {
		name string
		wasm []byte
		want error
	}{
		{"not wasm", []byte("hello world"), ErrNotWasm},
		{"no global section", module(typeSec, funcSec, memSec, exportSec, codeSec(loopBody)), errUninstrumentable},
		{"no memory", module(typeSec, funcSec, globalSec, exportSec, codeSec(loopBody)), errUninstrumentable},
		{"simd", module(typeSec, funcSec, memSec, globalSec, exportSec, codeSec(simd)), errUninstrumentable},
		{"truncated section", module(typeSec, funcSec, memSec, globalSec, exportSec, codeSec(loopBody))[:30], wasmbin.ErrTruncated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := instrumentInterrupt(tc.wasm)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzInstrumentInterrupt(f *testing.F) {
	f.Add(module(typeSec, funcSec, memSec, globalSec, exportSec, codeSec(loopBody)))
	f.Add(module(typeSec, funcSec, globalSec, exportSec, codeSec(loopBody)))
	f.Add(module(typeSec, funcSec, exportSec, codeSec(loopBody)))
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, wasm []byte) {
		out, err := instrumentInterrupt(wasm)
		if err != nil {
			return
		}
		if !bytes.HasPrefix(out, wasm[:8]) {
			t.Fatal("header not preserved")
		}
		if _, err := instrumentInterrupt(out); err != nil {
			t.Fatalf("output of a successful rewrite does not parse again: %v", err)
		}
	})
}
