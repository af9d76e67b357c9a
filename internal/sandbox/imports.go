package sandbox

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/internal/wasmbin"
)

// ImportError is a module refused because it imports what the host does not provide:
// wazero would compile it and then fail to instantiate it on every request. Missing
// lists each such import as "module.name"; Mismatched the ones the host provides with
// another signature, as "module.name: (params) -> (results), host has (...) -> (...)".
// Each name appears once, in module order, with ×n after one the module imports n times
// (as fermion inspect lists imports): a toolchain that repeats an import per call site
// would otherwise fill the error with the same line. Callers find it with errors.As.
type ImportError struct {
	Missing    []string
	Mismatched []string
}

func (e *ImportError) Error() string {
	var parts []string
	if len(e.Missing) > 0 {
		parts = append(parts, fmt.Sprintf("module imports %s, which the host does not provide (it provides the functions of %s and %s.%s, %s.%s and %s.%s); remove the //go:wasmimport or the dependency that needs it",
			strings.Join(e.Missing, ", "), wasi_snapshot_preview1.ModuleName,
			abi.HostModule, abi.HostResponse, abi.HostModule, abi.HostHTTPSend, abi.HostModule, abi.HostHTTPTake))
	}
	if len(e.Mismatched) > 0 {
		parts = append(parts, "module imports host functions with the wrong signature: "+strings.Join(e.Mismatched, "; ")+"; rebuild it against the current Fermion SDK and wasip1")
	}
	return strings.Join(parts, "; ")
}

// hostFunctions are the signatures of every function the host provides, by module and
// name, read from the same builders that instantiate them so the check cannot drift.
var hostFunctions = sync.OnceValues(func() (map[string]map[string]api.FunctionDefinition, error) {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	out := map[string]map[string]api.FunctionDefinition{}
	for name, b := range map[string]interface {
		Compile(context.Context) (wazero.CompiledModule, error)
	}{
		wasi_snapshot_preview1.ModuleName: wasi_snapshot_preview1.NewBuilder(rt),
		abi.HostModule:                    hostModule(rt),
	} {
		c, err := b.Compile(ctx)
		if err != nil {
			return nil, fmt.Errorf("compile host module %s: %w", name, err)
		}
		out[name] = c.ExportedFunctions()
	}
	return out, nil
})

// checkImports refuses a module importing anything but the host's functions, or one of
// them with another signature.
func checkImports(m *wasmbin.Module) error {
	host, err := hostFunctions()
	if err != nil {
		return err
	}
	// Each refused name is noted once, in module order, with how often it is imported
	// and, for a mismatched one, its distinct signatures: the error names it once.
	type refusal struct {
		id   string
		n    int
		sigs []string // the module's signatures for it, each once; nil: missing
		has  string   // the host's signature
	}
	var refused []*refusal
	byID := map[string]*refusal{}
	note := func(id string) *refusal {
		r := byID[id]
		if r == nil {
			r = &refusal{id: id}
			byID[id] = r
			refused = append(refused, r)
		}
		r.n++
		return r
	}
	for _, im := range m.Imports {
		id := im.Module + "." + im.Name
		def, ok := host[im.Module][im.Name]
		if !ok || im.Kind != wasmbin.KindFunc {
			if im.Kind != wasmbin.KindFunc {
				id += " (" + kindName(im.Kind) + ")"
			}
			note(id)
			continue
		}
		if int(im.Type) >= len(m.Types) {
			continue // compilation reports the bad type index
		}
		t := m.Types[im.Type]
		if !sameTypes(t.Params, def.ParamTypes()) || !sameTypes(t.Results, def.ResultTypes()) {
			r := note(id)
			r.has = signature(def.ParamTypes(), def.ResultTypes())
			if sig := signature(t.Params, t.Results); !slices.Contains(r.sigs, sig) {
				r.sigs = append(r.sigs, sig)
			}
		}
	}
	if len(refused) == 0 {
		return nil
	}
	var e ImportError
	for _, r := range refused {
		name := r.id
		if r.n > 1 {
			name += "×" + strconv.Itoa(r.n)
		}
		if r.sigs == nil {
			e.Missing = append(e.Missing, name)
		} else {
			e.Mismatched = append(e.Mismatched, fmt.Sprintf("%s: %s, host has %s", name, strings.Join(r.sigs, " or "), r.has))
		}
	}
	return &e
}

func kindName(k byte) string {
	switch k {
	case wasmbin.KindTable:
		return "table"
	case wasmbin.KindMemory:
		return "memory"
	case wasmbin.KindGlobal:
		return "global"
	case wasmbin.KindTag:
		return "tag"
	}
	return "function"
}

// sameTypes compares a module's value types (their encodings) with the host's, which
// wazero encodes the same way.
func sameTypes(mod []byte, host []api.ValueType) bool {
	if len(mod) != len(host) {
		return false
	}
	for i := range mod {
		if mod[i] != host[i] {
			return false
		}
	}
	return true
}

func signature(params, results []byte) string {
	names := func(ts []byte) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return "(" + strings.Join(s, ", ") + ")"
	}
	return names(params) + " -> " + names(results)
}
