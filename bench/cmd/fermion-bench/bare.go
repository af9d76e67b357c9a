package main

import (
	"context"
	"fmt"
	"net"
	"net/http"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"fermion.dev/fermion/api/abi"
)

// bareTarget serves a reactor guest the way a bare wazero prototype would: a net/http
// handler that encodes the request, calls fermion_handle on a pooled instance and
// writes what the guest answered. No gateway, no sandbox (no deadline, memory limit,
// concurrency slot or instance lifecycle), no request id, trace context, metrics or
// log line. It is the reference the "≈0.9× with a bare wazero prototype" was
// measured with: against it, the rest of the data plane's cost shows in the same run.
func bareTarget(name string, wasm []byte, instances int) (target, error) {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	fail := func(err error) (target, error) {
		rt.Close(ctx)
		return target{}, fmt.Errorf("bare wazero target: %w", err)
	}
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	respond := api.GoModuleFunc(func(ctx context.Context, m api.Module, stack []uint64) {
		in := ctx.Value(bareKey{}).(*bareInstance)
		b, _ := m.Memory().Read(uint32(stack[0]), uint32(stack[1]))
		in.out = append(in.out[:0], b...)
	})
	if err := instantiateHost(ctx, rt, respond); err != nil {
		return fail(err)
	}
	cm, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		return fail(err)
	}
	pool := make(chan *bareInstance, instances)
	for i := 0; i < instances; i++ {
		mod, err := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName("").
			WithStartFunctions(abi.ExportInitialize).WithSysNanotime().WithSysWalltime())
		if err != nil {
			return fail(err)
		}
		in := &bareInstance{mod: mod, handle: mod.ExportedFunction(abi.ExportHandle)}
		in.ctx = context.WithValue(ctx, bareKey{}, in)
		stack := []uint64{64 << 10}
		if err := mod.ExportedFunction(abi.ExportBuf).CallWithStack(ctx, stack); err != nil {
			return fail(err)
		}
		in.ptr = uint32(stack[0])
		pool <- in
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := <-pool
		defer func() { pool <- in }()
		hs := in.hdrs[:0]
		for k, vs := range r.Header {
			for _, v := range vs {
				hs = append(hs, abi.Header{Name: k, Value: v})
			}
		}
		in.hdrs = hs
		in.req = abi.AppendRequest(in.req[:0], &abi.Request{Method: r.Method, URI: r.RequestURI, Host: r.Host, RemoteAddr: r.RemoteAddr, Headers: hs})
		if len(in.req) > 64<<10 || !in.mod.Memory().Write(in.ptr, in.req) {
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
			return
		}
		in.stack[0] = uint64(len(in.req))
		var res abi.Response
		if err := in.handle.CallWithStack(in.ctx, in.stack[:]); err != nil || abi.DecodeResponse(in.out, &res, false) != nil {
			http.Error(w, "guest failed", http.StatusInternalServerError)
			return
		}
		for _, h := range res.Headers {
			w.Header()[h.Name] = append(w.Header()[h.Name], h.Value)
		}
		w.WriteHeader(int(res.Status))
		w.Write(res.Body)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	srv := &http.Server{Handler: handler}
	go srv.Serve(ln)
	return target{name: name, url: "http://" + ln.Addr().String() + "/hello", close: func() { srv.Close(); rt.Close(ctx) }}, nil
}

// nopHost is a host function that does nothing.
var nopHost = api.GoModuleFunc(func(context.Context, api.Module, []uint64) {})

// instantiateHost registers the "fermion" host module in rt with respond as its
// response function; outbound calls (http_send, http_take) do nothing.
func instantiateHost(ctx context.Context, rt wazero.Runtime, respond api.GoModuleFunc) error {
	i32 := api.ValueTypeI32
	_, err := rt.NewHostModuleBuilder(abi.HostModule).
		NewFunctionBuilder().WithGoModuleFunction(respond, []api.ValueType{i32, i32}, nil).Export(abi.HostResponse).
		NewFunctionBuilder().WithGoModuleFunction(nopHost, []api.ValueType{i32, i32}, []api.ValueType{i32}).Export(abi.HostHTTPSend).
		NewFunctionBuilder().WithGoModuleFunction(nopHost, []api.ValueType{i32, i32}, nil).Export(abi.HostHTTPTake).
		Instantiate(ctx)
	return err
}

type bareKey struct{}

type bareInstance struct {
	mod    api.Module
	handle api.Function
	ctx    context.Context
	ptr    uint32
	stack  [1]uint64
	hdrs   []abi.Header
	req    []byte
	out    []byte
}
