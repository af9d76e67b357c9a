package wasmbin

import (
	"errors"
	"testing"
)

func TestU32RoundTrip(t *testing.T) {
	for _, v := range []uint32{0, 1, 127, 128, 300, 1 << 20, 0xffffffff} {
		r := Reader{B: AppendU32(nil, v)}
		if got := r.U32(); got != v || r.Err != nil || !r.Done() {
			t.Errorf("%d: got %d, err %v, rest %d", v, got, r.Err, len(r.B))
		}
	}
}

func TestS32RoundTrip(t *testing.T) {
	for _, v := range []int32{0, 1, -1, 63, 64, -64, -65, 127, 128, 1 << 20, -1 << 20, 1<<31 - 1, -1 << 31} {
		r := Reader{B: AppendS32(nil, v)}
		if got := r.S32(); got != v || r.Err != nil || !r.Done() {
			t.Errorf("%d: got %d, err %v, rest %d", v, got, r.Err, len(r.B))
		}
	}
	// The encodings wasm tools write for i32.const: 0x80 0x80 0x04 is 65536.
	r := Reader{B: []byte{0x80, 0x80, 0x04}}
	if got := r.S32(); got != 65536 {
		t.Errorf("65536: got %d", got)
	}
	r = Reader{B: []byte{0xff, 0xff, 0xff, 0xff, 0x7f}}
	if got := r.S32(); got != -1 || r.Err != nil {
		t.Errorf("five-byte -1: got %d, err %v", got, r.Err)
	}
	r = Reader{B: []byte{0x80, 0x80, 0x80, 0x80, 0x08}}
	if r.S32(); r.Err == nil {
		t.Error("2^31 accepted as an s32")
	}
}

func TestReaderErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		read func(r *Reader)
		want string
	}{
		{"truncated byte", nil, func(r *Reader) { r.Byte() }, ErrTruncated.Error()},
		{"truncated bytes", []byte{5, 1, 2}, func(r *Reader) { r.Bytes(r.U32()) }, ErrTruncated.Error()},
		{"u32 too long", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, func(r *Reader) { r.U32() }, "integer encoding too long"},
		{"u32 out of range", []byte{0xff, 0xff, 0xff, 0xff, 0x7f}, func(r *Reader) { r.U32() }, "integer out of u32 range"},
		{"bad utf-8 name", []byte{1, 0xff}, func(r *Reader) { r.Name() }, "name is not valid UTF-8"},
		{"bad limits", []byte{0x09, 0}, func(r *Reader) { r.Limits() }, "bad limits flags 0x9"},
		{"bad value type", []byte{0x01}, func(r *Reader) { r.ValType() }, "unknown value type 0x1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Reader{B: tc.b}
			tc.read(&r)
			if r.Err == nil || r.Err.Error() != tc.want {
				t.Fatalf("err = %v, want %q", r.Err, tc.want)
			}
		})
	}
	r := Reader{}
	r.Byte()
	r.Fail(errors.New("later"))
	if !errors.Is(r.Err, ErrTruncated) {
		t.Fatal("Fail replaced the first error")
	}
}

func TestOffsetTracksBytes(t *testing.T) {
	r := Reader{B: []byte{3, 'a', 'b', 'c', 0x40}, Off: 8}
	if r.Name() != "abc" || r.Off != 12 {
		t.Fatalf("off %d", r.Off)
	}
	r.BlockType()
	if !r.Done() || r.Off != 13 {
		t.Fatalf("block type not consumed: off %d", r.Off)
	}
}

// FuzzReader drives every reader method over arbitrary bytes: none may panic, and the
// offset only moves forward by what was consumed.
func FuzzReader(f *testing.F) {
	f.Add([]byte{0x80, 0x01, 3, 'a', 'b', 'c', 0x01, 0x00, 0x10, 0x7f, 0x40})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := Reader{B: b}
		for i := 0; !r.Done() && i < 64; i++ {
			start := len(r.B)
			switch b[i%len(b)] % 7 {
			case 0:
				r.U32()
			case 1:
				r.U64()
			case 2:
				r.Name()
			case 3:
				r.Limits()
			case 4:
				r.ValType()
			case 5:
				r.BlockType()
			default:
				r.Byte()
			}
			if len(r.B) > start || r.Off != len(b)-len(r.B) {
				t.Fatalf("offset %d does not match consumed %d", r.Off, len(b)-len(r.B))
			}
		}
	})
}
