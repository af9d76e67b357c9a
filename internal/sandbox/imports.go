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
	// Each refused name is counted, and a mismatched one keeps its distinct signatures
	// in module order, so the error names it once however often it is imported.
	var missing, mismatched []string
	count := map[string]int{}
	sigs := map[string][]string{}
	has := map[string]string{}
	for _, im := range m.Imports {
		id := im.Module + "." + im.Name
		def, ok := host[im.Module][im.Name]
		if !ok || im.Kind != wasmbin.KindFunc {
			if im.Kind != wasmbin.KindFunc {
				id += " (" + kindName(im.Kind) + ")"
			}
			if count[id] == 0 {
				missing = append(missing, id)
			}
			count[id]++
			continue
		}
		if int(im.Type) >= len(m.Types) {
			continue // compilation reports the bad type index
		}
		t := m.Types[im.Type]
		if !sameTypes(t.Params, def.ParamTypes()) || !sameTypes(t.Results, def.ResultTypes()) {
			if count[id] == 0 {
				mismatched = append(mismatched, id)
				has[id] = signature(def.ParamTypes(), def.ResultTypes())
			}
			count[id]++
			if sig := signature(t.Params, t.Results); !slices.Contains(sigs[id], sig) {
				sigs[id] = append(sigs[id], sig)
			}
		}
	}
	if len(missing) == 0 && len(mismatched) == 0 {
		return nil
	}
	times := func(id string) string {
		if n := count[id]; n > 1 {
			return "×" + strconv.Itoa(n)
		}
		return ""
	}
	var e ImportError
	for _, id := range missing {
		e.Missing = append(e.Missing, id+times(id))
	}
	for _, id := range mismatched {
		e.Mismatched = append(e.Mismatched, fmt.Sprintf("%s%s: %s, host has %s", id, times(id), strings.Join(sigs[id], " or "), has[id]))
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
