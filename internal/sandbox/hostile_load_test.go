package sandbox_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/wasmbin"
)

// Hostile modules at load: every resource a module declares is bounded before it is
// compiled, its compilation is bounded in time, and what it imports must exist. The
// modules are raw guests (rawguest_test.go) so that each test controls the one count it
// is about.

// workerEngine returns an engine that compiles in a child process: this test binary,
// which TestMain turns into a compile worker.
func workerEngine(t *testing.T, dir string) *sandbox.Engine {
	t.Helper()
	e, err := sandbox.NewEngine(sandbox.EngineConfig{CacheDir: dir, CompileWorkers: 1, CompileWorker: []string{os.Args[0]}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e
}

func funcref(min uint32, max ...uint32) []byte {
	if len(max) == 0 {
		return cat([]byte{0x70, 0x00}, uleb(uint64(min)))
	}
	return cat([]byte{0x70, 0x01}, uleb(uint64(min)), uleb(uint64(max[0])))
}

// tableGrow is a handler that grows table 0 by delta and answers rawOK when table.grow
// failed (returned -1) as wantFail says it should, and traps otherwise.
func tableGrow(delta int32, wantFail bool) []byte {
	cmp := byte(0x46) // i32.eq: trap when it failed
	if wantFail {
		cmp = 0x47 // i32.ne: trap when it grew
	}
	return cat([]byte{0xd0, 0x70}, i32(delta), []byte{0xfc, 0x0f, 0x00}, i32(-1), []byte{cmp, 0x04, 0x40}, opUnreachable, opEnd, respond(rawOK))
}

// heapInUse is the Go heap in use after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// wantBound fails unless err is a *sandbox.BoundError over the bound with manifest key
// key, and its message names limits.key and the --flag that raises it.
func wantBound(t *testing.T, err error, key string) {
	t.Helper()
	var be *sandbox.BoundError
	if !errors.As(err, &be) {
		t.Fatalf("error %v (%T) is not a *sandbox.BoundError", err, err)
	}
	found := false
	for _, o := range be.Over {
		found = found || o.Bound.Key == key
	}
	if !found {
		t.Fatalf("error %q is not over %s", err, key)
	}
	for _, w := range []string{"limits." + key, "--" + strings.ReplaceAll(key, "_", "-")} {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error %q does not name %s", err, w)
		}
	}
}

func TestHostileTableGrow(t *testing.T) {
	e, _ := newEngine(t)
	const bound = 1000
	tests := []struct {
		name  string
		table []byte
		bound int // 0: the default
		delta int32
		fail  bool
	}{
		{"grow to the bound", funcref(1), bound, bound - 1, false},
		{"grow past the bound", funcref(1), bound, bound, true},
		{"declared max above the bound", funcref(1, 10*bound), bound, bound, true},
		{"declared max below the bound holds", funcref(1, 10), bound, 10, true},
		{"100M entries against the default bound", funcref(1), 0, 100_000_000, true},
		{"to the default bound", funcref(1), 0, int32(sandbox.DefaultLoadLimits.TableElements) - 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := rawSpec(rawGuest{handle: tableGrow(tt.delta, tt.fail), tables: [][]byte{tt.table}}.withResponse(rawOK))
			s.Name = "table"
			s.Limits.Load.TableElements = tt.bound
			before := heapInUse()
			f := load(t, e, s)
			// An instance is reused, and its table keeps what it grew: a guest that
			// succeeded once is at the bound, so only failing guests are asked again.
			for i := 0; i < 1+2*boolInt(tt.fail); i++ {
				resp, err := invoke(t, f, get("/"))
				if err != nil || resp.Status != http.StatusOK {
					t.Fatalf("request %d: %v %v (table.grow %s)", i, resp, err, map[bool]string{true: "grew past the bound", false: "failed within the bound"}[tt.fail])
				}
			}
			// The default bound's 1M entries are 8 MiB per instance; the guest
			// took 1.6 GB.
			if grew := int64(heapInUse()) - int64(before); grew > 256<<20 {
				t.Fatalf("heap grew by %d MiB", grew>>20)
			}
		})
	}
	t.Run("initial size over the bound", func(t *testing.T) {
		s := rawSpec(rawGuest{tables: [][]byte{funcref(bound + 1)}})
		s.Limits.Load.TableElements = bound
		_, err := e.Load(context.Background(), s)
		wantBound(t, err, "max_table_elements")
	})
}

// boundCase is a module and the bound it is at; the bound one lower must refuse it.
type boundCase struct {
	key   string
	value int64
	wasm  []byte
}

// TestHostileLoadBounds loads a module at each bound and refuses it one below.
func TestHostileLoadBounds(t *testing.T) {
	e, _ := newEngine(t)
	global := []byte{0x7f, 0x00, 0x41, 0x00, 0x0b}         // immutable i32 = 0
	elem := cat([]byte{0x00}, i32(0), opEnd, vec(uleb(5))) // table 0 at 0: _initialize
	g := rawGuest{
		handle:  cat(opLoop, localGet(1), brIf(0), opEnd, []byte{0x02, 0x40}, i32(0), []byte{0x0e, 0x02, 0x00, 0x00, 0x00}, opEnd, respond(rawOK)),
		tables:  [][]byte{funcref(4)},
		globals: [][]byte{global, global},
		elems:   [][]byte{elem, elem},
		locals:  3,
	}.withResponse(rawOK).withText("x")
	wasm := g.wasm()
	outline, err := wasmbin.Inspect(wasm)
	if err != nil {
		t.Fatal(err)
	}
	handleBody := len(cat(vec(cat(uleb(3), []byte{0x7f})), g.handle, opEnd))
	cases := []boundCase{
		{"max_module_size", int64(len(wasm)), wasm},
		{"max_code_size", int64(outline.CodeBytes), wasm},
		{"max_function_size", int64(handleBody), wasm},
		{"max_functions", 3, wasm},
		{"max_function_locals", 3, wasm},
		// handle: loop, br_if, block, br_table with 3 targets = 6
		{"max_function_branches", 6, wasm},
		{"max_table_elements", 4, wasm},
		{"max_globals", 2, wasm},
		{"max_data_segments", int64(len(g.data)), wasm},
		{"max_element_segments", 2, wasm},
	}
	bound := func(key string) sandbox.LoadBound {
		for _, b := range sandbox.LoadBounds() {
			if b.Key == key {
				return b
			}
		}
		t.Fatalf("no bound %s", key)
		return sandbox.LoadBound{}
	}
	for _, c := range cases {
		t.Run(c.key, func(t *testing.T) {
			b := bound(c.key)
			s := spec("bounds", c.wasm)
			b.Set(&s.Limits.Load, c.value)
			f := load(t, e, s)
			wantOK(t, f, get("/"), "raw ok")

			b.Set(&s.Limits.Load, c.value-1)
			if c.value-1 == 0 {
				return // 0 means the default: nothing is below a bound of 1
			}
			_, err := e.Load(context.Background(), s)
			wantBound(t, err, c.key)
			_, err = e.Check(context.Background(), c.wasm, "", s.Limits.Load)
			wantBound(t, err, c.key)
		})
	}
	t.Run("node bound, manifest raises it", func(t *testing.T) {
		ne, err := sandbox.NewEngine(sandbox.EngineConfig{LoadLimits: manifest.LoadLimits{Functions: 2}})
		if err != nil {
			t.Fatal(err)
		}
		defer ne.Close(context.Background())
		s := spec("bounds", wasm)
		_, err = ne.Load(context.Background(), s)
		wantBound(t, err, "max_functions")
		s.Limits.Load.Functions = 3
		f := load(t, ne, s)
		wantOK(t, f, get("/"), "raw ok")
	})
}

// brTable is a handler whose one br_table has n targets: wazero's compile time grows
// faster than a function's branches (67 s for 200,000 in the issue).
func brTable(n int) []byte {
	targets := bytes.Repeat([]byte{0x00}, n)
	return cat([]byte{0x02, 0x40}, i32(0), []byte{0x0e}, uleb(uint64(n)), targets, []byte{0x00}, opEnd, respond(rawOK))
}

// TestHostileCompile refuses a module whose compilation cost is superlinear: by its
// static bound at once, and, with the bound raised, by the compile worker's timeout, which
// kills the compilation. A well-behaved function on the same engine answers 200
// throughout, and the node's heap does not balloon.
func TestHostileCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles in a child process for seconds")
	}
	dir := t.TempDir()
	e := workerEngine(t, dir)
	good := load(t, e, rawSpec(rawGuest{handle: respond(rawOK)}.withResponse(rawOK)))
	stop := make(chan struct{})
	var served, failed atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := good.Invoke(context.Background(), get("/"))
			if err != nil || resp.Status != http.StatusOK {
				failed.Add(1)
			}
			served.Add(1)
		}
	}()
	hostile := rawGuest{handle: brTable(200_000)}.withResponse(rawOK).wasm()
	before := heapInUse()

	t.Run("static bound", func(t *testing.T) {
		start := time.Now()
		_, err := e.Load(context.Background(), spec("hostile", hostile))
		wantBound(t, err, "max_function_branches")
		if !strings.Contains(err.Error(), "br_table has 200001 targets") {
			t.Errorf("error %q does not say which br_table", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("refusing took %s", d)
		}
	})
	t.Run("compile timeout", func(t *testing.T) {
		s := spec("hostile", hostile)
		s.Limits.Load.FunctionBranches = 1_000_000
		s.Limits.Load.CompileTimeout = time.Second
		start := time.Now()
		_, err := e.Load(context.Background(), s)
		wantBound(t, err, "compile_timeout")
		// Killed at 1 s; the margin is for a machine busy with other tests.
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("refusing took %s", d)
		}
		// Check, which fermion build and push use, refuses it the same way.
		_, err = e.Check(context.Background(), hostile, "", s.Limits.Load)
		wantBound(t, err, "compile_timeout")
	})
	t.Run("compile memory", func(t *testing.T) {
		if raceEnabled {
			t.Skip("the race detector's runtime fails first, in its own way, under the worker's memory rlimit")
		}
		// Compiling this module takes ~500 MB (the measurement).
		me, err := sandbox.NewEngine(sandbox.EngineConfig{CacheDir: t.TempDir(), CompileWorkers: 1,
			CompileWorker: []string{os.Args[0]}, CompileMemory: 128 << 20})
		if err != nil {
			t.Fatal(err)
		}
		defer me.Close(context.Background())
		s := spec("hostile", hostile)
		s.Limits.Load.FunctionBranches = 1_000_000
		s.Limits.Load.CompileTimeout = 5 * time.Minute // the memory bound must stop it first
		start := time.Now()
		_, err = me.Load(context.Background(), s)
		if err == nil || !strings.Contains(err.Error(), "--compile-memory") {
			t.Fatalf("error %v, want one naming --compile-memory", err)
		}
		t.Logf("refused: %v", err)
		if d := time.Since(start); d > time.Minute {
			t.Errorf("refusing took %s", d)
		}
	})
	t.Run("well-behaved module through the worker", func(t *testing.T) {
		s := rawSpec(rawGuest{handle: brTable(100)}.withResponse(rawOK))
		s.Name = "small-table"
		f := load(t, e, s)
		wantOK(t, f, get("/"), "raw ok")

		// Compiled once by a worker, the module is not given to one again: an engine
		// whose worker cannot even start still loads it, and nothing new.
		broken, err := sandbox.NewEngine(sandbox.EngineConfig{CacheDir: dir, CompileWorker: []string{"/nonexistent/fermion"}})
		if err != nil {
			t.Fatal(err)
		}
		defer broken.Close(context.Background())
		again := load(t, broken, s)
		wantOK(t, again, get("/"), "raw ok")
		s = rawSpec(rawGuest{handle: brTable(101)}.withResponse(rawOK))
		if _, err := broken.Load(context.Background(), s); err == nil || !strings.Contains(err.Error(), "compile worker") {
			t.Fatalf("new module with a broken worker: %v, want a compile worker error", err)
		}
	})
	for served.Load() < 10 { // at least a few requests overlapped the loads
		wantOK(t, good, get("/"), "raw ok")
		served.Add(1)
	}
	close(stop)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d requests to the well-behaved function failed during the hostile loads", n, served.Load())
	}
	if grew := int64(heapInUse()) - int64(before); grew > 128<<20 {
		t.Errorf("heap grew by %d MiB across the hostile loads", grew>>20)
	}
}

// TestHostileCompileInProcess: without a compile worker, the static bound alone refuses
// the same module, as fast.
func TestHostileCompileInProcess(t *testing.T) {
	e, err := sandbox.NewEngine(sandbox.EngineConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	start := time.Now()
	_, err = e.Load(context.Background(), spec("hostile", rawGuest{handle: brTable(200_000)}.withResponse(rawOK).wasm()))
	wantBound(t, err, "max_function_branches")
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("refusing took %s", d)
	}
}

func TestHostileImports(t *testing.T) {
	e, _ := newEngine(t)
	imp := func(mod, field string, typ byte) []byte { return cat(name(mod), name(field), []byte{0x00, typ}) }
	tests := []struct {
		name      string
		imports   [][]byte
		missing   []string
		mismatch  string
		wantInMsg []string
	}{
		{name: "env", imports: [][]byte{imp("env", "foo", 0)}, missing: []string{"env.foo"}},
		{name: "wagi http", imports: [][]byte{imp("wasi_experimental_http", "req", 3)}, missing: []string{"wasi_experimental_http.req"}},
		{name: "two missing", imports: [][]byte{imp("env", "foo", 0), imp("env", "bar", 1)}, missing: []string{"env.foo", "env.bar"}},
		{name: "unknown wasi function", imports: [][]byte{imp("wasi_snapshot_preview1", "fd_teleport", 0)}, missing: []string{"wasi_snapshot_preview1.fd_teleport"}},
		{name: "unknown host function", imports: [][]byte{imp("fermion", "kv_get", 3)}, missing: []string{"fermion.kv_get"}},
		{name: "imported memory", imports: [][]byte{cat(name("env"), name("memory"), []byte{0x02, 0x00, 0x01})}, missing: []string{"env.memory (memory)"}},
		// fermion.response is (i32, i32) -> (); type 1 is (i32) -> i32.
		{name: "wrong signature", imports: [][]byte{imp("fermion", "response", 1)}, mismatch: "fermion.response: (i32) -> (i32), host has (i32, i32) -> ()"},
		// A name imported n times is listed once with ×n, counting only the refused
		// imports (rawGuest also imports fermion.response rightly), and each distinct
		// wrong signature once.
		{name: "repeated wrong signature", imports: [][]byte{imp("fermion", "response", 1), imp("fermion", "response", 1), imp("fermion", "response", 1)},
			mismatch: "fermion.response×3: (i32) -> (i32), host has (i32, i32) -> ()"},
		{name: "two wrong signatures", imports: [][]byte{imp("fermion", "response", 1), imp("fermion", "response", 0), imp("fermion", "response", 1)},
			mismatch: "fermion.response×3: (i32) -> (i32) or () -> (), host has (i32, i32) -> ()"},
		{name: "repeated missing", imports: [][]byte{imp("env", "foo", 0), imp("env", "bar", 1), imp("env", "foo", 1)}, missing: []string{"env.foo×2", "env.bar"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wasm := rawGuest{imports: tt.imports}.wasm()
			_, lerr := e.Load(context.Background(), spec("imports", wasm))
			_, cerr := e.Check(context.Background(), wasm, "", manifest.LoadLimits{})
			for _, err := range []error{lerr, cerr} {
				var ie *sandbox.ImportError
				if !errors.As(err, &ie) {
					t.Fatalf("error %v (%T) is not a *sandbox.ImportError", err, err)
				}
				if strings.Join(ie.Missing, " ") != strings.Join(tt.missing, " ") {
					t.Errorf("missing %q, want %q", ie.Missing, tt.missing)
				}
				if tt.mismatch != "" && (len(ie.Mismatched) != 1 || ie.Mismatched[0] != tt.mismatch) {
					t.Errorf("mismatched %q, want %q", ie.Mismatched, tt.mismatch)
				}
				for _, m := range tt.missing {
					if !strings.Contains(err.Error(), m) {
						t.Errorf("error %q does not list %s", err, m)
					}
				}
				for _, id := range []string{"fermion.response", "env.foo"} {
					if n := strings.Count(err.Error(), id); n > 1 {
						t.Errorf("error %q names %s %d times, want once", err, id, n)
					}
				}
			}
		})
	}
}
