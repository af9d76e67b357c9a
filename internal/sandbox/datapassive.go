package sandbox

import (
	"errors"
	"fmt"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/internal/wasmbin"
)

// Why does the host write a reactor's data segments? A restored instance's memory gets
// the data segments and the pages _initialize changed in one pass of writes, each byte
// once (snapshot.planWrites), often while a reused memory is reset (memory_linux.go). If
// wazero applied the segments while instantiating, it would write 2–3 MB before that
// pass: every byte twice, and the data as it was before _initialize changed it. So the
// rewrite makes a reactor module's active segments passive and records their offsets in
// the snapshot facts; wazero then writes nothing at instantiation (a passive segment is
// only read by memory.init, which such a module does not use), and the host writes the
// segments itself into every instance, restored or not (writeData, or the snapshot's
// writes). The rewrite only does this when nothing can tell:
// the module has no data count section and no code naming a segment (so no memory.init
// or data.drop), no start function (which would run before the host wrote the data),
// its own memory (not imported), every segment active on it at a constant offset and
// inside its initial size (so the write cannot fail where wazero's would have), and the
// reactor ABI's exports (command modules are instantiated elsewhere and keep theirs).

// passiveData returns a data section whose active segments are all made passive, and
// the offsets they were written at; ok is false, and the section must stay as it was,
// unless every segment is active on memory 0 at an i32.const offset and ends within
// memBytes.
func passiveData(body []byte, memBytes uint64) (out []byte, offsets []uint32, ok bool) {
	r := wasmbin.Reader{B: body}
	n := r.U32()
	if r.Err != nil || n == 0 || uint64(n) > uint64(len(body)) {
		return nil, nil, false
	}
	out = wasmbin.AppendU32(make([]byte, 0, len(body)), n)
	offsets = make([]uint32, 0, n)
	for i := uint32(0); i < n; i++ {
		if r.U32() != 0 || r.Byte() != 0x41 { // active, memory 0, i32.const
			return nil, nil, false
		}
		off := uint32(r.S32())
		if r.Byte() != 0x0b {
			return nil, nil, false
		}
		data := r.Bytes(r.U32())
		if r.Err != nil || uint64(off)+uint64(len(data)) > memBytes {
			return nil, nil, false
		}
		out = append(out, 0x01) // passive
		out = wasmbin.AppendU32(out, uint32(len(data)))
		out = append(out, data...)
		offsets = append(offsets, off)
	}
	if !r.Done() {
		return nil, nil, false
	}
	return out, offsets, true
}

// definedMemoryBytes returns the initial size in bytes of a memory section's only
// memory, or false when it declares no memory, several, or a 64-bit one.
func definedMemoryBytes(body []byte) (uint64, bool) {
	r := wasmbin.Reader{B: body}
	if r.U32() != 1 {
		return 0, false
	}
	flags := r.Byte()
	if flags&^0x01 != 0 { // shared or 64-bit memories are left alone
		return 0, false
	}
	min := r.U32()
	if flags&0x01 != 0 {
		r.U32()
	}
	if r.Err != nil || !r.Done() {
		return 0, false
	}
	return uint64(min) << 16, true
}

// exportsReactor reports whether an export section exports the reactor ABI's functions.
func exportsReactor(body []byte) bool {
	want := map[string]bool{abi.ExportHandle: false, abi.ExportBuf: false, abi.ExportInitialize: false}
	r := wasmbin.Reader{B: body}
	n := r.U32()
	for i := uint32(0); i < n && r.Err == nil; i++ {
		name := string(r.Bytes(r.U32()))
		kind := r.Byte()
		r.U32()
		if _, ok := want[name]; ok && kind == 0x00 {
			want[name] = true
		}
	}
	if r.Err != nil {
		return false
	}
	for _, found := range want {
		if !found {
			return false
		}
	}
	return true
}

// dataSegment is one of a module's data segments, written by the host (writeData).
type dataSegment struct {
	off  uint32
	data []byte
}

// hostData returns the segments the host writes into new instances of a rewritten
// module whose facts list their offsets: the module's passive segments, in order.
func hostData(code []byte, offsets []uint32) ([]dataSegment, error) {
	if len(code) < 8 {
		return nil, ErrNotWasm
	}
	r := wasmbin.Reader{B: code[8:]}
	for !r.Done() {
		id := r.Byte()
		body := r.Bytes(r.U32())
		if r.Err != nil {
			return nil, fmt.Errorf("read module sections: %w", r.Err)
		}
		if id != 11 {
			continue
		}
		dr := wasmbin.Reader{B: body}
		if n := dr.U32(); dr.Err != nil || int(n) != len(offsets) {
			return nil, fmt.Errorf("data section: %d segments, the facts list %d", n, len(offsets))
		}
		segs := make([]dataSegment, len(offsets))
		for i, off := range offsets {
			if dr.U32() != 1 { // passive
				return nil, fmt.Errorf("data segment %d is not passive", i)
			}
			segs[i] = dataSegment{off: off, data: dr.Bytes(dr.U32())}
		}
		if dr.Err != nil || !dr.Done() {
			return nil, errors.New("data section: malformed")
		}
		return segs, nil
	}
	return nil, errors.New("the facts list data segments but the module has no data section")
}

// writeData writes segs into mem, which must be large enough (the rewrite checked each
// segment against the memory's initial size).
func writeData(mem []byte, segs []dataSegment) error {
	for i, s := range segs {
		if uint64(s.off)+uint64(len(s.data)) > uint64(len(mem)) {
			return fmt.Errorf("write data segment %d: %d bytes at %d are past the memory's %d", i, len(s.data), s.off, len(mem))
		}
		copy(mem[s.off:], s.data)
	}
	return nil
}
