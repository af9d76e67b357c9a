package sandbox

import (
	"fmt"

	"fermion.dev/fermion/internal/wasmbin"
)

// declaredMemoryPages returns the minimum size, in 64 KiB pages, of the module's linear
// memory, as its memory or import section declares it. ok is false when the module
// declares no memory or its sections cannot be read; compilation then reports the
// problem. It reads untrusted bytes and never panics.
//
// Load needs this before compiling: a runtime with a memory limit refuses a module whose
// minimum is over the limit with wazero's own message, not one that names limits.memory.
func declaredMemoryPages(wasm []byte) (pages uint32, ok bool) {
	if len(wasm) < 8 {
		return 0, false
	}
	r := wasmbin.Reader{B: wasm[8:]}
	for !r.Done() {
		id := r.Byte()
		body := wasmbin.Reader{B: r.Bytes(r.U32())}
		if r.Err != nil {
			return 0, false
		}
		switch id {
		case 2: // import section: a memory may be imported
			for i, n := uint32(0), body.U32(); i < n && body.Err == nil; i++ {
				body.Bytes(body.U32()) // module
				body.Bytes(body.U32()) // name
				switch kind := body.Byte(); kind {
				case 0x00: // func
					body.U32()
				case 0x01: // table
					body.Byte()
					body.Limits()
				case 0x02: // memory
					return memoryMin(&body)
				case 0x03: // global
					body.Byte()
					body.Byte()
				case 0x04: // tag
					body.Byte()
					body.U32()
				default:
					return 0, false
				}
			}
			if body.Err != nil {
				return 0, false
			}
		case 5: // memory section
			if n := body.U32(); n == 0 || body.Err != nil {
				return 0, false
			}
			return memoryMin(&body)
		}
	}
	return 0, false
}

// memoryMin reads a memory's limits and returns its minimum. 64-bit and unknown memory
// kinds are not read (ok false): compilation then reports them.
func memoryMin(r *wasmbin.Reader) (uint32, bool) {
	flags := r.Byte()
	if flags&^0x03 != 0 { // only "has max" and "shared"
		return 0, false
	}
	min := r.U32()
	if flags&0x01 != 0 {
		r.U32()
	}
	return min, r.Err == nil
}

// memoryTooSmall is the error for a limit below what the module declares it needs.
func memoryTooSmall(minPages, limitPages uint32) error {
	const mib = 1 << 20
	need := (uint64(minPages)*65536 + mib - 1) / mib // round up: 57 pages need 4 MiB, not 3
	return fmt.Errorf("module needs at least %d MiB of memory but limits.memory is %d MiB; raise limits.memory to %d MiB or more",
		need, uint64(limitPages)*65536/mib, need)
}
