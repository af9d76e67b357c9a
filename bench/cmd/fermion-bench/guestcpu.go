package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/bench/internal/bare"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/rustbuild"
	"fermion.dev/fermion/internal/threadusage"
)

// guestCallRequest is the request guestcalls hands every guest: a GET with the three
// headers wrk and the gateway send (User-Agent, request id, trace context).
var guestCallRequest = abi.Request{Method: "GET", URI: "/hello", Host: "localhost:8080", RemoteAddr: "127.0.0.1:5555",
	Headers: []abi.Header{{Name: "User-Agent", Value: "wrk"}, {Name: "X-Request-Id", Value: "0123456789abcdef0123456789abcdef"},
		{Name: "Traceparent", Value: "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01"}}}

// buildGuestDir builds the guest in dir (relative to root): a Rust crate when it has a
// Cargo.toml (with the toolchain rustbuild finds), else a Go reactor package.
func buildGuestDir(root, dir string) ([]byte, error) {
	if _, err := os.Stat(filepath.Join(root, dir, "Cargo.toml")); err != nil {
		return fermiontest.BuildGuest(root, dir, true)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tc, err := rustbuild.Find(ctx)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", dir, err)
	}
	return tc.Build(ctx, filepath.Join(root, dir), filepath.Join(os.TempDir(), "fermion-rust-target"))
}

// guestCaller is a guest instance ready to serve guestCallRequest: call runs one
// request, close releases the runtime.
type guestCaller struct {
	call  func() error
	close func()
}

// newGuestCaller instantiates wasm under wazero's compiler with a response function
// that copies the response out, as a host must, and nothing else around the guest.
func newGuestCaller(wasm []byte) (*guestCaller, error) {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	fail := func(err error) (*guestCaller, error) {
		rt.Close(ctx)
		return nil, err
	}
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	var out []byte
	respond := api.GoModuleFunc(func(_ context.Context, m api.Module, stack []uint64) {
		b, _ := m.Memory().Read(uint32(stack[0]), uint32(stack[1]))
		out = append(out[:0], b...)
	})
	if err := bare.InstantiateHost(ctx, rt, respond); err != nil {
		return fail(err)
	}
	mod, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName("").
		WithStartFunctions(abi.ExportInitialize).WithSysNanotime().WithSysWalltime())
	if err != nil {
		return fail(err)
	}
	enc := abi.AppendRequest(nil, &guestCallRequest)
	stack := []uint64{uint64(len(enc))}
	if err := mod.ExportedFunction(abi.ExportBuf).CallWithStack(ctx, stack); err != nil {
		return fail(err)
	}
	ptr := uint32(stack[0])
	handle := mod.ExportedFunction(abi.ExportHandle)
	call := func() error {
		// The host writes every request, as Fermion does: the guest may have changed
		// its buffer.
		if !mod.Memory().Write(ptr, enc) {
			return fmt.Errorf("write request: guest buffer at %d out of range", ptr)
		}
		stack[0] = uint64(len(enc))
		if err := handle.CallWithStack(ctx, stack); err != nil {
			return err
		}
		if stack[0] != abi.HandleOK || len(out) == 0 {
			return fmt.Errorf("fermion_handle returned %d with %d response bytes", stack[0], len(out))
		}
		return nil
	}
	return &guestCaller{call: call, close: func() { rt.Close(ctx) }}, nil
}

// cpuSpread is the median, minimum and maximum of xs.
type cpuSpread struct{ med, lo, hi float64 }

func cpuSpreadOf(xs []float64) cpuSpread {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return cpuSpread{s[len(s)/2], s[0], s[len(s)-1]}
}

// guestCPU is each guest's own CPU time per request, in ns: calls calls per round on
// one locked thread, timed with that thread's CPU clock, so time the thread spent
// waiting for a core (the machine is shared) is not counted. With several guests the
// rounds alternate between them, so a change in the machine's state over the run
// (neighbours' load, the caches they leave) falls on all of them alike, and each
// round's ratio against the first guest is comparable.
func guestCPU(wasms [][]byte, calls, rounds int) (per []cpuSpread, ratio []cpuSpread, err error) {
	callers := make([]*guestCaller, len(wasms))
	for i, w := range wasms {
		c, err := newGuestCaller(w)
		if err != nil {
			return nil, nil, err
		}
		defer c.close()
		callers[i] = c
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, c := range callers { // warm up: lazy initialisation, the heap at its working size
		for range calls {
			if err := c.call(); err != nil {
				return nil, nil, err
			}
		}
	}
	ns := make([][]float64, len(callers))
	for range rounds {
		for i, c := range callers {
			t0 := threadusage.CPU()
			for range calls {
				if err := c.call(); err != nil {
					return nil, nil, err
				}
			}
			ns[i] = append(ns[i], float64(threadusage.CPU()-t0)/float64(calls))
		}
	}
	for i := range callers {
		per = append(per, cpuSpreadOf(ns[i]))
		rs := make([]float64, rounds)
		for r := range rounds {
			rs[r] = ns[i][r] / ns[0][r]
		}
		ratio = append(ratio, cpuSpreadOf(rs))
	}
	return per, ratio, nil
}
