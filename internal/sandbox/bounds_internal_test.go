package sandbox

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/wasmbin"
)

func TestClampTables(t *testing.T) {
	tableSec := func(entries ...[]byte) []byte {
		return append([]byte{4, byte(len(entries))}, bytes.Join(entries, nil)...)
	}
	tests := []struct {
		name    string
		entries [][]byte
		want    []wasmbin.Table // after clamping to 100
		same    bool            // no rewrite needed
	}{
		{"no max", [][]byte{{0x70, 0x00, 0x05}}, []wasmbin.Table{{Min: 5, Max: 100, HasMax: true}}, false},
		{"max above", [][]byte{{0x70, 0x01, 0x05, 0xe8, 0x07}}, []wasmbin.Table{{Min: 5, Max: 100, HasMax: true}}, false},
		{"max below", [][]byte{{0x70, 0x01, 0x05, 0x0a}}, []wasmbin.Table{{Min: 5, Max: 10, HasMax: true}}, true},
		{"at the bound", [][]byte{{0x70, 0x01, 0x05, 0x64}}, []wasmbin.Table{{Min: 5, Max: 100, HasMax: true}}, true},
		{"two tables, one to clamp", [][]byte{{0x70, 0x01, 0x01, 0x02}, {0x6f, 0x00, 0x03}},
			[]wasmbin.Table{{Min: 1, Max: 2, HasMax: true}, {Min: 3, Max: 100, HasMax: true}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wasm := module(typeSec, funcSec, tableSec(tt.entries...), globalSec, exportSec, codeSec(loopBody))
			m, err := wasmbin.Inspect(wasm)
			if err != nil {
				t.Fatal(err)
			}
			out := clampTables(wasm, m, 100)
			if same := bytes.Equal(out, wasm); same != tt.same {
				t.Fatalf("rewritten: %v, want %v", !same, !tt.same)
			}
			got, err := wasmbin.Inspect(out)
			if err != nil {
				t.Fatalf("clamped module does not read: %v", err)
			}
			if len(got.Tables) != len(tt.want) {
				t.Fatalf("tables %+v", got.Tables)
			}
			for i, tb := range got.Tables {
				w := tt.want[i]
				if tb.Min != w.Min || tb.Max != w.Max || tb.HasMax != w.HasMax {
					t.Errorf("table %d: %+v, want %+v", i, tb, w)
				}
			}
			if got.Largest != m.Largest || got.Functions != m.Functions || got.Globals != m.Globals {
				t.Error("clamping changed more than the tables")
			}
		})
	}
}

// FuzzLoad feeds the loader (vet, then Check's rewrite and compilation) truncated and
// mutated modules: it must never panic, and a module it accepts must compile within the
// bounds, which keep compilation short here.
func FuzzLoad(f *testing.F) {
	f.Add(module(typeSec, funcSec, globalSec, exportSec, codeSec(loopBody)))
	f.Add(module(typeSec, funcSec, []byte{4, 1, 0x70, 0x00, 0x05}, globalSec, exportSec, codeSec(loopBody)))
	f.Add(module(typeSec, []byte{2, 1, 3, 'e', 'n', 'v', 3, 'f', 'o', 'o', 0x00, 0x00}, funcSec, exportSec, codeSec(loopBody)))
	// fermion.response imported twice with the wrong type, env.foo twice.
	f.Add(module(typeSec, []byte{2,
		4, 0x07, 'f', 'e', 'r', 'm', 'i', 'o', 'n', 0x08, 'r', 'e', 's', 'p', 'o', 'n', 's', 'e', 0x00, 0x00,
		0x07, 'f', 'e', 'r', 'm', 'i', 'o', 'n', 0x08, 'r', 'e', 's', 'p', 'o', 'n', 's', 'e', 0x00, 0x00,
		3, 'e', 'n', 'v', 3, 'f', 'o', 'o', 0x00, 0x00,
		3, 'e', 'n', 'v', 3, 'f', 'o', 'o', 0x00, 0x00}, funcSec, exportSec, codeSec(loopBody)))
	f.Add(module(typeSec, funcSec, exportSec, codeSec([]byte{0, 0x02, 0x40, 0x41, 0x00, 0x0e, 0x02, 0x00, 0x00, 0x00, 0x0b, 0x0b})))
	// The real guests, whole and cut at a few places; the fuzzer mutates from these.
	wasm := fermiontest.Guest(f, "examples/testdata/abi/minimal", true)
	f.Add(wasm)
	for _, n := range []int{9, 64, 1 << 10, 64 << 10, len(wasm) / 2, len(wasm) - 1} {
		f.Add(wasm[:n])
	}
	e, err := NewEngine(EngineConfig{CompileWorkers: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { e.Close(context.Background()) })
	small := manifest.LoadLimits{ModuleSize: 64 << 10, FunctionBranches: 1000, FunctionSize: 16 << 10,
		Functions: 1000, TableElements: 1 << 16, CompileTimeout: 10 * time.Second}
	f.Fuzz(func(t *testing.T, wasm []byte) {
		out, err := vet(wasm, DefaultLoadLimits)
		if err == nil {
			if _, err := wasmbin.Inspect(out); err != nil {
				t.Fatalf("vet's output does not read again: %v", err)
			}
		}
		var be *BoundError
		if errors.As(err, &be) && len(be.Over) == 0 {
			t.Fatal("bound error over no bound")
		}
		var ie *ImportError
		if errors.As(err, &ie) {
			// Each refused import is named once, however often the module imports it.
			seen := map[string]bool{}
			for _, s := range append(slices.Clone(ie.Missing), ie.Mismatched...) {
				id, _, _ := strings.Cut(s, ": ")
				id, _, _ = strings.Cut(id, "×")
				if seen[id] {
					t.Fatalf("import error names %s twice: %v", id, ie)
				}
				seen[id] = true
			}
		}
		if len(wasm) > int(small.ModuleSize) {
			return
		}
		start := time.Now()
		e.Check(context.Background(), wasm, "", small)
		if d := time.Since(start); d > time.Minute {
			t.Fatalf("checking a %d-byte module took %s", len(wasm), d)
		}
	})
}
