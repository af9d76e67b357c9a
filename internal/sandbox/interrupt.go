package sandbox

import (
	"errors"
	"fmt"
)

// Why rewrite the module? A request deadline must stop a guest even in a tight loop.
// wazero can do that (RuntimeConfig.WithCloseOnContextDone), but it does so by leaving
// the compiled code for Go at every loop header to check whether the module was closed.
// Go's wasm backend wraps every function body in a loop, so that costs an exit per call:
// it measured 4× slower guest execution here. Instead, Fermion adds to the module one
// exported mutable global, fermion_interrupt, and at the top of every loop body the
// instructions
//
//	global.get $fermion_interrupt  if  unreachable  end
//
// (the same idea as Wasmtime's epoch interruption): a load and a branch, no exit. To
// stop a call, the host sets the global to 1; the guest traps at its next loop
// iteration or function entry, and the instance is discarded.
//
// Modules the rewriter does not understand (SIMD, threads, exceptions...) are run with
// WithCloseOnContextDone instead: slower, equally safe.

// InterruptExport is the name of the global added by instrumentInterrupt.
const InterruptExport = "fermion_interrupt"

// errUninstrumentable means the module uses instructions the rewriter does not handle.
var errUninstrumentable = errors.New("module uses instructions the interrupt rewriter does not handle")

// instrumentInterrupt returns a copy of the module with the interrupt global and loop
// checks added.
func instrumentInterrupt(wasm []byte) ([]byte, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" || wasm[4] != 1 || wasm[5] != 0 || wasm[6] != 0 || wasm[7] != 0 {
		return nil, ErrNotWasm
	}
	type section struct {
		id   byte
		body []byte
	}
	var sections []section
	r := reader{b: wasm[8:]}
	for !r.done() {
		id := r.byte()
		size := r.u32()
		body := r.bytes(size)
		if r.err != nil {
			return nil, fmt.Errorf("section %d: %w", id, r.err)
		}
		sections = append(sections, section{id, body})
	}
	importedGlobals, definedGlobals := uint32(0), uint32(0)
	globalIdx, exportIdx, codeIdx := -1, -1, -1
	for i, s := range sections {
		switch s.id {
		case 2:
			n, err := countImportedGlobals(s.body)
			if err != nil {
				return nil, fmt.Errorf("import section: %w", err)
			}
			importedGlobals = n
		case 6:
			globalIdx = i
			gr := reader{b: s.body}
			definedGlobals = gr.u32()
			if gr.err != nil {
				return nil, gr.err
			}
		case 7:
			exportIdx = i
		case 10:
			codeIdx = i
		}
	}
	if globalIdx < 0 || exportIdx < 0 || codeIdx < 0 {
		return nil, fmt.Errorf("%w: needs global, export and code sections", errUninstrumentable)
	}
	g := importedGlobals + definedGlobals

	// Global section: one more mutable i32 initialised to 0.
	{
		gr := reader{b: sections[globalIdx].body}
		n := gr.u32()
		rest := gr.b
		out := appendU32(nil, n+1)
		out = append(out, rest...)
		out = append(out, 0x7f, 0x01, 0x41, 0x00, 0x0b)
		sections[globalIdx].body = out
	}
	// Export section: export it.
	{
		er := reader{b: sections[exportIdx].body}
		n := er.u32()
		rest := er.b
		out := appendU32(nil, n+1)
		out = append(out, rest...)
		out = appendU32(out, uint32(len(InterruptExport)))
		out = append(out, InterruptExport...)
		out = append(out, 0x03)
		out = appendU32(out, g)
		sections[exportIdx].body = out
	}
	// Code section: a check at the top of every loop.
	check := append(append([]byte{0x23}, appendU32(nil, g)...), 0x04, 0x40, 0x00, 0x0b)
	code, err := instrumentCode(sections[codeIdx].body, check)
	if err != nil {
		return nil, err
	}
	sections[codeIdx].body = code

	out := make([]byte, 0, len(wasm)+len(wasm)/8)
	out = append(out, wasm[:8]...)
	for _, s := range sections {
		out = append(out, s.id)
		out = appendU32(out, uint32(len(s.body)))
		out = append(out, s.body...)
	}
	return out, nil
}

func countImportedGlobals(b []byte) (uint32, error) {
	r := reader{b: b}
	n := r.u32()
	globals := uint32(0)
	for i := uint32(0); i < n && r.err == nil; i++ {
		r.bytes(r.u32()) // module
		r.bytes(r.u32()) // name
		switch kind := r.byte(); kind {
		case 0x00: // func
			r.u32()
		case 0x01: // table
			r.byte()
			r.limits()
		case 0x02: // memory
			r.limits()
		case 0x03: // global
			r.byte()
			r.byte()
			globals++
		case 0x04: // tag
			r.byte()
			r.u32()
		default:
			return 0, fmt.Errorf("import kind %#x: %w", kind, errUninstrumentable)
		}
	}
	return globals, r.err
}

func instrumentCode(b []byte, check []byte) ([]byte, error) {
	r := reader{b: b}
	n := r.u32()
	out := appendU32(make([]byte, 0, len(b)+len(b)/8), n)
	var body []byte
	for i := uint32(0); i < n; i++ {
		size := r.u32()
		fn := r.bytes(size)
		if r.err != nil {
			return nil, fmt.Errorf("function %d: %w", i, r.err)
		}
		var err error
		body, err = instrumentBody(body[:0], fn, check)
		if err != nil {
			return nil, fmt.Errorf("function %d: %w", i, err)
		}
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	if !r.done() {
		return nil, errors.New("trailing bytes in code section")
	}
	return out, nil
}

// instrumentBody copies one function body, inserting check after every loop header.
func instrumentBody(out, fn, check []byte) ([]byte, error) {
	r := reader{b: fn}
	groups := r.u32()
	for i := uint32(0); i < groups && r.err == nil; i++ {
		r.u32()
		r.byte()
	}
	if r.err != nil {
		return nil, r.err
	}
	out = append(out, fn[:len(fn)-len(r.b)]...)
	for !r.done() {
		start := len(fn) - len(r.b)
		op := r.byte()
		isLoop := false
		switch {
		case op == 0x02 || op == 0x04:
			r.blockType()
		case op == 0x03:
			r.blockType()
			isLoop = true
		case op <= 0x01, op == 0x05, op == 0x0b, op == 0x0f, op == 0x1a, op == 0x1b, op == 0xd1:
		case op == 0x0c || op == 0x0d || op == 0x10 || op == 0x12 || op == 0xd2:
			r.u32()
		case op == 0x0e:
			for j, m := uint32(0), r.u32(); j <= m && r.err == nil; j++ {
				r.u32()
			}
		case op == 0x11 || op == 0x13:
			r.u32()
			r.u32()
		case op == 0x1c:
			r.bytes(r.u32())
		case op >= 0x20 && op <= 0x26:
			r.u32()
		case op >= 0x28 && op <= 0x3e:
			if align := r.u32(); align&0x40 != 0 {
				r.u32() // memory index (multi-memory)
			}
			r.u64()
		case op == 0x3f || op == 0x40:
			r.byte()
		case op == 0x41 || op == 0x42:
			r.u64()
		case op == 0x43:
			r.bytes(4)
		case op == 0x44:
			r.bytes(8)
		case op >= 0x45 && op <= 0xc4:
		case op == 0xd0:
			r.byte()
		case op == 0xfc:
			switch sub := r.u32(); {
			case sub <= 7:
			case sub == 8:
				r.u32()
				r.byte()
			case sub == 9 || sub == 13 || sub == 15 || sub == 16 || sub == 17:
				r.u32()
			case sub == 10:
				r.byte()
				r.byte()
			case sub == 11:
				r.byte()
			case sub == 12 || sub == 14:
				r.u32()
				r.u32()
			default:
				return nil, fmt.Errorf("opcode 0xfc %d: %w", sub, errUninstrumentable)
			}
		default:
			return nil, fmt.Errorf("opcode %#x: %w", op, errUninstrumentable)
		}
		if r.err != nil {
			return nil, r.err
		}
		out = append(out, fn[start:len(fn)-len(r.b)]...)
		if isLoop {
			out = append(out, check...)
		}
	}
	return out, nil
}

// reader decodes the wasm binary format and remembers the first error.
type reader struct {
	b   []byte
	err error
}

var errTruncated = errors.New("truncated module")

func (r *reader) done() bool { return len(r.b) == 0 || r.err != nil }

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.err = errTruncated
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) bytes(n uint32) []byte {
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(r.b)) {
		r.err = errTruncated
		return nil
	}
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}

// u64 reads an unsigned or signed LEB128 of up to 10 bytes; only its length matters
// when skipping, and the value when it fits.
func (r *reader) u64() uint64 {
	var v uint64
	for shift := uint(0); shift < 70; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		if shift < 64 {
			v |= uint64(c&0x7f) << shift
		}
		if c&0x80 == 0 {
			return v
		}
	}
	r.err = errors.New("LEB128 too long")
	return 0
}

func (r *reader) u32() uint32 {
	v := r.u64()
	if v > 0xffffffff && r.err == nil {
		r.err = errors.New("u32 out of range")
	}
	return uint32(v)
}

func (r *reader) limits() {
	flags := r.byte()
	r.u64()
	if flags&1 != 0 {
		r.u64()
	}
}

// blockType skips a block type: 0x40, a value type, or a type index (s33).
func (r *reader) blockType() {
	if len(r.b) == 0 {
		r.err = errTruncated
		return
	}
	switch r.b[0] {
	case 0x40, 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
		r.b = r.b[1:]
	default:
		r.u64()
	}
}

func appendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}
