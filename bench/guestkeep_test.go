package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/internal/fermiontest"
)

// TestGuestKeepsRequests runs fhttp's promises to a handler inside a real wasm guest
// (examples/testdata/fhttp-keep): requests it keeps never change as later ones
// arrive, across the SDK's request blocks and arena chunks (the padding makes the run
// span several 16 KiB chunks) and garbage collections; no request's URL or header
// shows in another's response; and response header names given in lower case come
// out canonical, every time: from the name cache after the first for literals, and by
// CanonicalHeaderKey's pass every time for the name made on the heap, which the cache
// must not keep (it would pin what the name was cut from).
func TestGuestKeepsRequests(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a guest and runs it under the interpreter")
	}
	var canon canonicalCounter
	ctx := experimental.WithFunctionListenerFactory(context.Background(), &canon)
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	var out []byte
	respond := api.GoModuleFunc(func(_ context.Context, m api.Module, stack []uint64) {
		b, _ := m.Memory().Read(uint32(stack[0]), uint32(stack[1]))
		out = append(out[:0], b...)
	})
	nop := api.GoModuleFunc(func(context.Context, api.Module, []uint64) {})
	i32 := api.ValueTypeI32
	if _, err := rt.NewHostModuleBuilder(abi.HostModule).
		NewFunctionBuilder().WithGoModuleFunction(respond, []api.ValueType{i32, i32}, nil).Export(abi.HostResponse).
		NewFunctionBuilder().WithGoModuleFunction(nop, []api.ValueType{i32, i32}, []api.ValueType{i32}).Export(abi.HostHTTPSend).
		NewFunctionBuilder().WithGoModuleFunction(nop, []api.ValueType{i32, i32}, nil).Export(abi.HostHTTPTake).
		Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	mod, err := rt.InstantiateWithConfig(ctx, fermiontest.Guest(t, "examples/testdata/fhttp-keep", true),
		wazero.NewModuleConfig().WithStartFunctions(abi.ExportInitialize).WithSysNanotime().WithSysWalltime())
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("p", 200)
	const n = 120
	for i := range n {
		if i == 1 {
			canon.n = 0 // the first request fills the cache
		}
		path, id := fmt.Sprintf("/keep/%d", i), fmt.Sprintf("id-%d", i)
		enc := abi.AppendRequest(nil, &abi.Request{Method: []string{"GET", "POST", "DELETE"}[i%3], URI: path + "?q=" + id,
			Host: fmt.Sprintf("h%d.example", i), RemoteAddr: "127.0.0.1:5555",
			Headers: []abi.Header{{Name: "X-Id", Value: id}, {Name: "X-Pad", Value: pad[:100+i%100]}}})
		res, err := mod.ExportedFunction(abi.ExportBuf).Call(ctx, uint64(len(enc)))
		if err != nil {
			t.Fatal(err)
		}
		mod.Memory().Write(uint32(res[0]), enc)
		out = out[:0]
		if r, err := mod.ExportedFunction(abi.ExportHandle).Call(ctx, uint64(len(enc))); err != nil || r[0] != abi.HandleOK {
			t.Fatalf("request %d: fermion_handle: %v %v", i, r, err)
		}
		var resp abi.Response
		if err := abi.DecodeResponse(out, &resp, false); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if resp.Status != 200 || string(resp.Body) != "ok\n" {
			t.Fatalf("request %d: status %d, body %q", i, resp.Status, resp.Body)
		}
		want := []abi.Header{{Name: "Content-Type", Value: "text/plain; charset=utf-8"}, {Name: "X-Path", Value: path}, {Name: "X-Id", Value: id},
			{Name: "X-Heap", Value: "1"}}
		if fmt.Sprint(resp.Headers) != fmt.Sprint(want) {
			t.Fatalf("request %d: headers %v, want %v", i, resp.Headers, want)
		}
	}
	// Per request: the heap name's, and none for the three literals.
	if got, want := float64(canon.n)/(n-1), 1.0; got != want {
		t.Fatalf("%.2f calls of fhttp.canonicalHeaderKey per request, want %.0f: the name cache should hold the literals and only them", got, want)
	}
}

// canonicalCounter counts calls of fhttp's canonicalHeaderKey, the pass CanonicalHeaderKey
// makes when its cache does not answer.
type canonicalCounter struct{ n int }

func (c *canonicalCounter) NewFunctionListener(def api.FunctionDefinition) experimental.FunctionListener {
	if strings.TrimPrefix(def.DebugName(), ".") != "fermion.dev_fermion_sdk_fhttp.canonicalHeaderKey" {
		return nil
	}
	return experimental.FunctionListenerFunc(func(context.Context, api.Module, api.FunctionDefinition, []uint64, experimental.StackIterator) {
		c.n++
	})
}
