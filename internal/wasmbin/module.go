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
		st, err := bodyStats(body, off)
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

// Instruction classes: what follows an opcode, and what it does to the control flow.
const (
	opUnknown  = iota
	opPlain    // no immediate
	opU32      // one LEB128 (index, i32 constant, memory index)
	opU32x2    // two LEB128s
	opU64      // one LEB128 of up to 10 bytes (i64 constant)
	opMemarg   // alignment (and memory index), offset
	opFixed4   // f32 constant
	opFixed8   // f64 constant
	opBlock    // block type, opens a block
	opEnd      // closes a block, or the function
	opElse     // a branch point without immediate (else, catch_all)
	opBranch   // a label: a branch
	opBrTable  // a vector of labels and a default
	opPrefixed // 0x1c, 0x1f, 0xfc, 0xfd, 0xfe: decoded by the Reader methods below
)

// opClass classifies the one-byte opcodes that wazero compiles: the core 2.0 instruction
// set (including SIMD), threads, tail calls, typed references and exceptions.
var opClass = func() (t [256]uint8) {
	set := func(c uint8, ops ...int) {
		for _, op := range ops {
			t[op] = c
		}
	}
	span := func(c uint8, lo, hi int) {
		for op := lo; op <= hi; op++ {
			t[op] = c
		}
	}
	set(opPlain, 0x00, 0x01, 0x0a, 0x0f, 0x1a, 0x1b, 0xd1, 0xd3, 0xd4)
	set(opBlock, 0x02, 0x03, 0x04, 0x06) // block, loop, if, try
	set(opEnd, 0x0b)
	set(opElse, 0x05, 0x19)                                 // else, catch_all
	set(opBranch, 0x0c, 0x0d, 0xd5, 0xd6, 0x07, 0x09, 0x18) // br, br_if, br_on_(non_)null, catch, rethrow, delegate
	set(opBrTable, 0x0e)
	set(opU32, 0x08, 0x10, 0x12, 0x14, 0x15, 0xd2, 0x3f, 0x40, 0x41, 0xd0)
	span(opU32, 0x20, 0x26) // locals, globals, table.get/set
	set(opU32x2, 0x11, 0x13)
	set(opU64, 0x42)
	span(opMemarg, 0x28, 0x3e)
	set(opFixed4, 0x43)
	set(opFixed8, 0x44)
	span(opPlain, 0x45, 0xc4) // numeric instructions
	set(opPrefixed, 0x1c, 0x1f, 0xfc, 0xfd, 0xfe)
	return t
}()

// skipLEB returns the index just past the LEB128 integer at b[i:], of at most max bytes,
// or a negative index when b ends first or the integer is longer.
func skipLEB(b []byte, i, max int) int {
	for n := 0; n < max; n++ {
		if i >= len(b) {
			return -1
		}
		c := b[i]
		i++
		if c&0x80 == 0 {
			return i
		}
	}
	return -2
}

// bodyStats walks one function body, found at file offset off. It is the hot loop of
// Inspect, so the common instructions are decoded inline from the byte slice; the rare
// prefixed ones go through a Reader.
func bodyStats(b []byte, off int) (funcStats, error) {
	var st funcStats
	r := Reader{B: b, Off: off}
	for i, groups := uint32(0), r.U32(); i < groups && r.Err == nil; i++ {
		st.locals += uint64(r.U32())
		r.ValType()
	}
	if r.Err != nil {
		return st, r.Err
	}
	i := len(b) - len(r.B)
	depth := 0
	bad := func(i int) error {
		if i == -1 {
			return ErrTruncated
		}
		return errors.New("integer encoding too long")
	}
	for {
		if i >= len(b) {
			return st, errors.New("body ends before its final end instruction")
		}
		at := i
		op := b[i]
		i++
		switch opClass[op] {
		case opPlain:
		case opU32:
			i = skipLEB(b, i, 5)
		case opU32x2:
			if i = skipLEB(b, i, 5); i >= 0 {
				i = skipLEB(b, i, 5)
			}
		case opU64:
			i = skipLEB(b, i, 10)
		case opMemarg:
			if i < len(b) && b[i]&0x40 != 0 { // alignment flags a memory index (multi-memory)
				if i = skipLEB(b, i, 5); i >= 0 {
					i = skipLEB(b, i, 5)
				}
			} else {
				i = skipLEB(b, i, 5)
			}
			if i >= 0 {
				i = skipLEB(b, i, 10)
			}
		case opFixed4, opFixed8:
			n := 4
			if opClass[op] == opFixed8 {
				n = 8
			}
			if i += n; i > len(b) {
				i = -1
			}
		case opBlock:
			depth++
			st.branches++
			if i < len(b) {
				switch b[i] {
				case 0x40, 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
					i++
				default:
					i = skipLEB(b, i, 5) // a type index
				}
			} else {
				i = -1
			}
		case opEnd:
			if depth == 0 {
				if i != len(b) {
					return st, fmt.Errorf("%d bytes after the function's final end (offset %d)", len(b)-i, off+i)
				}
				return st, nil
			}
			depth--
		case opElse:
			st.branches++
		case opBranch:
			st.branches++
			i = skipLEB(b, i, 5)
		case opBrTable:
			r := Reader{B: b[i:], Off: off + i}
			targets := uint64(r.U32()) + 1
			if r.Err != nil {
				return st, r.Err
			}
			if targets > uint64(len(r.B)) { // each target takes a byte at least
				return st, ErrTruncated
			}
			i = len(b) - len(r.B)
			for j := uint64(0); j < targets && i >= 0; j++ {
				i = skipLEB(b, i, 5)
			}
			st.branches += targets
			st.brTargets = max(st.brTargets, targets)
		case opPrefixed:
			r := Reader{B: b[i:], Off: off + i}
			switch op {
			case 0x1c: // select with types
				r.valTypes()
			case 0x1f: // try_table
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
			case 0xfc:
				r.miscOp()
			case 0xfd:
				r.simdOp()
			case 0xfe:
				r.atomicOp()
			}
			if r.Err != nil {
				return st, r.Err
			}
			i = len(b) - len(r.B)
		default:
			return st, fmt.Errorf("unknown opcode %#x at offset %d", op, off+at)
		}
		if i < 0 {
			return st, fmt.Errorf("instruction at offset %d: %w", off+at, bad(i))
		}
	}
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
