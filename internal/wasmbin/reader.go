// Package wasmbin reads and writes the pieces of the WebAssembly binary format that
// Fermion inspects without compiling a module: sections, LEB128 integers, names,
// limits and block types. The artifact scanner, the sandbox's interrupt rewriter and its
// memory check all read untrusted modules with it, so it never panics and reports the
// first problem with the file offset where it met it.
package wasmbin

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// ErrTruncated is returned when a module ends before the item being read.
var ErrTruncated = errors.New("unexpected end of module (truncated file?)")

// Reader decodes the binary format from B and remembers the first error in Err, so
// callers check once per item. Off is the offset of B in the file, for messages.
type Reader struct {
	B   []byte
	Off int
	Err error
}

// Done reports whether the input is used up or an error occurred.
func (r *Reader) Done() bool { return len(r.B) == 0 || r.Err != nil }

// Fail records err unless an earlier error is recorded.
func (r *Reader) Fail(err error) {
	if r.Err == nil {
		r.Err = err
	}
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if r.Err != nil {
		return 0
	}
	if len(r.B) == 0 {
		r.Err = ErrTruncated
		return 0
	}
	c := r.B[0]
	r.B = r.B[1:]
	r.Off++
	return c
}

// Bytes reads n bytes; the result aliases the input.
func (r *Reader) Bytes(n uint32) []byte {
	if r.Err != nil {
		return nil
	}
	if uint64(n) > uint64(len(r.B)) {
		r.Err = ErrTruncated
		return nil
	}
	p := r.B[:n:n]
	r.B = r.B[n:]
	r.Off += int(n)
	return p
}

// LEB reads a LEB128 integer of at most maxBytes bytes. Signed integers are read the
// same way when only their length matters (skipping an immediate).
func (r *Reader) LEB(maxBytes int) uint64 {
	var v uint64
	for i := 0; i < maxBytes; i++ {
		c := r.Byte()
		if r.Err != nil {
			return 0
		}
		if i < 10 {
			v |= uint64(c&0x7f) << (7 * i)
		}
		if c&0x80 == 0 {
			return v
		}
	}
	r.Fail(errors.New("integer encoding too long"))
	return 0
}

// U32 reads an unsigned 32-bit LEB128 (at most 5 bytes).
func (r *Reader) U32() uint32 {
	v := r.LEB(5)
	if v > 0xffffffff {
		r.Fail(errors.New("integer out of u32 range"))
		return 0
	}
	return uint32(v)
}

// U64 reads a 64-bit LEB128 (at most 10 bytes).
func (r *Reader) U64() uint64 { return r.LEB(10) }

// Name reads a length-prefixed UTF-8 name.
func (r *Reader) Name() string {
	b := r.Bytes(r.U32())
	if r.Err != nil {
		return ""
	}
	if !utf8.Valid(b) {
		r.Fail(errors.New("name is not valid UTF-8"))
		return ""
	}
	return string(b)
}

// Limits skips table or memory limits: flags, minimum and, if flagged, maximum.
// Flags 0x04 (memory64) widen the bounds to u64.
func (r *Reader) Limits() {
	flags := r.Byte()
	if flags > 0x07 {
		r.Fail(fmt.Errorf("bad limits flags %#x", flags))
		return
	}
	width := 5
	if flags&0x04 != 0 {
		width = 10
	}
	r.LEB(width)
	if flags&0x01 != 0 {
		r.LEB(width)
	}
}

// ValType skips a value type: a number, vector or abbreviated reference type, or a
// typed reference (0x63/0x64 followed by a heap type).
func (r *Reader) ValType() {
	switch t := r.Byte(); t {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
	case 0x63, 0x64:
		r.LEB(5) // heap type (s33), skipped by its length
	default:
		if r.Err == nil {
			r.Fail(fmt.Errorf("unknown value type %#x", t))
		}
	}
}

// BlockType skips a block type: 0x40, a value type, or a type index (s33).
func (r *Reader) BlockType() {
	if r.Err != nil {
		return
	}
	if len(r.B) == 0 {
		r.Err = ErrTruncated
		return
	}
	switch r.B[0] {
	case 0x40, 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
		r.Byte()
	default:
		r.LEB(5)
	}
}

// AppendU32 appends v as an unsigned LEB128.
func AppendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// S32 reads a signed 32-bit LEB128 (at most 5 bytes).
func (r *Reader) S32() int32 {
	var v int64
	for i := 0; i < 5; i++ {
		c := r.Byte()
		if r.Err != nil {
			return 0
		}
		v |= int64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if c&0x40 != 0 {
				v |= -1 << (7 * (i + 1))
			}
			if v < -1<<31 || v > 1<<31-1 {
				r.Fail(errors.New("integer out of s32 range"))
				return 0
			}
			return int32(v)
		}
	}
	r.Fail(errors.New("integer encoding too long"))
	return 0
}

// AppendS32 appends v as a signed LEB128.
func AppendS32(b []byte, v int32) []byte {
	x := int64(v)
	for {
		c := byte(x & 0x7f)
		x >>= 7
		if (x == 0 && c&0x40 == 0) || (x == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
