package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/wasmbin"
)

// TestOutlineCacheRoundTrip checks that a cached outline is the one wasmbin.Inspect
// reads: it fails when a field of wasmbin.Module does not survive the encoding, which
// is when outlineVersion must change with it.
func TestOutlineCacheRoundTrip(t *testing.T) {
	wasm := fermiontest.Guest(t, "examples/testdata/abi/minimal", true)
	want, err := wasmbin.Inspect(wasm)
	if err != nil {
		t.Fatal(err)
	}
	c, err := newOutlineCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sum := sumOf(wasm)
	for i, wantCached := range []bool{false, true} {
		got, cached, err := c.inspect(wasm, sum)
		if err != nil {
			t.Fatal(err)
		}
		if cached != wantCached {
			t.Fatalf("call %d: cached %v, want %v", i, cached, wantCached)
		}
		// %+v prints unexported fields too, and nil and empty slices alike.
		if g, w := fmt.Sprintf("%+v", *got), fmt.Sprintf("%+v", *want); g != w {
			t.Fatalf("call %d: outline\n%s\nwant\n%s", i, g, w)
		}
	}
}

// TestOutlineCacheDamaged checks that an entry that cannot be the module's outline is
// read again from the module and replaced, never used.
func TestOutlineCacheDamaged(t *testing.T) {
	wasm := fermiontest.Guest(t, "examples/testdata/abi/minimal", true)
	m, err := wasmbin.Inspect(wasm)
	if err != nil {
		t.Fatal(err)
	}
	encode := func(change func(m *wasmbin.Module)) []byte {
		c := *m
		c.Sections = append([]wasmbin.Section(nil), m.Sections...)
		c.Tables = append([]wasmbin.Table(nil), m.Tables...)
		change(&c)
		b, err := json.Marshal(&c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name  string
		entry []byte
	}{
		{"not json", []byte("\x00garbage")},
		{"truncated", encode(func(*wasmbin.Module) {})[:40]},
		{"another module's size", encode(func(m *wasmbin.Module) { m.Size++ })},
		{"section past the end", encode(func(m *wasmbin.Module) { m.Sections[len(m.Sections)-1].End = m.Size + 1 })},
		{"section before the header", encode(func(m *wasmbin.Module) { m.Sections[0].Start = 0 })},
		{"table limits out of order", encode(func(m *wasmbin.Module) {
			m.Tables = append(m.Tables, wasmbin.Table{LimitsStart: 9, LimitsEnd: 8})
		})},
	}
	sum := sumOf(wasm)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := newOutlineCache(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(c.dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(c.path(sum), tt.entry, 0o600); err != nil {
				t.Fatal(err)
			}
			got, cached, err := c.inspect(wasm, sum)
			if err != nil {
				t.Fatal(err)
			}
			if cached || fmt.Sprintf("%+v", *got) != fmt.Sprintf("%+v", *m) {
				t.Fatalf("damaged entry used (cached %v)", cached)
			}
			if _, cached, _ := c.inspect(wasm, sum); !cached {
				t.Fatal("damaged entry not replaced")
			}
		})
	}
}

// TestLoadCachedOutlineHoldsBounds checks that a module whose outline is cached is held
// to the bounds of each load, not those it was first read under, and that a cached
// outline gives the rewrite cache the same key as a fresh one (tables clamped).
func TestLoadCachedOutlineHoldsBounds(t *testing.T) {
	wasm := fermiontest.Guest(t, "examples/testdata/abi/minimal", true)
	dir := t.TempDir()
	e, err := NewEngine(EngineConfig{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	spec := Spec{Name: "m", Version: "1", Wasm: wasm,
		Limits:  manifest.Limits{MemoryBytes: 64 << 20, Timeout: time.Second, MaxRequestBody: 1 << 10, MaxResponseBody: 1 << 10, MaxConcurrency: 1},
		Scaling: manifest.Scaling{MaxInstances: 1, IdleTimeout: time.Minute}}
	f, err := e.Load(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	f.Close(context.Background())
	if _, cached, err := e.outlines.inspect(wasm, sumOf(wasm)); err != nil || !cached {
		t.Fatalf("outline not cached by the load: cached %v, err %v", cached, err)
	}

	fresh, err := vetModule(wasm, sumOf(wasm), DefaultLoadLimits, outlineCache{})
	if err != nil {
		t.Fatal(err)
	}
	fromCache, err := vetModule(wasm, sumOf(wasm), DefaultLoadLimits, e.outlines)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.sum != fromCache.sum || !bytes.Equal(fresh.bytes(), fromCache.bytes()) {
		t.Fatal("a cached outline vets the module differently from a fresh one")
	}

	spec.Version = "2"
	spec.Limits.Load.Functions = 10 // the minimal guest (Go) defines far more
	_, err = e.Load(context.Background(), spec)
	var be *BoundError
	if !errors.As(err, &be) || be.Over[0].Bound.Key != "max_functions" {
		t.Fatalf("load under max_functions = 10 with a cached outline: %v, want the max_functions bound", err)
	}
}

// FuzzOutlineCacheEntry feeds the outline cache any entry for a small module with a
// table to clamp: a damaged entry may be used only when it fits the module, and then
// vetting and clamping with it must not panic.
func FuzzOutlineCacheEntry(f *testing.F) {
	wasm := module(typeSec, funcSec, []byte{4, 1, 0x70, 0x00, 0x05}, globalSec, exportSec, codeSec(loopBody))
	m, err := wasmbin.Inspect(wasm)
	if err != nil {
		f.Fatal(err)
	}
	good, err := json.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(bytes.Replace(good, []byte(`"LimitsStart":`), []byte(`"LimitsStart":1`), 1))
	f.Add(bytes.Replace(good, []byte(`"Body":`), []byte(`"Body":9`), 1))
	f.Add([]byte(`{}`))
	c, err := newOutlineCache(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		f.Fatal(err)
	}
	sum := sumOf(wasm)
	f.Fuzz(func(t *testing.T, entry []byte) {
		if err := os.WriteFile(c.path(sum), entry, 0o600); err != nil {
			t.Fatal(err)
		}
		got, cached, err := c.inspect(wasm, sum)
		if err != nil {
			t.Fatal(err)
		}
		if cached && !outlineFits(got, len(wasm)) {
			t.Fatal("used an entry that does not fit the module")
		}
		if v, err := vetModule(wasm, sum, DefaultLoadLimits, outlineCache{}); err == nil {
			v.m = got // what a load would clamp with
			v.code = nil
			v.bytes()
		}
	})
}
