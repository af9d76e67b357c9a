package sandbox

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
)

func TestRewriteCache(t *testing.T) {
	wasm := fermiontest.Guest(t, "examples/testdata/abi/minimal", true)
	want, err := instrumentInterrupt(wasm)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c, err := newRewriteCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	sum := sumOf(wasm)
	for i, wantCached := range []bool{false, true} {
		got, cached, err := c.instrument(sum, func() []byte { return wasm })
		if err != nil {
			t.Fatal(err)
		}
		if cached != wantCached || !bytes.Equal(got, want) {
			t.Fatalf("call %d: cached %v (want %v), same bytes %v", i, cached, wantCached, bytes.Equal(got, want))
		}
	}

	// A damaged entry must not fail a load: the engine rewrites again and replaces it.
	// Load rewrites the module as vet returns it (tables clamped), so that is the key.
	v, err := vetModule(wasm, sumOf(wasm), DefaultLoadLimits, outlineCache{})
	if err != nil {
		t.Fatal(err)
	}
	sum = v.sum
	if err := os.WriteFile(c.path(sum), []byte("\x00asm\x01\x00\x00\x00garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(EngineConfig{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	f, err := e.Load(context.Background(), Spec{Name: "m", Version: "1", Wasm: wasm,
		Limits:  manifest.Limits{MemoryBytes: 64 << 20, Timeout: time.Second, MaxRequestBody: 1 << 10, MaxResponseBody: 1 << 10, MaxConcurrency: 1},
		Scaling: manifest.Scaling{MaxInstances: 1, IdleTimeout: time.Minute}})
	if err != nil {
		t.Fatalf("load with a damaged rewrite cache: %v", err)
	}
	f.Close(context.Background())
	if !f.interruptible {
		t.Fatal("module loaded without the interrupt rewrite")
	}
	if _, err := os.Stat(c.path(sum)); !os.IsNotExist(err) {
		t.Fatalf("damaged cache entry kept: %v", err)
	}
}
