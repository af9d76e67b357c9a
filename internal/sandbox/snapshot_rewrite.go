package sandbox

import (
	"errors"
	"fmt"
	"strconv"

	"fermion.dev/fermion/internal/wasmbin"
)

// What the interrupt rewrite adds for snapshots (snapshot.go). A snapshot must restore
// every mutable global, but wazero only lets the host read and write exported ones, and
// a Go guest exports none (its stack pointer and scheduler state live in globals). So the
// rewrite exports each defined mutable global under a name of Fermion's
// (snapshotGlobalPrefix and the global's index), and records in a custom section of the
// rewritten module what a snapshot needs to know and only the rewrite's walk over the
// code can tell: which globals those are and whether any code writes to a table. The
// section travels with the rewritten module through the rewrite cache, so a load that
// reads the module from the cache does not walk the code again. wazero ignores custom
// sections it does not know.

// snapshotGlobalPrefix prefixes the export name of each defined mutable global.
const snapshotGlobalPrefix = "fermion_global_"

// snapshotSection names the custom section holding snapshotFacts.
const snapshotSection = "fermion.snapshot"

// snapshotFactsVersion is the first byte of the section's contents.
const snapshotFactsVersion = 2 // 2: the offsets of data segments made passive (datapassive.go)

// Value types, as encoded.
const (
	valI32       = 0x7f
	valI64       = 0x7e
	valF32       = 0x7d
	valF64       = 0x7c
	valV128      = 0x7b
	valFuncref   = 0x70
	valExternref = 0x6f
)

// snapshotFacts is what the rewrite learnt about a module for snapshots.
type snapshotFacts struct {
	tableWrites bool           // some code writes a table (table.set, grow, fill, copy, init, elem.drop)
	globals     []globalExport // the defined mutable globals, exported
	// data holds, when the rewrite made the data segments passive (datapassive.go), the
	// offset each segment is written at, in segment order; nil when it left them active.
	data []uint32
}

// globalExport is one defined mutable global: its index and value type.
type globalExport struct {
	index uint32
	typ   byte
}

func (g globalExport) name() string {
	return snapshotGlobalPrefix + strconv.FormatUint(uint64(g.index), 10)
}

// mutableGlobals lists the defined mutable globals of a global section. importedGlobals
// is how many globals the imports declare, which come first in the index space.
func mutableGlobals(body []byte, importedGlobals uint32) ([]globalExport, error) {
	r := wasmbin.Reader{B: body}
	n := r.U32()
	var out []globalExport
	for i := uint32(0); i < n && r.Err == nil; i++ {
		typ := r.Byte()
		switch typ {
		case valI32, valI64, valF32, valF64, valV128, valFuncref, valExternref:
		default:
			if r.Err == nil {
				return nil, fmt.Errorf("global %d has value type %#x: %w", importedGlobals+i, typ, errUninstrumentable)
			}
		}
		mut := r.Byte()
		if err := skipConstExpr(&r); err != nil {
			return nil, fmt.Errorf("global %d: %w", importedGlobals+i, err)
		}
		if mut == 1 {
			out = append(out, globalExport{index: importedGlobals + i, typ: typ})
		}
	}
	if r.Err != nil {
		return nil, r.Err
	}
	if !r.Done() { // the rewrite appends globals after these
		return nil, fmt.Errorf("global section: %d bytes after its %d globals", len(r.B), n)
	}
	return out, nil
}

// skipConstExpr reads a constant expression through its end.
func skipConstExpr(r *wasmbin.Reader) error {
	for r.Err == nil {
		switch op := r.Byte(); op {
		case 0x0b:
			return r.Err
		case 0x41, 0x42: // i32.const, i64.const
			r.U64()
		case 0x43:
			r.Bytes(4)
		case 0x44:
			r.Bytes(8)
		case 0x23, 0xd2: // global.get, ref.func
			r.U32()
		case 0xd0: // ref.null
			r.Byte()
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended constants: add, sub, mul
		case 0xfd: // v128.const
			if sub := r.U32(); sub != 12 {
				return fmt.Errorf("constant expression opcode 0xfd %d: %w", sub, errUninstrumentable)
			}
			r.Bytes(16)
		default:
			if r.Err == nil {
				return fmt.Errorf("constant expression opcode %#x: %w", op, errUninstrumentable)
			}
		}
	}
	return r.Err
}

// appendGlobalExports adds an export for each global to an export section's entries
// (rest, after its count n) and returns the new section body.
func appendGlobalExports(n uint32, rest []byte, globals []globalExport) []byte {
	out := wasmbin.AppendU32(nil, n+uint32(len(globals)))
	out = append(out, rest...)
	for _, g := range globals {
		name := g.name()
		out = wasmbin.AppendU32(out, uint32(len(name)))
		out = append(out, name...)
		out = append(out, 0x03)
		out = wasmbin.AppendU32(out, g.index)
	}
	return out
}

// appendFacts encodes facts as the body of the snapshotSection custom section.
func appendFacts(b []byte, facts snapshotFacts) []byte {
	b = wasmbin.AppendU32(b, uint32(len(snapshotSection)))
	b = append(b, snapshotSection...)
	var flags byte
	if facts.tableWrites {
		flags |= 1
	}
	if facts.data != nil {
		flags |= 2
	}
	b = append(b, snapshotFactsVersion, flags)
	b = wasmbin.AppendU32(b, uint32(len(facts.globals)))
	for _, g := range facts.globals {
		b = wasmbin.AppendU32(b, g.index)
		b = append(b, g.typ)
	}
	if facts.data != nil {
		b = wasmbin.AppendU32(b, uint32(len(facts.data)))
		for _, off := range facts.data {
			b = wasmbin.AppendU32(b, off)
		}
	}
	return b
}

// errNoFacts means a module carries no snapshotSection: it was not rewritten.
var errNoFacts = errors.New("module was not rewritten by Fermion")

// moduleOutline is what a snapshot needs from a rewritten module's sections.
type moduleOutline struct {
	facts    snapshotFacts
	hasStart bool
}

// readOutline finds the start section and the snapshotSection of a module, reading
// only section headers and that custom section.
func readOutline(wasm []byte) (moduleOutline, error) {
	var o moduleOutline
	if len(wasm) < 8 {
		return o, ErrNotWasm
	}
	found := false
	r := wasmbin.Reader{B: wasm[8:]}
	for !r.Done() {
		id := r.Byte()
		body := r.Bytes(r.U32())
		if r.Err != nil {
			return o, fmt.Errorf("read module sections: %w", r.Err)
		}
		switch id {
		case 8:
			o.hasStart = true
		case 0:
			br := wasmbin.Reader{B: body}
			if string(br.Bytes(br.U32())) != snapshotSection || br.Err != nil {
				continue
			}
			facts, err := decodeFacts(&br)
			if err != nil {
				return o, fmt.Errorf("read %s section: %w", snapshotSection, err)
			}
			o.facts, found = facts, true
		}
	}
	if !found {
		return o, errNoFacts
	}
	return o, nil
}

func decodeFacts(r *wasmbin.Reader) (snapshotFacts, error) {
	var f snapshotFacts
	if v := r.Byte(); v != snapshotFactsVersion && r.Err == nil {
		return f, fmt.Errorf("version %d, want %d", v, snapshotFactsVersion)
	}
	flags := r.Byte()
	f.tableWrites = flags&1 != 0
	n := r.U32()
	for i := uint32(0); i < n && r.Err == nil; i++ {
		f.globals = append(f.globals, globalExport{index: r.U32(), typ: r.Byte()})
	}
	if flags&2 != 0 {
		n := r.U32()
		if r.Err == nil && uint64(n) > uint64(len(r.B)) {
			return f, fmt.Errorf("%d data offsets in %d bytes", n, len(r.B))
		}
		f.data = make([]uint32, 0, n)
		for i := uint32(0); i < n && r.Err == nil; i++ {
			f.data = append(f.data, r.U32())
		}
	}
	if r.Err == nil && !r.Done() {
		return f, errors.New("bytes after the facts")
	}
	return f, r.Err
}
