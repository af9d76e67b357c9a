package wasmbin

import (
	"errors"
	"fmt"
)

// Module is the outline of a binary module: what the sandbox bounds and checks before it
// lets wazero compile the module. Inspect fills it in one pass, reading every function
// body's instructions but keeping none of them.
type Module struct {
	Size      int        // bytes of the whole module
	Sections  []Section  // in file order, custom sections included
	Types     []FuncType // the type section
	Imports   []Import
	Functions uint32 // defined functions (the function section's count)
	// ImportedFunctions is how many of the function index space the imports take: a
	// defined function's index is ImportedFunctions plus its position.
	ImportedFunctions uint32
	Tables            []Table // imported tables first, then defined ones, in index order
	Globals           uint32  // defined globals
	ElementSegments   uint32
	DataSegments      uint32
	CodeBytes         int // size of the code section's body
	// Largest is, for each per-function measure, the function with the most of it.
	Largest struct {
		Bytes, Locals, Branches, BrTableTargets Extreme
	}
}

// Section is one section's place in the file.
type Section struct {
	ID    byte
	Start int // offset of the id byte
	Body  int // offset of the first byte of the contents
	End   int // offset just past the contents
}

// FuncType is a function signature; value types are their one-byte encodings.
type FuncType struct {
	Params, Results []byte
}

// Import kinds, as encoded.
const (
	KindFunc   = 0x00
	KindTable  = 0x01
	KindMemory = 0x02
	KindGlobal = 0x03
	KindTag    = 0x04
)

// Import is one entry of the import section.
type Import struct {
	Module, Name string
	Kind         byte
	Type         uint32 // KindFunc: the index of its type
}

// Table is a table's declared limits. LimitsStart and LimitsEnd delimit their encoding in
// the file, so a rewriter can replace them.
type Table struct {
	Min, Max               uint64
	HasMax, Imported       bool
	LimitsStart, LimitsEnd int
}

// Extreme is the largest value a per-function measure took and the function (by index,
// imports included) that took it.
type Extreme struct {
	Value    uint64
	Function uint32
}

func (x *Extreme) see(v uint64, fn uint32) {
	if v > x.Value {
		x.Value, x.Function = v, fn
	}
}

// Inspect reads a module's outline. It validates what it reads (lengths, counts,
// instruction encodings, block nesting) but not types, which compilation checks; an
// error names the file offset where reading stopped. It never panics, and its cost is
// linear in the module's size.
func Inspect(wasm []byte) (*Module, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return nil, errors.New("not a WebAssembly module (missing \\0asm magic)")
	}
	if wasm[4] != 1 || wasm[5] != 0 || wasm[6] != 0 || wasm[7] != 0 {
		return nil, fmt.Errorf("unsupported binary format version %x (want 1: core modules; components are not supported)", wasm[4:8])
	}
	m := &Module{Size: len(wasm)}
	r := Reader{B: wasm[8:], Off: 8}
	definedFuncs := -1
	for !r.Done() {
		start := r.Off
		id := r.Byte()
		if id > 13 && r.Err == nil {
			return nil, fmt.Errorf("section at offset %d: unknown section id %d", start, id)
		}
		size := r.U32()
		bodyOff := r.Off
		body := r.Bytes(size)
		if r.Err != nil {
			return nil, fmt.Errorf("section %d at offset %d: %w", id, start, r.Err)
		}
		m.Sections = append(m.Sections, Section{ID: id, Start: start, Body: bodyOff, End: r.Off})
		br := Reader{B: body, Off: bodyOff}
		switch id {
		case 0: // custom: names, producers, debug info; never compiled
			continue
		case 1:
			m.types(&br)
		case 2:
			m.imports(&br)
		case 3:
			n := br.U32()
			for i := uint32(0); i < n && br.Err == nil; i++ {
				br.U32()
			}
			m.Functions = n
			definedFuncs = int(n)
		case 4:
			for i, n := uint32(0), br.U32(); i < n && br.Err == nil; i++ {
				br.ValType()
				m.Tables = append(m.Tables, readTable(&br, false))
			}
		case 5, 6, 7, 8, 9, 11, 12, 13:
			// Memory, global, export, start, element, data, data count and tag sections:
			// only their counts matter here; compilation validates their contents.
			n := br.U32()
			switch id {
			case 6:
				m.Globals = n
			case 9:
				m.ElementSegments = n
			case 11:
				m.DataSegments = n
			}
			continue
		case 10:
			m.CodeBytes = len(body)
			m.code(&br, definedFuncs)
		}
		if br.Err == nil && !br.Done() {
			br.Fail(errors.New("section has bytes after its last entry"))
		}
		if br.Err != nil {
			return nil, fmt.Errorf("%s section at offset %d: %w (at offset %d)", sectionName(id), start, br.Err, br.Off)
		}
	}
	if r.Err != nil {
		return nil, r.Err
	}
	if definedFuncs > 0 && m.CodeBytes == 0 {
		return nil, fmt.Errorf("module declares %d functions but has no code section", definedFuncs)
	}
	return m, nil
}

func sectionName(id byte) string {
	switch id {
	case 1:
		return "type"
	case 2:
		return "import"
	case 3:
		return "function"
	case 4:
		return "table"
	case 10:
		return "code"
	}
	return fmt.Sprintf("id %d", id)
}

func (m *Module) types(r *Reader) {
	for i, n := uint32(0), r.U32(); i < n && r.Err == nil; i++ {
		if form := r.Byte(); form != 0x60 && r.Err == nil {
			r.Fail(fmt.Errorf("type %d: unsupported type form %#x (want a function type, 0x60)", i, form))
			return
		}
		var t FuncType
		t.Params = r.valTypes()
		t.Results = r.valTypes()
		m.Types = append(m.Types, t)
	}
}

// valTypes reads a vector of value types, keeping their first byte.
func (r *Reader) valTypes() []byte {
	n := r.U32()
	if uint64(n) > uint64(len(r.B)) { // each takes at least a byte
		r.Fail(ErrTruncated)
		return nil
	}
	out := make([]byte, 0, n)
	for i := uint32(0); i < n && r.Err == nil; i++ {
		if len(r.B) > 0 {
			out = append(out, r.B[0])
		}
		r.ValType()
	}
	return out
}

func (m *Module) imports(r *Reader) {
	for i, n := uint32(0), r.U32(); i < n && r.Err == nil; i++ {
		im := Import{Module: r.Name(), Name: r.Name(), Kind: r.Byte()}
		switch im.Kind {
		case KindFunc:
			im.Type = r.U32()
			m.ImportedFunctions++
		case KindTable:
			r.ValType()
			m.Tables = append(m.Tables, readTable(r, true))
		case KindMemory:
			r.Limits()
		case KindGlobal:
			r.ValType()
			r.Byte() // mutability
		case KindTag:
			r.Byte()
			r.U32()
		default:
			if r.Err == nil {
				r.Fail(fmt.Errorf("import %d: unknown import kind %#x", i, im.Kind))
			}
		}
		if r.Err == nil {
			m.Imports = append(m.Imports, im)
		}
	}
}

func readTable(r *Reader, imported bool) Table {
	t := Table{Imported: imported, LimitsStart: r.Off}
	flags := r.Byte()
	if flags > 0x07 && r.Err == nil {
		r.Fail(fmt.Errorf("bad table limits flags %#x", flags))
	}
	width := 5
	if flags&0x04 != 0 {
		width = 10
	}
	t.Min = r.LEB(width)
	if flags&0x01 != 0 {
		t.HasMax = true
		t.Max = r.LEB(width)
	}
	t.LimitsEnd = r.Off
	return t
}

// code reads every function body and records the largest of each measure.
func (m *Module) code(r *Reader, declared int) {
	n := r.U32()
	if r.Err == nil && declared >= 0 && int64(n) != int64(declared) {
		r.Fail(fmt.Errorf("code section has %d bodies but the function section declares %d functions", n, declared))
		return
	}
	for i := uint32(0); i < n && r.Err == nil; i++ {
		size := r.U32()
		off := r.Off
		body := r.Bytes(size)
		if r.Err != nil {
			return
		}
		fn := m.ImportedFunctions + i
		st, err := bodyStats(Reader{B: body, Off: off})
		if err != nil {
			r.Fail(fmt.Errorf("function %d: %w", fn, err))
			return
		}
		m.Largest.Bytes.see(uint64(size), fn)
		m.Largest.Locals.see(st.locals, fn)
		m.Largest.Branches.see(st.branches, fn)
		m.Largest.BrTableTargets.see(st.brTargets, fn)
	}
}

type funcStats struct {
	locals    uint64
	branches  uint64 // blocks, loops, ifs, elses, branches and br_table targets
	brTargets uint64 // the largest br_table's target count
}

// bodyStats walks one function body. Its opcode table covers what wazero compiles: the
// core 2.0 instruction set (including SIMD), threads, tail calls and exceptions.
func bodyStats(r Reader) (funcStats, error) {
	var st funcStats
	for i, groups := uint32(0), r.U32(); i < groups && r.Err == nil; i++ {
		st.locals += uint64(r.U32())
		r.ValType()
	}
	depth := 0
	for r.Err == nil {
		if len(r.B) == 0 {
			return st, errors.New("body ends before its final end instruction")
		}
		at := r.Off
		op := r.Byte()
		switch {
		case op == 0x02 || op == 0x03 || op == 0x04 || op == 0x06: // block, loop, if, try
			r.BlockType()
			depth++
			st.branches++
		case op == 0x1f: // try_table
			r.BlockType()
			depth++
			st.branches++
			for j, c := uint32(0), r.U32(); j < c && r.Err == nil; j++ {
				switch kind := r.Byte(); kind {
				case 0x00, 0x01:
					r.U32()
					r.U32()
				case 0x02, 0x03:
					r.U32()
				default:
					r.Fail(fmt.Errorf("bad catch kind %#x", kind))
				}
				st.branches++
			}
		case op == 0x0b: // end
			if depth == 0 {
				if len(r.B) != 0 {
					return st, fmt.Errorf("%d bytes after the function's final end (offset %d)", len(r.B), r.Off)
				}
				return st, nil
			}
			depth--
		case op == 0x05 || op == 0x19: // else, catch_all
			st.branches++
		case op == 0x0c || op == 0x0d || op == 0xd5 || op == 0xd6 || op == 0x07 || op == 0x09 || op == 0x18:
			// br, br_if, br_on_null, br_on_non_null; catch, rethrow, delegate
			r.U32()
			st.branches++
		case op == 0x0e: // br_table
			targets := uint64(r.U32()) + 1
			if targets > uint64(len(r.B)) {
				return st, ErrTruncated
			}
			for j := uint64(0); j < targets && r.Err == nil; j++ {
				r.U32()
			}
			st.branches += targets
			st.brTargets = max(st.brTargets, targets)
		case op <= 0x01, op == 0x0a, op == 0x0f, op == 0x1a, op == 0x1b, op == 0xd1, op == 0xd3, op == 0xd4:
		case op == 0x08 || op == 0x10 || op == 0x12 || op == 0x14 || op == 0x15 || op == 0xd2:
			r.U32()
		case op == 0x11 || op == 0x13:
			r.U32()
			r.U32()
		case op == 0x1c: // select with types
			r.valTypes()
		case op >= 0x20 && op <= 0x26:
			r.U32()
		case op >= 0x28 && op <= 0x3e:
			r.memarg()
		case op == 0x3f || op == 0x40:
			r.U32()
		case op == 0x41:
			r.LEB(5)
		case op == 0x42:
			r.LEB(10)
		case op == 0x43:
			r.Bytes(4)
		case op == 0x44:
			r.Bytes(8)
		case op >= 0x45 && op <= 0xc4:
		case op == 0xd0:
			r.LEB(5) // heap type
		case op == 0xfc:
			r.miscOp()
		case op == 0xfd:
			r.simdOp()
		case op == 0xfe:
			r.atomicOp()
		default:
			return st, fmt.Errorf("unknown opcode %#x at offset %d", op, at)
		}
	}
	return st, r.Err
}

func (r *Reader) memarg() {
	if align := r.U32(); align&0x40 != 0 {
		r.U32() // memory index (multi-memory)
	}
	r.U64()
}

func (r *Reader) miscOp() {
	switch sub := r.U32(); {
	case r.Err != nil:
	case sub <= 7: // saturating truncations
	case sub == 8: // memory.init
		r.U32()
		r.U32()
	case sub == 9 || sub == 13 || sub == 15 || sub == 16 || sub == 17:
		r.U32()
	case sub == 10:
		r.U32()
		r.U32()
	case sub == 11:
		r.U32()
	case sub == 12 || sub == 14:
		r.U32()
		r.U32()
	default:
		r.Fail(fmt.Errorf("unknown opcode 0xfc %d", sub))
	}
}

func (r *Reader) simdOp() {
	switch sub := r.U32(); {
	case r.Err != nil:
	case sub <= 11 || sub == 92 || sub == 93: // loads and stores
		r.memarg()
	case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
		r.Bytes(16)
	case sub >= 21 && sub <= 34: // lane extract and replace
		r.Byte()
	case sub >= 84 && sub <= 91: // lane loads and stores
		r.memarg()
		r.Byte()
	case sub <= 0x113: // the rest of SIMD and relaxed SIMD take no immediate
	default:
		r.Fail(fmt.Errorf("unknown opcode 0xfd %d", sub))
	}
}

func (r *Reader) atomicOp() {
	switch sub := r.U32(); {
	case r.Err != nil:
	case sub == 0x03: // atomic.fence
		r.Byte()
	case sub <= 0x02 || (sub >= 0x10 && sub <= 0x4e):
		r.memarg()
	default:
		r.Fail(fmt.Errorf("unknown opcode 0xfe %d", sub))
	}
}
