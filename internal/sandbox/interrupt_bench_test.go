package sandbox

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/threadusage"
)

// BenchmarkInterruptChecks is one call of a guest's fermion_handle through wazero
// alone, the module as compiled and as instrumentInterrupt rewrote it (the checks at
// loops and calling functions' entries), with nothing else of Fermion around it: what
// the checks add to a request's guest code. Bare wazero, the platform budget's
// reference, runs the module as compiled, so this is part of the platform's share that
// no change to the gateway or the call path can remove. Besides ns/op it reports
// cpu-ns/op, the calling thread's CPU time per call (threadusage.CPU), which a neighbour's
// load moves less; the guest first serves warmCalls requests, so its heap has reached
// its working size. hello-rust needs a Rust toolchain (skipped without one, and in
// -short).
func BenchmarkInterruptChecks(b *testing.B) {
	guests := []struct {
		name string
		wasm func(b *testing.B) []byte
	}{
		{"abi-minimal", func(b *testing.B) []byte { return fermiontest.Guest(b, "examples/testdata/abi/minimal", true) }},
		{"hello", func(b *testing.B) []byte { return fermiontest.Guest(b, "examples/hello", true) }},
		{"hello-rust", func(b *testing.B) []byte { return fermiontest.RustGuest(b, "examples/hello-rust") }},
	}
	// What wrk sends, with the ids the gateway adds.
	req := abi.AppendRequest(nil, &abi.Request{Method: "GET", URI: "/hello", Host: "127.0.0.1:8080", RemoteAddr: "127.0.0.1:40000",
		Headers: []abi.Header{{Name: "X-Request-Id", Value: "0123456789abcdef0123456789abcdef"},
			{Name: "Traceparent", Value: "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01"}}})
	for _, g := range guests {
		for _, instrumented := range []bool{false, true} {
			name := g.name + "/compiled"
			if instrumented {
				name = g.name + "/instrumented"
			}
			b.Run(name, func(b *testing.B) {
				wasm := g.wasm(b)
				if instrumented {
					var err error
					if wasm, err = instrumentInterrupt(wasm); err != nil {
						b.Fatal(err)
					}
				}
				handle, stack := handleOnly(b, wasm, req)
				call := func() {
					stack[0] = uint64(len(req))
					if err := handle.CallWithStack(context.Background(), stack); err != nil {
						b.Fatal(err)
					}
				}
				for range warmCalls {
					call()
				}
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				b.ReportAllocs()
				b.ResetTimer()
				cpu := threadusage.CPU()
				for b.Loop() {
					call()
				}
				if threadusage.Measured {
					b.ReportMetric(float64(threadusage.CPU()-cpu)/float64(b.N), "cpu-ns/op")
				}
			})
		}
	}
}

// warmCalls is how many requests a guest serves before it is measured.
const warmCalls = 5000

// tightLoop is a module whose run(n) adds n, n-1, ... 1 in a loop of five instructions
// and a branch: the loop a check costs the most in, relative to the loop's own work.
func tightLoop() []byte {
	types := []byte{1, 1, 0x60, 1, 0x7f, 1, 0x7f} // (i32) -> i32
	body := []byte{1, 1, 0x7f,                    // local $acc i32
		0x03, 0x40, // loop
		0x20, 1, 0x20, 0, 0x6a, 0x21, 1, // $acc += $n
		0x20, 0, 0x41, 1, 0x6b, 0x22, 0, // $n--
		0x0d, 0, // br_if 0 ($n != 0)
		0x0b, 0x20, 1, 0x0b}
	return module(types, funcSec, memSec, globalSec, exportSec, codeSec(body))
}

// BenchmarkInterruptTightLoop is one iteration of tightLoop's loop (an op), the module
// as compiled and as rewritten: the checks' fast path where nothing else hides it.
// cpu-ns/op is the calling thread's CPU time per iteration.
func BenchmarkInterruptTightLoop(b *testing.B) {
	const iterations = 1 << 16
	for _, instrumented := range []bool{false, true} {
		name := "compiled"
		if instrumented {
			name = "instrumented"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			mod := instantiateBare(b, tightLoop(), instrumented)
			run, stack := mod.ExportedFunction("run"), []uint64{0}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.ResetTimer()
			cpu := threadusage.CPU()
			for i := 0; i < b.N; i += iterations { // b.N iterations, in calls of up to 65,536
				stack[0] = uint64(min(iterations, b.N-i))
				if err := run.CallWithStack(ctx, stack); err != nil {
					b.Fatal(err)
				}
			}
			if threadusage.Measured {
				b.ReportMetric(float64(threadusage.CPU()-cpu)/float64(b.N), "cpu-ns/op")
			}
		})
	}
}

// BenchmarkInterruptStopLatency is how long a guest spinning in a tight loop takes to
// stop once interrupted: from the host's interrupt to the guest's call returning its
// trap, read on the guest's goroutine (so no scheduler wake-up is counted). "hint" is
// interrupt as the host calls it; "hint lost" sets $stop alone, as when the guest's own
// decrement overwrites the host's $n: the worst case, a full countdown of yieldEvery
// iterations. It reports the mean (ns/stop) and the largest (max-ns/stop); nothing is
// asserted, a busy machine stretches both.
func BenchmarkInterruptStopLatency(b *testing.B) {
	for _, hint := range []bool{true, false} {
		name := "hint"
		if !hint {
			name = "hint lost"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			mod := instantiateBare(b, module(typeSec, funcSec, memSec, globalSec, exportSec, codeSec(loopBody)), true)
			inst := &instance{mod: mod}
			(&Function{interruptible: true}).bindInterrupt(inst)
			run := mod.ExportedFunction("run")
			type result struct {
				err error
				at  time.Time
			}
			done := make(chan result)
			var total, worst time.Duration
			b.ResetTimer()
			for b.Loop() {
				inst.stop.Set(0)
				inst.count.Set(yieldEvery)
				go func() {
					_, err := run.Call(ctx)
					done <- result{err, time.Now()}
				}()
				// Spinning: it has passed a check (polled, so its thread is busy in the loop).
				for inst.count.Get() == yieldEvery {
					runtime.Gosched()
				}
				t0 := time.Now()
				if hint {
					inst.interrupt(sys.ExitCodeDeadlineExceeded)
				} else {
					inst.stop.Set(1)
				}
				res := <-done
				d := res.at.Sub(t0)
				if res.err == nil {
					b.Fatal("the loop returned without a trap")
				}
				total += d
				worst = max(worst, d)
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/stop")
			b.ReportMetric(float64(worst.Nanoseconds()), "max-ns/stop")
		})
	}
}

// instantiateBare instantiates wasm, rewritten by instrumentInterrupt if instrumented,
// in a compiler runtime of its own that is closed when the benchmark ends: wazero alone,
// with no host module.
func instantiateBare(b testing.TB, wasm []byte, instrumented bool) api.Module {
	b.Helper()
	if instrumented {
		var err error
		if wasm, err = instrumentInterrupt(wasm); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	b.Cleanup(func() { rt.Close(ctx) })
	mod, err := rt.Instantiate(ctx, wasm)
	if err != nil {
		b.Fatal(err)
	}
	return mod
}

// handleOnly instantiates wasm in a runtime of its own, with a response host function
// that keeps nothing, writes req into the guest's request buffer and returns the guest's
// handler with a stack for calling it.
func handleOnly(b testing.TB, wasm, req []byte) (api.Function, []uint64) {
	b.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	b.Cleanup(func() { rt.Close(ctx) })
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	nop := api.GoModuleFunc(func(context.Context, api.Module, []uint64) {})
	i32 := api.ValueTypeI32
	if _, err := rt.NewHostModuleBuilder(abi.HostModule).
		NewFunctionBuilder().WithGoModuleFunction(nop, []api.ValueType{i32, i32}, nil).Export(abi.HostResponse).
		NewFunctionBuilder().WithGoModuleFunction(nop, []api.ValueType{i32, i32}, []api.ValueType{i32}).Export(abi.HostHTTPSend).
		NewFunctionBuilder().WithGoModuleFunction(nop, []api.ValueType{i32, i32}, nil).Export(abi.HostHTTPTake).
		Instantiate(ctx); err != nil {
		b.Fatal(err)
	}
	mod, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName("").
		WithStartFunctions().WithSysNanotime().WithSysWalltime())
	if err != nil {
		b.Fatal(err)
	}
	// A rewritten reactor's data segments are the host's to write (datapassive.go).
	if o, err := readOutline(wasm); err == nil && o.facts.data != nil {
		segs, err := hostData(wasm, o.facts.data)
		if err != nil {
			b.Fatal(err)
		}
		mem, _ := mod.Memory().Read(0, mod.Memory().Size())
		if err := writeData(mem, segs); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := mod.ExportedFunction(abi.ExportInitialize).Call(ctx); err != nil {
		b.Fatal(err)
	}
	stack := []uint64{uint64(len(req)), 0}
	if err := mod.ExportedFunction(abi.ExportBuf).CallWithStack(ctx, stack); err != nil {
		b.Fatal(err)
	}
	if !mod.Memory().Write(uint32(stack[0]), req) {
		b.Fatal("request buffer out of range")
	}
	return mod.ExportedFunction(abi.ExportHandle), stack
}
