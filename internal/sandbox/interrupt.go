package sandbox

import (
	"errors"
	"fmt"
	"slices"

	"fermion.dev/fermion/internal/wasmbin"
)

// Why rewrite the module? A request deadline must stop a guest even in a tight loop.
// wazero can do that (RuntimeConfig.WithCloseOnContextDone), but it does so by leaving
// the compiled code for Go at every loop header to check whether the module was closed.
// Go's wasm backend wraps every function body in a loop, so that costs an exit per call:
// it measured 4× slower guest execution here. Instead, Fermion adds to the module two
// exported mutable globals, fermion_interrupt ($stop) and fermion_countdown ($n), and a
// check at the top of every loop body (the same idea as Wasmtime's epoch interruption):
//
//	global.get $n  i32.const 1  i32.sub  global.set $n
//	global.get $n  i32.const 0  i32.gt_s
//	if  else                                   ;; the slow path, 1 in yieldEvery
//	  global.get $stop  if  unreachable  end
//	  i32.const yieldEvery  global.set $n
//	  i32.const 0  memory.grow 0  drop
//	end
//
// The fast path is a load, a decrement, a store and a branch. wazero's compiler
// (wazevo) keeps a global it has just stored in a register, so the second global.get
// costs nothing, and it lays the empty then-arm out as the fall-through: the hot path
// takes no jump (measured: a tight loop runs at the speed of the module as compiled,
// where a slow path in the then-arm cost 15 % and the previous check, $stop read on
// every iteration, 100 %; bench/RESULTS.md, "Interrupt checks, cheaper").
//
// To stop a call, the host sets $stop to 1 and then $n to 0, so the guest takes the
// slow path at its next check, sees $stop and traps; the instance is discarded. The
// guest may overwrite the host's $n with its own decrement (a load before the host's
// store, the store after it): then the trap comes at the latest yieldEvery checks later.
//
// Go cannot preempt a goroutine running wazero's compiled code, so a loop that only
// tested a global would hold its thread through a garbage collection's stop-the-world:
// the world would wait for the guest, and the guest for the timer that sets the global,
// which cannot run while the world is stopped (the whole process hung; a neighbour
// allocating while a guest looped found it). So the slow path also calls memory.grow 0,
// which leaves compiled code for Go and back without effect: the Go scheduler gets its
// chance there.
//
// Loops are not the only way to run for long: a function without loops that calls
// itself twice, or a chain of functions each calling the next twice, makes 2^depth
// calls, and a tail call (return_call) to itself is a loop. So a function with two call
// sites or more, or a tail call, gets the check at its entry too, unless its body
// begins with a loop (every Go function's does), whose check is then at its entry
// already. That bounds the work between two checks: without passing a loop's check, an
// activation runs each of its instructions at most once, so one with at most one call
// site that is not a tail call makes at most one call, and the calls it starts form a
// chain as deep as the stack, whose limit wazero enforces (growing the stack visits Go,
// too). Checking every calling function's entry instead cost Rust's hello about 4 % more
// guest CPU; this rule was within noise of checking none.
//
// Modules the rewriter does not understand (SIMD, threads, exceptions...), and modules
// without a memory to grow, are run with WithCloseOnContextDone instead: slower, equally
// safe.

// yieldEvery is how many checks a guest passes between two visits to Go. A visit
// costs about 100 ns; a tight loop iteration under a nanosecond, so this keeps the cost
// near 1 % and a stop-the-world, or a stop whose hint the guest overwrote, waiting at most
// tens of microseconds for a tight loop.
const yieldEvery = 1 << 14

// InterruptExport is the name of the stop global added by instrumentInterrupt.
const InterruptExport = "fermion_interrupt"

// CountdownExport is the name of the countdown global added by instrumentInterrupt.
const CountdownExport = "fermion_countdown"

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
	r := wasmbin.Reader{B: wasm[8:]}
	for !r.Done() {
		id := r.Byte()
		size := r.U32()
		body := r.Bytes(size)
		if r.Err != nil {
			return nil, fmt.Errorf("section %d: %w", id, r.Err)
		}
		sections = append(sections, section{id, body})
	}
	importedGlobals, definedGlobals := uint32(0), uint32(0)
	globalIdx, exportIdx, codeIdx, dataIdx := -1, -1, -1, -1
	dataCount, hasMemory, hasStart := false, false, false
	memIdx, importedMemories := -1, uint32(0)
	for i, s := range sections {
		switch s.id {
		case 2:
			n, mems, err := countImports(s.body)
			if err != nil {
				return nil, fmt.Errorf("import section: %w", err)
			}
			importedGlobals, importedMemories = n, mems
			hasMemory = hasMemory || mems > 0
		case 5:
			memIdx = i
			mr := wasmbin.Reader{B: s.body}
			hasMemory = hasMemory || mr.U32() > 0
		case 6:
			globalIdx = i
			gr := wasmbin.Reader{B: s.body}
			definedGlobals = gr.U32()
			if gr.Err != nil {
				return nil, gr.Err
			}
		case 7:
			exportIdx = i
		case 8:
			hasStart = true
		case 10:
			codeIdx = i
		case 11:
			dataIdx = i
		case 12:
			dataCount = true
		}
	}
	if globalIdx < 0 || exportIdx < 0 || codeIdx < 0 {
		return nil, fmt.Errorf("%w: needs global, export and code sections", errUninstrumentable)
	}
	if !hasMemory {
		return nil, fmt.Errorf("%w: no memory to yield to Go through", errUninstrumentable)
	}
	g := importedGlobals + definedGlobals // $stop; g+1 is $n, which counts down to the slow path
	// Snapshots restore the module's own mutable globals (snapshot_rewrite.go).
	globals, err := mutableGlobals(sections[globalIdx].body, importedGlobals)
	if err != nil {
		return nil, err
	}

	// Global section: two more mutable i32s, $stop (0) and $n (yieldEvery).
	{
		gr := wasmbin.Reader{B: sections[globalIdx].body}
		n := gr.U32()
		rest := gr.B
		out := wasmbin.AppendU32(nil, n+2)
		out = append(out, rest...)
		out = append(out, 0x7f, 0x01, 0x41, 0x00, 0x0b)
		out = append(append(append(out, 0x7f, 0x01, 0x41), wasmbin.AppendS32(nil, yieldEvery)...), 0x0b)
		sections[globalIdx].body = out
	}
	origExports := sections[exportIdx].body
	// Export section: export both.
	{
		er := wasmbin.Reader{B: sections[exportIdx].body}
		n := er.U32()
		out := append([]byte(nil), er.B...)
		for i, name := range []string{InterruptExport, CountdownExport} {
			out = wasmbin.AppendU32(out, uint32(len(name)))
			out = append(out, name...)
			out = append(out, 0x03)
			out = wasmbin.AppendU32(out, g+uint32(i))
		}
		sections[exportIdx].body = appendGlobalExports(n+2, out, globals)
	}
	// Code section: the check at the top of every loop and at the entry of the
	// functions that call more than once.
	check := interruptCheck(g, g+1)
	code, segmentRefs, tableWrites, err := instrumentCode(sections[codeIdx].body, check)
	if err != nil {
		return nil, err
	}
	sections[codeIdx].body = code
	// Data section: fewer, larger segments (see datamerge.go), unless something refers
	// to segments by index.
	var dataOffsets []uint32
	if dataIdx >= 0 && !dataCount && !segmentRefs {
		sections[dataIdx].body = mergeData(sections[dataIdx].body)
		// The host writes a reactor's data, so a restored instance can map its memory
		// from the snapshot's image (datapassive.go).
		var memBody []byte
		if memIdx >= 0 && importedMemories == 0 { // memory 0 is the module's own
			memBody = sections[memIdx].body
		}
		if memBytes, ok := definedMemoryBytes(memBody); ok && !hasStart && exportsReactor(origExports) {
			if body, offs, ok := passiveData(sections[dataIdx].body, memBytes); ok {
				sections[dataIdx].body, dataOffsets = body, offs
			}
		}
	}
	sections = append(sections, section{0, appendFacts(nil, snapshotFacts{tableWrites: tableWrites, globals: globals, data: dataOffsets})})

	out := make([]byte, 0, len(wasm)+len(wasm)/8)
	out = append(out, wasm[:8]...)
	for _, s := range sections {
		out = append(out, s.id)
		out = wasmbin.AppendU32(out, uint32(len(s.body)))
		out = append(out, s.body...)
	}
	return out, nil
}

// interruptCheck is the check the package comment shows, for $stop at global index
// stop and $n at n.
func interruptCheck(stop, n uint32) []byte {
	getN := append([]byte{0x23}, wasmbin.AppendU32(nil, n)...)
	setN := append([]byte{0x24}, wasmbin.AppendU32(nil, n)...)
	var c []byte
	c = append(append(c, getN...), 0x41, 0x01, 0x6b) // $n - 1
	c = append(append(c, setN...), getN...)
	c = append(c, 0x41, 0x00, 0x4a, 0x04, 0x40, 0x05) // > 0: if (nothing) else
	c = append(append(append(c, 0x23), wasmbin.AppendU32(nil, stop)...), 0x04, 0x40, 0x00, 0x0b)
	c = append(append(append(c, 0x41), wasmbin.AppendS32(nil, yieldEvery)...), setN...)
	return append(c, 0x41, 0x00, 0x40, 0x00, 0x1a, 0x0b) // memory.grow 0, drop, end
}

// countImports counts the imported globals and memories.
func countImports(b []byte) (globals, memories uint32, err error) {
	r := wasmbin.Reader{B: b}
	n := r.U32()
	for i := uint32(0); i < n && r.Err == nil; i++ {
		r.Bytes(r.U32()) // module
		r.Bytes(r.U32()) // name
		switch kind := r.Byte(); kind {
		case 0x00: // func
			r.U32()
		case 0x01: // table
			r.Byte()
			r.Limits()
		case 0x02: // memory
			r.Limits()
			memories++
		case 0x03: // global
			r.Byte()
			r.Byte()
			globals++
		case 0x04: // tag
			r.Byte()
			r.U32()
		default:
			return 0, 0, fmt.Errorf("import kind %#x: %w", kind, errUninstrumentable)
		}
	}
	return globals, memories, r.Err
}

// instrumentCode instruments every function body. segmentRefs reports whether any
// refers to a data segment by index (memory.init, data.drop), tableWrites whether any
// writes to a table.
func instrumentCode(b []byte, check []byte) (out []byte, segmentRefs, tableWrites bool, err error) {
	r := wasmbin.Reader{B: b}
	n := r.U32()
	out = wasmbin.AppendU32(make([]byte, 0, len(b)+len(b)/8), n)
	var body []byte
	for i := uint32(0); i < n; i++ {
		size := r.U32()
		fn := r.Bytes(size)
		if r.Err != nil {
			return nil, false, false, fmt.Errorf("function %d: %w", i, r.Err)
		}
		body, err = instrumentBody(body[:0], fn, check, &segmentRefs, &tableWrites)
		if err != nil {
			return nil, false, false, fmt.Errorf("function %d: %w", i, err)
		}
		out = wasmbin.AppendU32(out, uint32(len(body)))
		out = append(out, body...)
	}
	if !r.Done() {
		return nil, false, false, errors.New("trailing bytes in code section")
	}
	return out, segmentRefs, tableWrites, nil
}

// instrumentBody copies one function body, inserting check after every loop header
// and, when the body has two call sites or a tail call and does not begin with a loop,
// at its entry; it sets *segmentRefs when the body uses a data segment index,
// *tableWrites when it writes to a table.
func instrumentBody(out, fn, check []byte, segmentRefs, tableWrites *bool) ([]byte, error) {
	r := wasmbin.Reader{B: fn}
	groups := r.U32()
	for i := uint32(0); i < groups && r.Err == nil; i++ {
		r.U32()
		r.Byte()
	}
	if r.Err != nil {
		return nil, r.Err
	}
	out = append(out, fn[:len(fn)-len(r.B)]...)
	entry := len(out) // where the body's instructions begin
	firstLoop, calls, tailCalls := len(r.B) > 0 && r.B[0] == 0x03, 0, false
	for !r.Done() {
		start := len(fn) - len(r.B)
		op := r.Byte()
		isLoop := false
		switch {
		case op == 0x02 || op == 0x04:
			r.BlockType()
		case op == 0x03:
			r.BlockType()
			isLoop = true
		case op <= 0x01, op == 0x05, op == 0x0b, op == 0x0f, op == 0x1a, op == 0x1b, op == 0xd1:
		case op == 0x0c || op == 0x0d || op == 0xd2:
			r.U32()
		case op == 0x10 || op == 0x12: // call, return_call
			r.U32()
			calls++
			tailCalls = tailCalls || op == 0x12
		case op == 0x0e:
			for j, m := uint32(0), r.U32(); j <= m && r.Err == nil; j++ {
				r.U32()
			}
		case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
			r.U32()
			r.U32()
			calls++
			tailCalls = tailCalls || op == 0x13
		case op == 0x1c:
			r.Bytes(r.U32())
		case op >= 0x20 && op <= 0x26:
			r.U32()
			*tableWrites = *tableWrites || op == 0x26 // table.set
		case op >= 0x28 && op <= 0x3e:
			if align := r.U32(); align&0x40 != 0 {
				r.U32() // memory index (multi-memory)
			}
			r.U64()
		case op == 0x3f || op == 0x40:
			r.Byte()
		case op == 0x41 || op == 0x42:
			r.U64()
		case op == 0x43:
			r.Bytes(4)
		case op == 0x44:
			r.Bytes(8)
		case op >= 0x45 && op <= 0xc4:
		case op == 0xd0:
			r.Byte()
		case op == 0xfc:
			switch sub := r.U32(); {
			case sub <= 7:
			case sub == 8: // memory.init
				r.U32()
				r.Byte()
				*segmentRefs = true
			case sub == 9: // data.drop
				r.U32()
				*segmentRefs = true
			case sub == 13 || sub == 15 || sub == 16 || sub == 17:
				r.U32()
				*tableWrites = *tableWrites || sub != 16 // elem.drop, table.grow, table.fill
			case sub == 10:
				r.Byte()
				r.Byte()
			case sub == 11:
				r.Byte()
			case sub == 12 || sub == 14:
				r.U32()
				r.U32()
				*tableWrites = true // table.init, table.copy
			default:
				return nil, fmt.Errorf("opcode 0xfc %d: %w", sub, errUninstrumentable)
			}
		default:
			return nil, fmt.Errorf("opcode %#x: %w", op, errUninstrumentable)
		}
		if r.Err != nil {
			return nil, r.Err
		}
		out = append(out, fn[start:len(fn)-len(r.B)]...)
		if isLoop {
			out = append(out, check...)
		}
	}
	if (calls > 1 || tailCalls) && !firstLoop {
		out = slices.Insert(out, entry, check...)
	}
	return out, nil
}
