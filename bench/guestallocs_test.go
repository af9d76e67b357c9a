package bench

import (
	"context"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/internal/fermiontest"
)

// TestGuestAllocations holds the Go SDK's per-request allocations inside a real wasm
// guest (issue 17): every heap allocation of a Go guest calls runtime.mallocgc, so a
// function listener under wazero's interpreter counts them, as fermion-bench guestcalls
// does. The native TestServeAllocations tests in sdk/ cannot see the wasm build.
func TestGuestAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("builds guests and runs them under the interpreter")
	}
	for _, tt := range []struct {
		guest string
		max   float64 // allocations per request
	}{
		{"examples/hello", 0.01},                 // fhttp with ReuseRequests: none (0.06 without it)
		{"examples/testdata/hello-nethttp", 3.2}, // net/http's header map (2) and the handler's Set
	} {
		t.Run(tt.guest, func(t *testing.T) {
			const n = 500
			var c mallocCounter
			got := guestCalls(t, fermiontest.Guest(t, tt.guest, true), &c, &c.n, n)
			t.Logf("%s: %.2f allocations per request", tt.guest, got)
			if got > tt.max {
				t.Fatalf("%.2f allocations per request inside the guest, want at most %.2f", got, tt.max)
			}
		})
	}
}

// mallocCounter counts calls of runtime.mallocgc.
type mallocCounter struct{ n int }

func (c *mallocCounter) NewFunctionListener(def api.FunctionDefinition) experimental.FunctionListener {
	if strings.TrimPrefix(def.DebugName(), ".") != "runtime.mallocgc" {
		return nil
	}
	return experimental.FunctionListenerFunc(func(context.Context, api.Module, api.FunctionDefinition, []uint64, experimental.StackIterator) {
		c.n++
	})
}

// guestCalls runs wasm's handler under the interpreter with f's listeners and returns
// *count per request over n requests, after warm-up requests that let the guest set up
// what it allocates once.
func guestCalls(t *testing.T, wasm []byte, f experimental.FunctionListenerFactory, count *int, n int) float64 {
	t.Helper()
	ctx := experimental.WithFunctionListenerFactory(context.Background(), f)
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	nop := api.GoModuleFunc(func(context.Context, api.Module, []uint64) {})
	i32 := api.ValueTypeI32
	if _, err := rt.NewHostModuleBuilder(abi.HostModule).
		NewFunctionBuilder().WithGoModuleFunction(nop, []api.ValueType{i32, i32}, nil).Export(abi.HostResponse).
		NewFunctionBuilder().WithGoModuleFunction(nop, []api.ValueType{i32, i32}, []api.ValueType{i32}).Export(abi.HostHTTPSend).
		NewFunctionBuilder().WithGoModuleFunction(nop, []api.ValueType{i32, i32}, nil).Export(abi.HostHTTPTake).
		Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	mod, err := rt.InstantiateWithConfig(ctx, wasm,
		wazero.NewModuleConfig().WithStartFunctions(abi.ExportInitialize).WithSysNanotime().WithSysWalltime())
	if err != nil {
		t.Fatal(err)
	}
	enc := abi.AppendRequest(nil, &abi.Request{Method: "GET", URI: "/hello", Host: "localhost:8080", RemoteAddr: "127.0.0.1:5555",
		Headers: []abi.Header{{Name: "User-Agent", Value: "wrk"}, {Name: "X-Request-Id", Value: "0123456789abcdef0123456789abcdef"},
			{Name: "Traceparent", Value: "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01"}}})
	res, err := mod.ExportedFunction(abi.ExportBuf).Call(ctx, uint64(len(enc)))
	if err != nil {
		t.Fatal(err)
	}
	mod.Memory().Write(uint32(res[0]), enc)
	handle := mod.ExportedFunction(abi.ExportHandle)
	call := func() {
		if r, err := handle.Call(ctx, uint64(len(enc))); err != nil || r[0] != abi.HandleOK {
			t.Fatalf("fermion_handle: %v %v", r, err)
		}
	}
	for range 50 {
		call()
	}
	*count = 0
	for range n {
		call()
	}
	return float64(*count) / float64(n)
}
