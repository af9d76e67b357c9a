package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"

	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
)

// loadFlags are the node's load bounds (sandbox.LoadBounds) and the compile worker's
// memory, shared by fermion agent, up and run. Each is a string so that an unset flag
// means the sandbox's default rather than a value copied here.
type loadFlags struct {
	prefix        string
	values        map[string]*string // by bound key
	compileMemory string
}

func (l *loadFlags) add(f *pflag.FlagSet, prefix string) {
	l.prefix = prefix
	l.values = map[string]*string{}
	for _, b := range sandbox.LoadBounds() {
		v := new(string)
		l.values[b.Key] = v
		def := b.FormatBound(b.Get(&sandbox.DefaultLoadLimits))
		what := fmt.Sprintf("most %s in %s", b.What, b.Scope)
		if b.Kind == "duration" {
			what = "longest time compiling a module may take"
		}
		f.StringVar(v, prefix+b.Flag, "", fmt.Sprintf("load bound: %s (default %s; a manifest's limits.%s replaces it for its module)", what, def, b.Key))
	}
	f.StringVar(&l.compileMemory, prefix+"compile-memory", "", fmt.Sprintf("memory a compile worker may map (default %s)", manifest.FormatSize(sandbox.DefaultCompileMemory)))
}

// config turns the flags into the engine's load settings: the node's bounds, the
// compile worker (this binary) and its memory.
func (l *loadFlags) config() (lim manifest.LoadLimits, worker []string, memory int64, err error) {
	for _, b := range sandbox.LoadBounds() {
		s := *l.values[b.Key]
		if s == "" {
			continue
		}
		var v int64
		switch b.Kind {
		case "size":
			v, err = manifest.ParseSize(s)
		case "duration":
			var d time.Duration
			d, err = time.ParseDuration(s)
			v = int64(d)
		default:
			_, err = fmt.Sscan(s, &v)
			if err != nil {
				err = fmt.Errorf("%q is not a whole number", s)
			}
		}
		if err == nil && v <= 0 {
			err = fmt.Errorf("must be greater than 0, got %s (leave the flag out for the default)", s)
		}
		if err != nil {
			return lim, nil, 0, usageError{fmt.Errorf("--%s%s: %w", l.prefix, b.Flag, err)}
		}
		b.Set(&lim, v)
	}
	if l.compileMemory != "" {
		if memory, err = manifest.ParseSize(l.compileMemory); err != nil || memory <= 0 {
			return lim, nil, 0, usageError{fmt.Errorf("--%scompile-memory: give a size such as 2GiB (%v)", l.prefix, err)}
		}
	}
	return lim, compileWorker(), memory, nil
}

// compileWorker is the command that runs this binary as a compile worker (see
// sandbox.CompileWorkerArg), or nil when the binary cannot be found: modules are then
// compiled in-process, bounded only statically.
func compileWorker() []string {
	exe, err := os.Executable()
	if err != nil {
		return nil
	}
	return []string{exe}
}
