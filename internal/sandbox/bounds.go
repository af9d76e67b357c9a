package sandbox

import (
	"fmt"
	"strings"
	"time"

	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/wasmbin"
)

// Why bound a module before compiling it? wazero's compiler costs time and memory
// superlinear in the control flow of one function: a 200 KB module with one br_table of
// 200,000 targets took 67 s and ~500 MB to compile, and 4,000 blocks with a br_if each
// already take a second (docs/limits.md has the measurements). Tables grow outside the
// memory limit: table.grow with no declared maximum took a node from 30 MB to 1.6 GB.
// Every such cost is a count the binary states up front, so Load reads the module's
// outline (wasmbin.Inspect, linear and cheap) and refuses it before wazero sees it, with
// an error naming the bound and how to raise it. Tables are also capped at run time:
// their declared maximum is rewritten (clampTables) so table.grow past the bound
// returns -1, as the spec says it does when a table cannot grow.

// DefaultLoadLimits are the bounds a node applies when neither its flags nor a manifest
// set one. The Go examples, at 3-5 MB, use about a fifth of each at most, and compile in 5-13 s
// on a busy 2-core machine (docs/limits.md).
var DefaultLoadLimits = manifest.LoadLimits{
	ModuleSize:       64 << 20,
	CodeSize:         32 << 20,
	FunctionSize:     2 << 20,
	Functions:        1 << 20,
	FunctionLocals:   50_000,
	FunctionBranches: 10_000,
	TableElements:    1 << 20,
	Globals:          65_536,
	DataSegments:     1 << 18,
	ElementSegments:  65_536,
	CompileTimeout:   2 * time.Minute,
}

// LoadBound describes one load bound: its manifest key under [limits], the agent and
// run flag that sets the node's default, and how to read and set it.
type LoadBound struct {
	Key   string // manifest key under [limits], e.g. "max_functions"
	Flag  string // flag of fermion agent and fermion run, e.g. "max-functions"
	What  string // what is counted, e.g. "functions"
	Scope string // what it is counted in: "a module", "one function" or "one table"
	Kind  string // "size", "count" or "duration"
	// Get and Set read and write the bound's field (sizes and counts as int64, a
	// duration in nanoseconds).
	Get func(*manifest.LoadLimits) int64
	Set func(*manifest.LoadLimits, int64)
}

// LoadBounds lists every load bound, in the order documentation shows them.
func LoadBounds() []LoadBound {
	size := func(key, what, scope string, p func(*manifest.LoadLimits) *int64) LoadBound {
		return LoadBound{Key: key, Flag: strings.ReplaceAll(key, "_", "-"), What: what, Scope: scope, Kind: "size",
			Get: func(l *manifest.LoadLimits) int64 { return *p(l) }, Set: func(l *manifest.LoadLimits, v int64) { *p(l) = v }}
	}
	count := func(key, what, scope string, p func(*manifest.LoadLimits) *int) LoadBound {
		return LoadBound{Key: key, Flag: strings.ReplaceAll(key, "_", "-"), What: what, Scope: scope, Kind: "count",
			Get: func(l *manifest.LoadLimits) int64 { return int64(*p(l)) }, Set: func(l *manifest.LoadLimits, v int64) { *p(l) = int(v) }}
	}
	const mod, fn = "a module", "one function"
	return []LoadBound{
		size("max_module_size", "bytes", mod, func(l *manifest.LoadLimits) *int64 { return &l.ModuleSize }),
		size("max_code_size", "bytes of code", mod, func(l *manifest.LoadLimits) *int64 { return &l.CodeSize }),
		size("max_function_size", "bytes of code", fn, func(l *manifest.LoadLimits) *int64 { return &l.FunctionSize }),
		count("max_functions", "functions", mod, func(l *manifest.LoadLimits) *int { return &l.Functions }),
		count("max_function_locals", "locals", fn, func(l *manifest.LoadLimits) *int { return &l.FunctionLocals }),
		count("max_function_branches", "blocks, branches and br_table targets", fn, func(l *manifest.LoadLimits) *int { return &l.FunctionBranches }),
		count("max_table_elements", "elements (initially or after table.grow)", "one table", func(l *manifest.LoadLimits) *int { return &l.TableElements }),
		count("max_globals", "globals", mod, func(l *manifest.LoadLimits) *int { return &l.Globals }),
		count("max_data_segments", "data segments", mod, func(l *manifest.LoadLimits) *int { return &l.DataSegments }),
		count("max_element_segments", "element segments", mod, func(l *manifest.LoadLimits) *int { return &l.ElementSegments }),
		{Key: "compile_timeout", Flag: "compile-timeout", What: "time compiling", Scope: "a module", Kind: "duration",
			Get: func(l *manifest.LoadLimits) int64 { return int64(l.CompileTimeout) },
			Set: func(l *manifest.LoadLimits, v int64) { l.CompileTimeout = time.Duration(v) }},
	}
}

// FormatBound renders a bound's value as a manifest would write it.
func (b LoadBound) FormatBound(v int64) string {
	switch b.Kind {
	case "size":
		return manifest.FormatSize(v)
	case "duration":
		return time.Duration(v).String()
	}
	return fmt.Sprint(v)
}

// EffectiveLoadLimits is what a module is held to: each bound the manifest sets, else
// the node's (node), else DefaultLoadLimits.
func EffectiveLoadLimits(spec, node manifest.LoadLimits) manifest.LoadLimits {
	out := DefaultLoadLimits
	for _, b := range LoadBounds() {
		if v := b.Get(&node); v > 0 {
			b.Set(&out, v)
		}
		if v := b.Get(&spec); v > 0 {
			b.Set(&out, v)
		}
	}
	return out
}

// BoundError is a module refused at load because it is over one or more load bounds.
// Callers find it with errors.As; Over lists every bound the module exceeds.
type BoundError struct {
	Over []OverBound
}

// OverBound is one bound a module exceeds.
type OverBound struct {
	Bound LoadBound
	Value int64  // the module's value
	Limit int64  // the bound
	Where string // which part of the module, e.g. "function 372" ("" for the module)
}

func (e *BoundError) Error() string {
	lines := make([]string, len(e.Over))
	for i, o := range e.Over {
		where := "module"
		if o.Where != "" {
			where = o.Where
		}
		if o.Bound.Kind == "duration" {
			lines[i] = fmt.Sprintf("%s took longer than the bound of %s and was stopped; raise limits.%s in %s (or the node's --%s) if the module is meant to take this long",
				where, o.Bound.FormatBound(o.Limit), o.Bound.Key, manifest.FileName, o.Bound.Flag)
			continue
		}
		what := o.Bound.What
		if o.Bound.Key == "max_table_elements" {
			what = "elements initially"
		}
		lines[i] = fmt.Sprintf("%s has %d %s, over the bound of %s; raise limits.%s in %s (or the node's --%s) if the module is meant to be this large",
			where, o.Value, what, o.Bound.FormatBound(o.Limit), o.Bound.Key, manifest.FileName, o.Bound.Flag)
	}
	return "module over load bounds: " + strings.Join(lines, "; ")
}

// boundByKey returns the bound with the manifest key key.
func boundByKey(key string) LoadBound {
	for _, b := range LoadBounds() {
		if b.Key == key {
			return b
		}
	}
	panic("sandbox: no load bound " + key)
}

// checkBounds holds a module's outline to l.
func checkBounds(m *wasmbin.Module, l manifest.LoadLimits) error {
	var over []OverBound
	check := func(key string, value uint64, where string) {
		b := boundByKey(key)
		if limit := b.Get(&l); limit > 0 && value > uint64(limit) {
			over = append(over, OverBound{Bound: b, Value: int64(min(value, 1<<62)), Limit: limit, Where: where})
		}
	}
	fn := func(x wasmbin.Extreme) string { return fmt.Sprintf("function %d", x.Function) }
	check("max_module_size", uint64(m.Size), "")
	check("max_code_size", uint64(m.CodeBytes), "")
	check("max_function_size", m.Largest.Bytes.Value, fn(m.Largest.Bytes))
	check("max_functions", uint64(m.Functions), "")
	check("max_function_locals", m.Largest.Locals.Value, fn(m.Largest.Locals))
	branches := fn(m.Largest.Branches)
	if m.Largest.BrTableTargets.Function == m.Largest.Branches.Function && m.Largest.BrTableTargets.Value > 1 {
		branches += fmt.Sprintf(" (its largest br_table has %d targets)", m.Largest.BrTableTargets.Value)
	}
	check("max_function_branches", m.Largest.Branches.Value, branches)
	for i, t := range m.Tables {
		check("max_table_elements", t.Min, fmt.Sprintf("table %d", i))
	}
	check("max_globals", uint64(m.Globals), "")
	check("max_data_segments", uint64(m.DataSegments), "")
	check("max_element_segments", uint64(m.ElementSegments), "")
	if len(over) > 0 {
		return &BoundError{Over: over}
	}
	return nil
}

// clampTables returns the module with every defined table's maximum at most limit, so
// that table.grow past it fails (returns -1) instead of taking host memory; wasm is
// returned as it is when no table needs it. checkBounds has already refused tables whose
// initial size is over limit. Imported tables are not rewritten: the host provides none,
// so checkImports refuses them.
func clampTables(wasm []byte, m *wasmbin.Module, limit uint64) []byte {
	var sec *wasmbin.Section
	for i := range m.Sections {
		if m.Sections[i].ID == 4 {
			sec = &m.Sections[i]
		}
	}
	if sec == nil {
		return wasm
	}
	if !tablesNeedClamp(m, limit) {
		return wasm
	}
	body := make([]byte, 0, sec.End-sec.Body+8*len(m.Tables))
	at := sec.Body
	for _, t := range m.Tables {
		if t.Imported {
			continue
		}
		body = append(body, wasm[at:t.LimitsStart]...)
		at = t.LimitsEnd
		max := t.Max
		if !t.HasMax || max > limit {
			max = limit
		}
		// Flag 0x01: a maximum follows. 64-bit tables (0x04) are not compiled by
		// wazero, which refuses them with its own error; the rewrite keeps them 32-bit.
		body = append(body, 0x01)
		body = wasmbin.AppendU32(body, uint32(t.Min))
		body = wasmbin.AppendU32(body, uint32(max))
	}
	body = append(body, wasm[at:sec.End]...)
	out := make([]byte, 0, len(wasm)+8*len(m.Tables))
	out = append(out, wasm[:sec.Start]...)
	out = append(out, 4)
	out = wasmbin.AppendU32(out, uint32(len(body)))
	out = append(out, body...)
	out = append(out, wasm[sec.End:]...)
	return out
}

// tablesNeedClamp reports whether clampTables would rewrite a table of m: one it defines
// with no maximum or a maximum over limit.
func tablesNeedClamp(m *wasmbin.Module, limit uint64) bool {
	has := false
	for _, s := range m.Sections {
		has = has || s.ID == 4
	}
	if !has {
		return false
	}
	for _, t := range m.Tables {
		if !t.Imported && (!t.HasMax || t.Max > limit) {
			return true
		}
	}
	return false
}
