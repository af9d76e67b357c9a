// Package bare serves a reactor guest the way a bare wazero prototype would: a net/http
// handler that encodes the request, calls fermion_handle on a pooled instance and
// writes what the guest answered. No gateway, no sandbox (no deadline, memory limit,
// concurrency slot or instance lifecycle), no request id, trace context, metrics or
// log line. It is the reference the data plane's own cost is measured against in the
// same run, by fermion-bench's bare targets and by the bench package's benchmarks.
package bare

import (
	"context"
	"fmt"
	"net/http"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/internal/sandbox"
)

// maxRequest is the exchange buffer each instance asks its guest for.
const maxRequest = 64 << 10

// Server is a bare wazero server's handler and the runtime behind it.
type Server struct {
	http.Handler
	rt   wazero.Runtime
	pool chan *instance
}

// New compiles wasm and instantiates it instances times (running _initialize), each
// instance taking one request at a time from a shared pool.
func New(ctx context.Context, wasm []byte, instances int) (*Server, error) {
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	fail := func(err error) (*Server, error) {
		rt.Close(ctx)
		return nil, fmt.Errorf("bare wazero server: %w", err)
	}
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	respond := api.GoModuleFunc(func(ctx context.Context, m api.Module, stack []uint64) {
		in := ctx.Value(instanceKey{}).(*instance)
		b, _ := m.Memory().Read(uint32(stack[0]), uint32(stack[1]))
		in.out = append(in.out[:0], b...)
	})
	if err := InstantiateHost(ctx, rt, respond); err != nil {
		return fail(err)
	}
	cm, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		return fail(err)
	}
	pool := make(chan *instance, instances)
	for range instances {
		mod, err := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName("").
			WithStartFunctions(abi.ExportInitialize).WithSysNanotime().WithSysWalltime())
		if err != nil {
			return fail(err)
		}
		in := &instance{mod: mod, handle: mod.ExportedFunction(abi.ExportHandle)}
		in.ctx = context.WithValue(ctx, instanceKey{}, in)
		stack := []uint64{maxRequest}
		if err := mod.ExportedFunction(abi.ExportBuf).CallWithStack(ctx, stack); err != nil {
			return fail(err)
		}
		in.ptr = uint32(stack[0])
		pool <- in
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
		if len(in.req) > maxRequest || !in.mod.Memory().Write(in.ptr, in.req) {
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
			return
		}
		in.stack[0] = uint64(len(in.req))
		var res abi.Response
		if err := in.handle.CallWithStack(in.ctx, in.stack[:]); err != nil || abi.DecodeResponse(in.out, &res, false) != nil {
			http.Error(w, "guest failed", http.StatusInternalServerError)
			return
		}
		for _, kv := range res.Headers {
			w.Header()[kv.Name] = append(w.Header()[kv.Name], kv.Value)
		}
		w.WriteHeader(int(res.Status))
		w.Write(res.Body)
	})
	return &Server{Handler: h, rt: rt, pool: pool}, nil
}

// Close closes the runtime and every instance.
func (s *Server) Close(ctx context.Context) error { return s.rt.Close(ctx) }

// Nop is a host function that does nothing.
var Nop = api.GoModuleFunc(func(context.Context, api.Module, []uint64) {})

// InstantiateHost registers the "fermion" host module in rt with respond as its
// response function; outbound calls (http_send, http_take) do nothing.
func InstantiateHost(ctx context.Context, rt wazero.Runtime, respond api.GoModuleFunc) error {
	i32 := api.ValueTypeI32
	_, err := rt.NewHostModuleBuilder(abi.HostModule).
		NewFunctionBuilder().WithGoModuleFunction(respond, []api.ValueType{i32, i32}, nil).Export(abi.HostResponse).
		NewFunctionBuilder().WithGoModuleFunction(Nop, []api.ValueType{i32, i32}, []api.ValueType{i32}).Export(abi.HostHTTPSend).
		NewFunctionBuilder().WithGoModuleFunction(Nop, []api.ValueType{i32, i32}, nil).Export(abi.HostHTTPTake).
		Instantiate(ctx)
	return err
}

type instanceKey struct{}

type instance struct {
	mod    api.Module
	handle api.Function
	ctx    context.Context
	ptr    uint32
	stack  [1]uint64
	hdrs   []abi.Header
	req    []byte
	out    []byte
}

// Warm calls every instance's handler calls times with req, as requests would, before
// the server is measured. A Go guest's linear memory, on the Go heap here, grows over
// its first ~16,000 requests (each growth a copy of the whole memory and garbage for
// the host's GC), and a FIFO pool spreads requests over all its instances: without
// this, a benchmark of a few seconds measures bare wazero partly warming up.
func (s *Server) Warm(ctx context.Context, calls int, req *abi.Request) error {
	enc := abi.AppendRequest(nil, req)
	if len(enc) > maxRequest {
		return fmt.Errorf("bare wazero warm: request of %d bytes exceeds %d", len(enc), maxRequest)
	}
	for range cap(s.pool) {
		in := <-s.pool
		err := func() error {
			defer func() { s.pool <- in }()
			for range calls {
				if !in.mod.Memory().Write(in.ptr, enc) {
					return fmt.Errorf("bare wazero warm: request buffer out of range")
				}
				in.stack[0] = uint64(len(enc))
				if err := in.handle.CallWithStack(in.ctx, in.stack[:]); err != nil {
					return fmt.Errorf("bare wazero warm: guest call: %w", err)
				}
			}
			return nil
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

// Target serves the server's instance pool as a gateway target (gateway.Target): the
// gateway's routing, ids, headers and limits in front of bare wazero's guest call, with
// no sandbox (no slot, deadline, instance lifecycle, timeline or logs). fermion-bench's
// ladder puts it between bare wazero and the full data plane.
type Target struct {
	s    *Server
	spec sandbox.Spec
}

// Target returns the pool as a gateway target named by spec (name, version, limits).
func (s *Server) Target(spec sandbox.Spec) *Target { return &Target{s: s, spec: spec} }

func (t *Target) Name() string       { return t.spec.Name }
func (t *Target) Version() string    { return t.spec.Version }
func (t *Target) Spec() sandbox.Spec { return t.spec }

// Traces says the pool records no spans, as a sandbox.Function without a tracer says:
// the gateway then leaves its ids' span out of the request's context for both, and the
// ladder's rungs differ only by the sandbox.
func (t *Target) Traces() bool { return false }

// Invoke runs req on a pooled instance. The response is copied out of the instance's
// buffer, as the sandbox copies it out of guest memory: the instance serves the next
// request while the gateway writes this one's.
func (t *Target) Invoke(ctx context.Context, req *sandbox.Request) (*sandbox.Response, error) {
	in := <-t.s.pool
	defer func() { t.s.pool <- in }()
	hs := in.hdrs[:0]
	for k, vs := range req.Header {
		if added(req.Added, k) {
			continue // the gateway's own, appended below as the sandbox does
		}
		for _, v := range vs {
			hs = append(hs, abi.Header{Name: k, Value: v})
		}
	}
	hs = append(hs, req.Added...)
	in.hdrs = hs
	in.req = abi.AppendRequest(in.req[:0], &abi.Request{Method: req.Method, URI: req.URI, Host: req.Host, RemoteAddr: req.RemoteAddr, Headers: hs, Body: req.Body})
	if len(in.req) > maxRequest || !in.mod.Memory().Write(in.ptr, in.req) {
		return nil, &sandbox.Error{Status: http.StatusRequestEntityTooLarge, Reason: "request_body", Msg: "request too large"}
	}
	in.stack[0] = uint64(len(in.req))
	if err := in.handle.CallWithStack(in.ctx, in.stack[:]); err != nil {
		return nil, fmt.Errorf("bare target: guest call: %w", err)
	}
	data := append([]byte(nil), in.out...)
	var res abi.Response
	if err := abi.DecodeResponse(data, &res, true); err != nil {
		return nil, fmt.Errorf("bare target: decode response: %w", err)
	}
	return &sandbox.Response{Status: res.Status, Header: res.Headers, Body: res.Body}, nil
}

// added reports whether the gateway adds the field name itself (sandbox.Request.Added).
func added(hs sandbox.Header, name string) bool {
	for _, h := range hs {
		if h.Name == name {
			return true
		}
	}
	return false
}
