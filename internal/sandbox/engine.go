// Package sandbox runs WebAssembly functions on wazero (compiler engine): it compiles
// modules through an on-disk compilation cache, detects the guest ABI (reactor or WASI
// command), keeps a pool of warm instances per function version, enforces the manifest's
// limits (memory, deadline, body sizes, concurrency) and grants nothing the manifest does
// not: no files, no env, no network, only wall and monotonic clocks, and outbound HTTP
// through a host function that checks allowed_outbound_hosts. Files grants are read-only
// and resolved beneath their directory by the kernel, so no link leads out (grantfs.go).
//
// Lock order: Function.mu is a leaf; no other lock is taken while holding it.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/internal/atomicfile"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/telemetry"
)

// ABI names.
const (
	ABIReactor = "reactor"
	ABICommand = "command"
)

// EngineConfig configures an Engine.
type EngineConfig struct {
	// CacheDir holds compiled modules keyed by module digest and wazero version, so a
	// second process start skips compilation. Empty means an in-memory cache only.
	CacheDir string
	// CompileWorkers is the number of parallel compilation workers (0: GOMAXPROCS).
	CompileWorkers int
	Logger         *slog.Logger
	Metrics        *telemetry.Metrics // nil records nothing
	Tracer         trace.Tracer       // nil traces nothing
	// Outbound is the transport for guests' outbound HTTP (nil: a dedicated
	// http.Transport). Redirects are never followed by the host: each hop is a new
	// guest request, checked against the allow-list again.
	Outbound http.RoundTripper
	// OnInstanceStart, when set, is told how long each new reactor instance took to
	// instantiate and to run the guest's _initialize or restore its snapshot (benchmarks
	// use it for percentiles). The instance a snapshot is taken from is not reported:
	// it never serves.
	OnInstanceStart func(instantiate, init time.Duration)
	// MemoryBytes is the memory the node offers to functions, the capacity it
	// advertises to the scheduler (0: no limit). Every live instance, reactor or command
	// run, holds its limits.memory against it; an instance that would take the total past
	// it is refused (503, reason node_memory). See nodememory.go.
	MemoryBytes int64
	// LoadLimits are the node's load bounds; a zero field means DefaultLoadLimits', and a
	// manifest's own bound replaces the node's for its module.
	LoadLimits manifest.LoadLimits
	// CompileWorker, with CacheDir, compiles each module first in a child process: the
	// command (argv) of a binary that hands CompileWorkerArg to CompileWorkerMain, such
	// as the fermion binary itself. Nil compiles in-process, bounded only statically.
	CompileWorker []string
	// CompileMemory bounds a compile worker's memory (0: DefaultCompileMemory).
	CompileMemory int64
	// NoSnapshots makes every new reactor instance run the guest's _initialize instead
	// of starting from a snapshot of an initialised one (snapshot.go).
	NoSnapshots bool
}

// Engine compiles modules and creates Functions. It is safe for concurrent use.
type Engine struct {
	closing sync.WaitGroup // runtimes of closed functions waiting for their last requests
	// loadMu guards closed; loads counts Loads in flight, which Close waits for: they
	// compile through the shared cache, whose engine panics once the cache is closed.
	loadMu   sync.Mutex
	closed   bool
	loads    sync.WaitGroup
	cache    wazero.CompilationCache
	rewrites rewriteCache
	outlines outlineCache
	workers  int
	logger   *slog.Logger
	metrics  *telemetry.Metrics
	tracer   trace.Tracer
	outbound *http.Client
	onStart  func(instantiate, init time.Duration)
	tracing  bool
	memory   nodeMemory

	load          manifest.LoadLimits
	cacheDir      string
	worker        []string // nil: compile in-process
	compileMemory int64
	noSnapshots   bool
}

// NewEngine returns an Engine. Close it to release the compilation cache.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	e := &Engine{
		workers: cfg.CompileWorkers,
		logger:  cfg.Logger,
		metrics: cfg.Metrics,
		tracer:  cfg.Tracer,
		onStart: cfg.OnInstanceStart,
		memory:  nodeMemory{offered: max(cfg.MemoryBytes, 0)},
		load:    cfg.LoadLimits,

		compileMemory: cfg.CompileMemory,
		noSnapshots:   cfg.NoSnapshots,
	}
	if e.compileMemory <= 0 {
		e.compileMemory = DefaultCompileMemory
	}
	for _, b := range LoadBounds() {
		if b.Get(&e.load) < 0 {
			return nil, fmt.Errorf("load bound %s is negative; give a positive value or 0 for the default", b.Flag)
		}
	}
	if e.workers <= 0 {
		e.workers = runtime.GOMAXPROCS(0)
	}
	if e.logger == nil {
		e.logger = telemetry.Discard
	}
	e.tracing = e.tracer != nil
	if e.tracer == nil {
		e.tracer = noop.NewTracerProvider().Tracer("")
	}
	e.metrics.NodeMemory(e.memory.offered, e.memory.held.Load)
	if cfg.CacheDir != "" {
		if err := os.MkdirAll(cfg.CacheDir, 0o755); err != nil {
			return nil, fmt.Errorf("create compilation cache dir: %w", err)
		}
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("open compilation cache %s: %w", cfg.CacheDir, err)
		}
		e.cache = c
		e.cacheDir = cfg.CacheDir
		if len(cfg.CompileWorker) > 0 {
			e.worker = append([]string(nil), cfg.CompileWorker...)
		}
		if e.rewrites, err = newRewriteCache(cfg.CacheDir); err != nil {
			return nil, err
		}
		if e.outlines, err = newOutlineCache(cfg.CacheDir); err != nil {
			return nil, err
		}
	} else {
		e.cache = wazero.NewCompilationCache()
	}
	rt := cfg.Outbound
	if rt == nil {
		rt = &http.Transport{
			Proxy:               nil, // a guest's allow-list names real destinations, not a proxy
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
		}
	}
	e.outbound = &http.Client{
		Transport:     rt,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return e, nil
}

// Close releases the compilation cache. Functions must be closed first; Close refuses
// new Loads and waits (until ctx is done) for those in flight, which compile through the
// cache, and for the runtimes of functions whose Close timed out, since their compiled
// code must outlive the requests still running on it.
func (e *Engine) Close(ctx context.Context) error {
	e.loadMu.Lock()
	e.closed = true
	e.loadMu.Unlock()
	done := make(chan struct{})
	go func() { e.loads.Wait(); e.closing.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("close engine: loads, or requests of closed functions, still running: %w", ctx.Err())
	}
	return e.cache.Close(ctx)
}

// DefaultCacheDir is the compilation cache under the user's cache directory.
func DefaultCacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "fermion", "wazero")
}

// Spec is what the engine needs to run one function version.
type Spec struct {
	Name, Version string
	Wasm          []byte
	ABI           string // "", ABIReactor or ABICommand; "" detects from exports
	Limits        manifest.Limits
	Capabilities  manifest.Capabilities
	Scaling       manifest.Scaling
	// Labels are added to every log line of this function (for example node and region).
	Labels map[string]string
	// NoSnapshot is the manifest's component.snapshot = false (snapshot.go).
	NoSnapshot bool
	// Warmup is the manifest's component.warmup: the request target every new reactor
	// instance is sent (GET) before it joins the pool; "" for none. WarmupTimeout
	// bounds it (warmup.go).
	Warmup        string
	WarmupTimeout time.Duration
}

// SpecFromManifest builds a Spec from a manifest and the module bytes.
func SpecFromManifest(m *manifest.Manifest, wasm []byte) Spec {
	s := Spec{
		Name:         m.App.Name,
		Version:      m.App.Version,
		Wasm:         wasm,
		ABI:          m.Component.ABI,
		Limits:       m.Limits,
		Capabilities: m.Capabilities,
		Scaling:      m.Scaling,
		NoSnapshot:   m.Component.NoSnapshot,
	}
	s.Warmup, s.WarmupTimeout = m.Component.Warmup, m.Component.WarmupTimeout // warmup.go
	return s
}

// Digest returns the sha256 digest of a module in OCI form.
func Digest(wasm []byte) string { return digestOf(sumOf(wasm)) }

// ErrNotWasm is returned for bytes that are not a WebAssembly binary module.
var ErrNotWasm = errors.New("not a WebAssembly module (missing \\0asm magic)")

// ErrEngineClosed is returned by Load after Close: the node is shutting down.
var ErrEngineClosed = errors.New("the engine is closed (the node is shutting down)")

// Load compiles spec's module (from the cache when possible), checks its ABI and
// prewarms min_warm instances. The Function serves until Close.
func (e *Engine) Load(ctx context.Context, spec Spec) (*Function, error) {
	id := spec.Name + "@" + spec.Version
	e.loadMu.Lock()
	if e.closed {
		e.loadMu.Unlock()
		return nil, fmt.Errorf("load %s: %w", id, ErrEngineClosed)
	}
	e.loads.Add(1)
	e.loadMu.Unlock()
	defer e.loads.Done()
	if len(spec.Wasm) < 8 || string(spec.Wasm[:4]) != "\x00asm" {
		return nil, fmt.Errorf("load %s: %w", id, ErrNotWasm)
	}
	if spec.Limits.MemoryBytes == 0 || spec.Limits.Timeout <= 0 || spec.Scaling.MaxInstances <= 0 {
		return nil, fmt.Errorf("load %s: limits and scaling must be set (use manifest defaults)", id)
	}
	lim := EffectiveLoadLimits(spec.Limits.Load, e.load)
	sum := sumOf(spec.Wasm)
	v, err := vetModule(spec.Wasm, sum, lim, e.outlines)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", id, err)
	}
	pages := spec.Limits.MemoryPages()
	if pages == 0 {
		pages = 1
	}
	if min, ok := declaredMemoryPages(spec.Wasm); ok && min > pages { // clamping leaves memories alone
		return nil, fmt.Errorf("load %s: %w", id, memoryTooSmall(min, pages))
	}
	if offered := e.memory.offered; offered > 0 && int64(pages)<<16 > offered {
		return nil, fmt.Errorf("load %s: limits.memory (%d MiB) is more than the %d MiB this node offers to functions, so no instance could start; lower limits.memory or raise the node's --memory",
			id, int64(pages)<<16>>20, offered>>20)
	}
	// Interrupting a guest: see interrupt.go. Fall back to wazero's own (slower) checks
	// when the module cannot be instrumented; a corrupt module fails compilation below.
	code, fromCache, ierr := e.rewrites.instrument(v.sum, v.bytes)
	interruptible := ierr == nil
	if !interruptible {
		code = v.bytes()
		if errors.Is(ierr, errUninstrumentable) {
			e.logger.Info("module not instrumented for interrupts; using wazero's termination checks",
				"function", spec.Name, "version", spec.Version, "reason", ierr.Error())
		}
	}
	rcfg := wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(e.cache).
		WithMemoryLimitPages(pages).
		// Not WithMemoryCapacityFromMax: a reservation in the Go heap becomes resident
		// once the heap recycles it. Reactor instances get their memory from
		// memory_linux.go instead: reserved outside the Go heap, grown in place.
		WithCloseOnContextDone(!interruptible)
	grants, err := openGrants(spec.Capabilities.Files)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", id, err)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, rcfg)
	fail := func(err error) (*Function, error) {
		rt.Close(ctx)
		closeGrants(grants)
		return nil, fmt.Errorf("load %s: %w", id, err)
	}

	start := time.Now()
	compiled, err := e.compile(ctx, rt, code, v.sum, !interruptible, lim)
	if err != nil && fromCache {
		// The cached rewrite is damaged: rewrite again rather than fail the load.
		e.rewrites.forget(v.sum)
		if code, err = instrumentInterrupt(v.bytes()); err == nil {
			compiled, err = e.compile(ctx, rt, code, v.sum, !interruptible, lim)
		}
	}
	if err != nil {
		return fail(err)
	}
	compileTime := time.Since(start)

	kind, err := detectABI(compiled, spec.ABI)
	if err != nil {
		return fail(err)
	}
	if err := checkWarmup(spec, kind); err != nil { // warmup.go
		return fail(err)
	}
	if min := minMemoryPages(compiled); min > pages {
		return fail(memoryTooSmall(min, pages))
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return fail(fmt.Errorf("instantiate wasi: %w", err))
	}
	f := newFunction(e, spec, rt, compiled, kind)
	f.interruptible = interruptible
	if interruptible {
		// datapassive.go: the rewrite may have left a reactor's data to the host.
		if o, err := readOutline(code); err == nil && o.facts.data != nil {
			if f.data, err = hostData(code, o.facts.data); err != nil {
				e.metrics.Forget(spec.Name, spec.Version) // the hold newFunction took
				return fail(fmt.Errorf("read the rewritten module's data: %w", err))
			}
		}
	}
	f.memHold = int64(pages) << 16
	f.initialMemory = uint64(minMemoryPages(compiled)) << 16
	f.grants = grants
	f.metrics.Compiled(compileTime.Seconds())
	if err := f.instantiateHost(ctx); err != nil {
		e.metrics.Forget(spec.Name, spec.Version) // the hold newFunction took
		return fail(err)
	}
	f.takeSnapshot(ctx, code) // snapshot.go: before any instance, so all start from it
	if err := f.prewarm(ctx); err != nil {
		f.Close(ctx)
		return nil, fmt.Errorf("load %s: prewarm: %w", id, err)
	}
	f.startReaper()
	e.logger.Info("function loaded", "function", spec.Name, "version", spec.Version, "abi", kind,
		"compile_ms", float64(compileTime.Microseconds())/1000, "min_warm", spec.Scaling.MinWarm,
		"max_instances", spec.Scaling.MaxInstances, "digest", digestOf(sum))
	return f, nil
}

// detectABI decides the ABI from the module's exports and checks it against the
// manifest's declaration.
func detectABI(m wazero.CompiledModule, declared string) (string, error) {
	exports := m.ExportedFunctions()
	_, hasHandle := exports[abi.ExportHandle]
	_, hasBuf := exports[abi.ExportBuf]
	_, hasInit := exports[abi.ExportInitialize]
	_, hasStart := exports[abi.ExportStart]
	if _, ok := m.ExportedMemories()["memory"]; !ok {
		return "", errors.New("module exports no memory named \"memory\"; build it with GOOS=wasip1 GOARCH=wasm")
	}
	var detected string
	switch {
	case hasHandle && hasBuf && hasInit:
		detected = ABIReactor
	case hasStart:
		detected = ABICommand
	case hasHandle || hasBuf:
		return "", errors.New("module exports part of the reactor ABI but not _initialize; build it with the Fermion SDK (Go: -buildmode=c-shared; Rust: fermion::handler!)")
	default:
		return "", errors.New("module exports neither the reactor ABI (fermion_handle) nor a WASI _start; build a reactor with the Fermion SDK (Go: -buildmode=c-shared; Rust: a cdylib with fermion::handler!), or a WASI command")
	}
	if declared != "" && declared != detected {
		return "", fmt.Errorf("manifest declares abi %q but the module is a %s module; set component.abi = %q or rebuild", declared, detected, detected)
	}
	return detected, nil
}

func minMemoryPages(m wazero.CompiledModule) uint32 {
	for _, mem := range m.ExportedMemories() {
		return mem.Min()
	}
	for _, mem := range m.ImportedMemories() {
		return mem.Min()
	}
	return 0
}

// Check vets a module against the load bounds (the node's, with lim's non-zero fields
// in their place) and the host's imports, then compiles it (through the compilation
// cache, so a later Load is fast) and returns its ABI, without instantiating it: what
// `fermion build` and `fermion push` use to refuse a module the sandbox could not run.
func (e *Engine) Check(ctx context.Context, wasm []byte, declaredABI string, lim manifest.LoadLimits) (string, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return "", ErrNotWasm
	}
	lim = EffectiveLoadLimits(lim, e.load)
	v, err := vetModule(wasm, sumOf(wasm), lim, e.outlines)
	if err != nil {
		return "", err
	}
	sum := v.sum
	code, _, err := e.rewrites.instrument(sum, v.bytes)
	if err != nil {
		code = v.bytes()
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(e.cache).WithCloseOnContextDone(err != nil))
	defer rt.Close(ctx)
	compiled, err := e.compile(ctx, rt, code, sum, err != nil, lim)
	if err != nil {
		return "", err
	}
	return detectABI(compiled, declaredABI)
}

// vet reads a module's outline, holds it to the load bounds and the host's imports, and
// returns it with its tables clamped to max_table_elements (the same slice when no
// table needed it). Load uses vetModule (vetcache.go), which keeps outlines on disk.
func vet(wasm []byte, lim manifest.LoadLimits) ([]byte, error) {
	v, err := vetModule(wasm, [32]byte{}, lim, outlineCache{})
	if err != nil {
		return nil, err
	}
	return v.bytes(), nil
}

// compile compiles code in rt: first in a compile worker when the engine has one and
// has not compiled this module before (see compileworker.go), after which rt reads the
// result from the cache; in-process only otherwise. sum identifies the module code was
// rewritten from (vet's output).
func (e *Engine) compile(ctx context.Context, rt wazero.Runtime, code []byte, sum [32]byte, closeOnDone bool, lim manifest.LoadLimits) (wazero.CompiledModule, error) {
	if e.worker != nil {
		marker := e.compiledMarker(sum, closeOnDone)
		if _, err := os.Stat(marker); err != nil {
			if err := e.compileInChild(ctx, code, closeOnDone, lim); err != nil {
				var be *BoundError
				if errors.As(err, &be) {
					return nil, err
				}
				return nil, fmt.Errorf("compile module: %w", err)
			}
			// Without the marker, the next load pays the worker again; nothing else.
			if os.MkdirAll(filepath.Dir(marker), 0o700) == nil {
				atomicfile.Write(marker, nil, 0o600)
			}
		}
	}
	compiled, err := rt.CompileModule(experimental.WithCompilationWorkers(ctx, e.workers), code)
	if err != nil {
		return nil, fmt.Errorf("compile module: %w", err)
	}
	return compiled, nil
}
