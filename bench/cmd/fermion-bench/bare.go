package main

import (
	"context"
	"fmt"
	"net"
	"net/http"

	"fermion.dev/fermion/bench/internal/bare"
)

// bareTarget serves a reactor guest the way a bare wazero prototype would
// (bench/internal/bare). It is the reference the issue's "≈0.9× with a bare wazero
// prototype" was measured with: against it, the rest of the data plane's cost shows in
// the same run.
func bareTarget(name string, wasm []byte, instances int) (target, error) {
	ctx := context.Background()
	srv, err := bare.New(ctx, wasm, instances)
	if err != nil {
		return target{}, fmt.Errorf("bare wazero target: %w", err)
	}
	// As the ladder's rungs are: a Go guest's memory, on the Go heap here, grows (each
	// time a copy of all of it) over its first ~16,000 requests, and the FIFO pool
	// spreads the harness's warmup over every instance. Unwarmed, "bare wazero, hello"
	// faulted in ~70 MB/s of fresh heap pages during its rounds (0.77 page faults per
	// request, against 0.02 for Fermion serving the same guest).
	if err := srv.Warm(ctx, ladderWarmCalls, &ladderRequest); err != nil {
		srv.Close(ctx)
		return target{}, fmt.Errorf("bare wazero target: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close(ctx)
		return target{}, fmt.Errorf("bare wazero target: %w", err)
	}
	hs := &http.Server{Handler: srv}
	go hs.Serve(ln)
	return target{name: name, url: "http://" + ln.Addr().String() + "/hello", close: func() { hs.Close(); srv.Close(ctx) }}, nil
}
