package sandbox

import (
	"context"
	"net/http"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
)

// TestMemoryHeldInPool: an instance holds its memory from its creation until it is
// closed, in the pool between requests too (no hold and release per request), so a
// free of its memory while it waits there (a module closed from elsewhere) leaves the
// mapping in place, and closing the instance retires it.
func TestMemoryHeldInPool(t *testing.T) {
	e, err := NewEngine(EngineConfig{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	f, err := e.Load(context.Background(), Spec{
		Name: "minimal", Version: "1.0.0", Wasm: fermiontest.Guest(t, "examples/testdata/abi/minimal", true),
		Limits: manifest.Limits{MemoryBytes: 64 << 20, Timeout: 5 * time.Second, MaxRequestBody: 1 << 20,
			MaxResponseBody: 1 << 20, MaxConcurrency: 1},
		Scaling: manifest.Scaling{MaxInstances: 1, IdleTimeout: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close(context.Background())
	req := &Request{Method: "GET", URI: "/", Host: "test", Header: http.Header{}}
	for range 2 { // a new instance, then the same one from the pool
		if _, err := f.Invoke(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	f.mu.Lock()
	if len(f.idle) != 1 {
		f.mu.Unlock()
		t.Fatalf("%d idle instances, want 1", len(f.idle))
	}
	inst := f.idle[0]
	f.mu.Unlock()
	lm := inst.lm
	if lm == nil {
		t.Skip("the instance's memory is not Fermion's mapping")
	}
	if got := lm.state.Load(); got != memHeld {
		t.Fatalf("a pooled instance's memory is in state %d, want held (%d)", got, memHeld)
	}
	lm.Free() // as wazero does when the module is closed
	if got := lm.state.Load(); got != memFreeWhenIdle || lm.buf == nil {
		t.Fatalf("after a free in the pool: state %d, mapped %v; want %d, still mapped", got, lm.buf != nil, memFreeWhenIdle)
	}
	if err := f.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := lm.state.Load(); got != memFreed || lm.buf != nil {
		t.Fatalf("after the instance closed: state %d, mapped %v; want %d, unmapped", got, lm.buf != nil, memFreed)
	}
}
