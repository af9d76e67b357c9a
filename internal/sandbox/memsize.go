package sandbox

import "fmt"

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
	b := wasm[8:]
	for len(b) > 0 {
		id := b[0]
		size, n := uleb128(b[1:])
		if n == 0 || size > uint64(len(b)-1-n) {
			return 0, false
		}
		body := b[1+n : 1+n+int(size)]
		b = b[1+n+int(size):]
		switch id {
		case 2: // import section: a memory may be imported
			if p, found, ok := importedMemoryPages(body); !ok {
				return 0, false
			} else if found {
				return p, true
			}
		case 5: // memory section
			count, n := uleb128(body)
			if n == 0 || count == 0 {
				return 0, false
			}
			min, _, ok := memoryLimits(body[n:])
			return min, ok
		}
	}
	return 0, false
}

// importedMemoryPages walks an import section for a memory import.
func importedMemoryPages(b []byte) (pages uint32, found, ok bool) {
	count, n := uleb128(b)
	if n == 0 {
		return 0, false, false
	}
	b = b[n:]
	skipName := func() bool {
		l, n := uleb128(b)
		if n == 0 || l > uint64(len(b)-n) {
			return false
		}
		b = b[n+int(l):]
		return true
	}
	for i := uint64(0); i < count; i++ {
		if !skipName() || !skipName() || len(b) == 0 {
			return 0, false, false
		}
		kind := b[0]
		b = b[1:]
		switch kind {
		case 0x00: // function: type index
			_, n := uleb128(b)
			if n == 0 {
				return 0, false, false
			}
			b = b[n:]
		case 0x01: // table: reference type, limits
			if len(b) == 0 {
				return 0, false, false
			}
			_, rest, ok := memoryLimits(b[1:])
			if !ok {
				return 0, false, false
			}
			b = rest
		case 0x02: // memory
			min, _, ok := memoryLimits(b)
			return min, ok, ok
		case 0x03: // global: value type, mutability
			if len(b) < 2 {
				return 0, false, false
			}
			b = b[2:]
		case 0x04: // tag: attribute, type index
			if len(b) == 0 {
				return 0, false, false
			}
			_, n := uleb128(b[1:])
			if n == 0 {
				return 0, false, false
			}
			b = b[1+n:]
		default:
			return 0, false, false
		}
	}
	return 0, false, true
}

// memoryLimits reads a limits structure (flags, min, optional max) and returns min and
// the bytes after it. 64-bit memories are refused (ok false).
func memoryLimits(b []byte) (min uint32, rest []byte, ok bool) {
	if len(b) == 0 {
		return 0, nil, false
	}
	flags := b[0]
	if flags&^0x03 != 0 { // only "has max" and "shared"; memory64 and unknown flags are not read
		return 0, nil, false
	}
	b = b[1:]
	v, n := uleb128(b)
	if n == 0 || v > 1<<32-1 {
		return 0, nil, false
	}
	b = b[n:]
	if flags&0x01 != 0 {
		_, n := uleb128(b)
		if n == 0 {
			return 0, nil, false
		}
		b = b[n:]
	}
	return uint32(v), b, true
}

// uleb128 decodes an unsigned LEB128 number of at most 10 bytes; n is 0 when b does not
// start with one.
func uleb128(b []byte) (v uint64, n int) {
	var shift uint
	for i := 0; i < len(b) && i < 10; i++ {
		c := b[i]
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, i + 1
		}
		shift += 7
	}
	return 0, 0
}

// memoryTooSmall is the error for a limit below what the module declares it needs.
func memoryTooSmall(minPages, limitPages uint32) error {
	const mib = 1 << 20
	need := (uint64(minPages)*65536 + mib - 1) / mib // round up: 57 pages need 4 MiB, not 3
	return fmt.Errorf("module needs at least %d MiB of memory but limits.memory is %d MiB; raise limits.memory to %d MiB or more",
		need, uint64(limitPages)*65536/mib, need)
}
