package sandbox

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"

	"fermion.dev/fermion/internal/manifest"
)

// Why compile in a child process? wazero's CompileModule cannot be interrupted: its
// context is not consulted while a function compiles, so a module whose compilation
// runs away would keep a goroutine burning CPU and holding memory for as long as it
// takes, whatever the caller's deadline. Load's static bounds (bounds.go) cap the cost
// of each function, but not the sum over a module. So when the engine has an on-disk
// compilation cache and a worker command, the module is first compiled by a child
// process (the same binary, run with CompileWorkerArg) under a memory and CPU
// rlimit, killed at compile_timeout; the child writes wazero's compiled code into the
// shared cache directory, and the parent's own CompileModule then reads it from there.
// A killed child takes its CPU time and memory with it. See docs/RATIONALE.md.

// CompileWorkerArg is the hidden first argument that makes the fermion binary (or a
// test binary, from TestMain) run as a compile worker: cli.Run hands it to
// CompileWorkerMain.
const CompileWorkerArg = "__fermion-compile-worker"

// DefaultCompileMemory is the memory (RLIMIT_DATA) a compile worker may map when
// EngineConfig.CompileMemory is 0. Compiling examples/hello (3 MB) fits in 400 MiB,
// not in 150 MiB.
const DefaultCompileMemory = 1 << 30

// CompileWorkerMain is a compile worker's whole life: args are what compileInChild
// passes after CompileWorkerArg (cache directory, whether the runtime closes on context
// done, compilation workers, memory bound in bytes, CPU bound in seconds), the
// module arrives on stdin. It returns the process's exit code: 0 compiled and cached, 1
// the module does not compile (the reason on stderr), 2 bad arguments.
func CompileWorkerMain(args []string, stdin io.Reader, stderr io.Writer) int {
	if len(args) != 5 {
		fmt.Fprintf(stderr, "compile worker: want 5 arguments, got %d\n", len(args))
		return 2
	}
	closeOnDone, err1 := strconv.ParseBool(args[1])
	workers, err2 := strconv.Atoi(args[2])
	memory, err3 := strconv.ParseUint(args[3], 10, 64)
	cpu, err4 := strconv.ParseUint(args[4], 10, 64)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		fmt.Fprintf(stderr, "compile worker: %v\n", err)
		return 2
	}
	if err := limitSelf(memory, cpu); err != nil {
		fmt.Fprintf(stderr, "compile worker: %v\n", err)
		return 2
	}
	wasm, err := io.ReadAll(stdin)
	if err != nil {
		fmt.Fprintf(stderr, "compile worker: read module: %v\n", err)
		return 2
	}
	ctx := context.Background()
	cache, err := wazero.NewCompilationCacheWithDir(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "compile worker: open compilation cache: %v\n", err)
		return 2
	}
	// The same configuration as Load's runtime in every respect that enters wazero's
	// cache key (the module bytes and WithCloseOnContextDone), so the parent hits it.
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(cache).WithCloseOnContextDone(closeOnDone))
	if _, err := rt.CompileModule(experimental.WithCompilationWorkers(ctx, workers), wasm); err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return 1
	}
	if err := rt.Close(ctx); err != nil {
		fmt.Fprintf(stderr, "compile worker: %v\n", err)
		return 2
	}
	return 0
}

// compiledMarker is the file that records that a compile worker compiled the module
// with this sum (rewritten by this rewriteVersion, for this closeOnDone) into the cache:
// a later Load skips the worker, whose own cache hit would cost a process start and a
// second decoding of the module. wazero's cache key is not exposed, so the marker is
// Fermion's; it names the wazero version so that an upgrade, which misses wazero's cache,
// goes through the worker again.
func (e *Engine) compiledMarker(sum [32]byte, closeOnDone bool) string {
	return filepath.Join(e.cacheDir, "fermion-compiled-"+wazeroVersion(),
		fmt.Sprintf("%s-%s-%t", hex.EncodeToString(sum[:]), rewriteVersion, closeOnDone))
}

// wazeroVersion is the wazero module's version in this binary ("unknown" in binaries
// built without module information).
var wazeroVersion = sync.OnceValue(func() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/tetratelabs/wazero" {
				return d.Version
			}
		}
	}
	return "unknown"
})

// compileInChild compiles code in a worker process into the engine's cache directory,
// within lim.CompileTimeout. A timeout is a *BoundError for compile_timeout; a module
// wazero refuses gives wazero's reason.
func (e *Engine) compileInChild(ctx context.Context, code []byte, closeOnDone bool, lim manifest.LoadLimits) error {
	timeout := lim.CompileTimeout
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// A backstop for the parent's kill: CPU time accrues on every compilation worker
	// thread and the collector's, so wall time alone would kill a parallel compile early.
	cpu := uint64((timeout+time.Second-1)/time.Second)*uint64(e.workers+1) + 1
	argv := append(append([]string{}, e.worker[1:]...), CompileWorkerArg, e.cacheDir,
		strconv.FormatBool(closeOnDone), strconv.Itoa(e.workers),
		strconv.FormatUint(uint64(e.compileMemory), 10), strconv.FormatUint(cpu, 10))
	cmd := exec.CommandContext(ctx, e.worker[0], argv...)
	cmd.Stdin = bytes.NewReader(code)
	var stderr bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &stderr, n: 8 << 10}
	cmd.WaitDelay = time.Second // a killed child's pipes are not waited on past this
	start := time.Now()
	err := cmd.Run()
	if err == nil {
		return nil
	}
	msg := strings.TrimSpace(stderr.String())
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && time.Since(start) >= timeout {
			return &BoundError{Over: []OverBound{{Bound: boundByKey("compile_timeout"), Value: int64(time.Since(start)), Limit: int64(timeout), Where: "compilation"}}}
		}
		return fmt.Errorf("compile worker: %w", ctx.Err())
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		switch {
		case exit.ExitCode() == 1:
			return errors.New(msg)
		case exit.ExitCode() == 2 && !strings.HasPrefix(msg, "panic:") && !strings.HasPrefix(msg, "compile worker:"):
			// The Go runtime's fatal errors exit 2. One refused memory by the rlimit says
			// "out of memory", or crashes when the refusal hits it inside the collector.
			first, _, _ := strings.Cut(msg, "\n")
			return fmt.Errorf("the compile worker failed (%s), most likely for want of memory: it may map %s; raise the node's --compile-memory if the module is meant to be this large",
				first, manifest.FormatSize(e.compileMemory))
		case !exit.Exited(): // killed by a signal: SIGXCPU at the CPU bound
			return &BoundError{Over: []OverBound{{Bound: boundByKey("compile_timeout"), Value: int64(time.Since(start)), Limit: int64(timeout), Where: "compilation"}}}
		}
	}
	if len(msg) > 2000 {
		msg = msg[:2000] + "…"
	}
	return fmt.Errorf("compile worker %s: %w: %s", e.worker[0], err, msg)
}

// limitedWriter keeps the first n bytes written to it and drops the rest.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
