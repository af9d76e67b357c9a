package sandbox

import (
	"context"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/internal/fermiontest"
)

// BenchmarkInterruptChecks is one call of a guest's fermion_handle through wazero
// alone, the module as compiled and as instrumentInterrupt rewrote it (the interrupt
// check and the yield countdown at the top of every loop), with nothing else of
// Fermion around it: what the checks add to a request's guest code. Bare wazero, the
// platform budget's reference, runs the module as compiled, so this is part of the
// platform's share that no change to the gateway or the call path can remove.
// hello-rust needs a Rust toolchain (skipped without one, and in -short).
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
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					stack[0] = uint64(len(req))
					if err := handle.CallWithStack(context.Background(), stack); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// handleOnly instantiates wasm in a runtime of its own, with a response host function
// that keeps nothing, writes req into the guest's request buffer and returns the guest's
// handler with a stack for calling it.
func handleOnly(b *testing.B, wasm, req []byte) (api.Function, []uint64) {
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
