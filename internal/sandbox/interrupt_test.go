package sandbox

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

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

// recurseSec and recurseBody: run(n) calls run(n-1) twice when n > 0, and no loop:
// 2^n calls.
var (
	recurseTypes  = []byte{1, 1, 0x60, 1, 0x7f, 0}
	recurseExport = []byte{7, 1, 3, 'r', 'u', 'n', 0x00, 0x00}
	recurseBody   = []byte{0, 0x20, 0, 0x04, 0x40,
		0x20, 0, 0x41, 1, 0x6b, 0x10, 0,
		0x20, 0, 0x41, 1, 0x6b, 0x10, 0,
		0x0b, 0x0b}
)

func TestInstrumentInterruptStops(t *testing.T) {
	for _, tc := range []struct {
		name string
		wasm []byte
		args []uint64
		hint bool // interrupt as the host does; false: $stop alone, as when the guest overwrites the hint
	}{
		{"tight loop", module(typeSec, funcSec, memSec, globalSec, exportSec, codeSec(loopBody)), nil, true},
		{"tight loop, hint lost", module(typeSec, funcSec, memSec, globalSec, exportSec, codeSec(loopBody)), nil, false},
		// Without the check at a calling function's entry this runs for 2^60 calls.
		{"recursion without loops", module(recurseTypes, funcSec, memSec, globalSec, recurseExport, codeSec(recurseBody)), []uint64{60}, true},
		{"recursion without loops, hint lost", module(recurseTypes, funcSec, memSec, globalSec, recurseExport, codeSec(recurseBody)), []uint64{60}, false},
		// return_call to itself: a loop without a loop instruction.
		{"tail call to itself", module(typeSec, funcSec, memSec, globalSec, exportSec, codeSec([]byte{0, 0x12, 0, 0x0b})), nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := instrumentInterrupt(tc.wasm)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
				WithCoreFeatures(api.CoreFeaturesV2|experimental.CoreFeaturesTailCall))
			defer rt.Close(ctx)
			mod, err := rt.Instantiate(ctx, out)
			if err != nil {
				t.Fatalf("instrumented module does not instantiate: %v", err)
			}
			inst := &instance{mod: mod}
			(&Function{interruptible: true}).bindInterrupt(inst)
			if inst.stop == nil || inst.count == nil {
				t.Fatal("fermion_interrupt or fermion_countdown not exported")
			}
			done := make(chan error, 1)
			go func() {
				_, err := mod.ExportedFunction("run").Call(ctx, tc.args...)
				done <- err
			}()
			// Running: the guest has passed a check.
			fermiontest.WaitFor(t, 10*time.Second, func() error {
				if inst.count.Get() == yieldEvery {
					return errors.New("the guest has passed no check")
				}
				return nil
			})
			// A loop in compiled code cannot be preempted by Go: without the yield the
			// instrumentation adds, a collection's stop-the-world would wait for the
			// guest forever, and this test would hang until go test's timeout.
			for range 3 {
				runtime.GC()
			}
			if tc.hint {
				inst.interrupt(0xefffffff)
			} else {
				inst.stop.Set(1)
			}
			if err := <-done; err == nil {
				t.Fatal("guest returned without error after interrupt")
			}
		})
	}
}

// TestInstrumentInterruptPlacesChecks counts the checks the rewrite adds: one per loop,
// and one at the entry of a function with two call sites or a tail call, unless its body
// begins with a loop.
func TestInstrumentInterruptPlacesChecks(t *testing.T) {
	typ := []byte{1, 1, 0x60, 0, 0}
	for _, tc := range []struct {
		name string
		body []byte
		want int
	}{
		{"straight line", []byte{0, 0x41, 1, 0x1a, 0x0b}, 0},
		{"one loop", loopBody, 1},
		{"two loops", []byte{0, 0x03, 0x40, 0x0b, 0x03, 0x40, 0x0b, 0x0b}, 2},
		{"nested loops", []byte{0, 0x03, 0x40, 0x03, 0x40, 0x0b, 0x0b, 0x0b}, 2},
		{"one call", []byte{0, 0x10, 0, 0x0b}, 0},
		{"two calls", []byte{0, 0x10, 0, 0x10, 0, 0x0b}, 1},
		{"two calls, then a loop", []byte{0, 0x10, 0, 0x10, 0, 0x03, 0x40, 0x0b, 0x0b}, 2},
		{"begins with a loop, two calls", []byte{0, 0x03, 0x40, 0x10, 0, 0x0b, 0x10, 0, 0x0b}, 1},
		{"tail call", []byte{0, 0x12, 0, 0x0b}, 1},
		{"tail call_indirect", []byte{0, 0x41, 0, 0x13, 0, 0, 0x0b}, 1},
		{"call and call_indirect", []byte{0, 0x10, 0, 0x41, 0, 0x11, 0, 0, 0x0b}, 1},
		{"locals, then a loop with two calls", []byte{1, 1, 0x7f, 0x03, 0x40, 0x10, 0, 0x10, 0, 0x0b, 0x0b}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := instrumentInterrupt(module(typ, funcSec, memSec, globalSec, exportSec, codeSec(tc.body)))
			if err != nil {
				t.Fatal(err)
			}
			// globalSec has one global, so $stop is 1 and $n is 2.
			if got := bytes.Count(out, interruptCheck(1, 2)); got != tc.want {
				t.Fatalf("%d checks, want %d", got, tc.want)
			}
		})
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

// FuzzInstrumentInterrupt: any module in, a refusal or a module out; and when wazero
// accepts the module, it accepts the rewritten one too.
func FuzzInstrumentInterrupt(f *testing.F) {
	f.Add(module(typeSec, funcSec, memSec, globalSec, exportSec, codeSec(loopBody)))
	f.Add(module(typeSec, funcSec, globalSec, exportSec, codeSec(loopBody)))
	f.Add(module(typeSec, funcSec, exportSec, codeSec(loopBody)))
	f.Add(module(recurseTypes, funcSec, memSec, globalSec, recurseExport, codeSec(recurseBody)))
	f.Add(module(typeSec, funcSec, memSec, globalSec, exportSec, codeSec([]byte{1, 1, 0x7f, 0x10, 0, 0x03, 0x40, 0x0b, 0x0b})))
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	f.Cleanup(func() { rt.Close(ctx) })
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
		in, err := rt.CompileModule(ctx, wasm)
		if err != nil {
			return // invalid in, whatever out
		}
		in.Close(ctx)
		rewritten, err := rt.CompileModule(ctx, out)
		if err != nil {
			t.Fatalf("wazero accepts the module but not its rewrite: %v", err)
		}
		rewritten.Close(ctx)
	})
}
