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

// guestCPU is a guest's own CPU time per request under wazero's compiler: fermion_handle
// called directly with the prepared request, a response function that copies the
// response out as a host must, nothing else around it. Each round times calls calls on
// one locked thread with that thread's CPU clock, so time the thread spent waiting for a
// core (the machine is shared) is not counted; the rounds' median and spread are
// returned, in ns per call.
func guestCPU(wasm []byte, calls, rounds int) (med, lo, hi float64, err error) {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
	defer rt.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	var out []byte
	respond := api.GoModuleFunc(func(_ context.Context, m api.Module, stack []uint64) {
		b, _ := m.Memory().Read(uint32(stack[0]), uint32(stack[1]))
		out = append(out[:0], b...)
	})
	if err := bare.InstantiateHost(ctx, rt, respond); err != nil {
		return 0, 0, 0, err
	}
	mod, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName("").
		WithStartFunctions(abi.ExportInitialize).WithSysNanotime().WithSysWalltime())
	if err != nil {
		return 0, 0, 0, err
	}
	enc := abi.AppendRequest(nil, &guestCallRequest)
	stack := []uint64{uint64(len(enc))}
	if err := mod.ExportedFunction(abi.ExportBuf).CallWithStack(ctx, stack); err != nil {
		return 0, 0, 0, err
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
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for range calls { // warm up: lazy initialisation, the guest's heap at its working size
		if err := call(); err != nil {
			return 0, 0, 0, err
		}
	}
	per := make([]float64, 0, rounds)
	for range rounds {
		t0 := threadCPU()
		for range calls {
			if err := call(); err != nil {
				return 0, 0, 0, err
			}
		}
		per = append(per, float64(threadCPU()-t0)/float64(calls))
	}
	sort.Float64s(per)
	return per[len(per)/2], per[0], per[len(per)-1], nil
}
