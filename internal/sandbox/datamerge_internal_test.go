package sandbox

import (
	"bytes"
	"testing"

	"fermion.dev/fermion/internal/wasmbin"
)

type testSegment struct {
	off  int32
	data string
}

// dataSection encodes active segments on memory 0 at i32.const offsets.
func dataSection(segs ...testSegment) []byte {
	b := wasmbin.AppendU32(nil, uint32(len(segs)))
	for _, s := range segs {
		b = append(b, 0x00, 0x41)
		b = wasmbin.AppendS32(b, s.off)
		b = append(b, 0x0b)
		b = wasmbin.AppendU32(b, uint32(len(s.data)))
		b = append(b, s.data...)
	}
	return b
}

// applyData writes a data section's segments, in order, into a zeroed memory of size
// bytes, as instantiation does; ok is false for a section it cannot read.
func applyData(body []byte, size int) (mem []byte, count uint32, ok bool) {
	mem = make([]byte, size)
	r := wasmbin.Reader{B: body}
	count = r.U32()
	for i := uint32(0); i < count; i++ {
		if r.U32() != 0 || r.Byte() != 0x41 {
			return nil, 0, false
		}
		off := uint32(r.S32())
		r.Byte()
		data := r.Bytes(r.U32())
		if r.Err != nil || int(off)+len(data) > size {
			return nil, 0, false
		}
		copy(mem[off:], data)
	}
	return mem, count, r.Err == nil && len(r.B) == 0
}

func TestMergeData(t *testing.T) {
	for _, tc := range []struct {
		name      string
		segs      []testSegment
		wantCount uint32 // after merging; 0 means unchanged
	}{
		{"adjacent", []testSegment{{0, "ab"}, {2, "cd"}, {4, "ef"}}, 1},
		{"small gaps", []testSegment{{10, "ab"}, {20, "cd"}, {200, "ef"}}, 1},
		{"a large gap splits", []testSegment{{0, "ab"}, {2 + maxDataGap + 1, "cd"}, {2 + maxDataGap + 1 + 10, "ef"}}, 2},
		{"out of order", []testSegment{{400, "zz"}, {0, "ab"}, {5, "cd"}, {390, "yy"}}, 2},
		{"overlapping stay as they are", []testSegment{{0, "abcd"}, {2, "XY"}}, 0},
		{"one segment", []testSegment{{7, "only"}}, 0},
		{"high offsets", []testSegment{{1 << 20, "a"}, {1<<20 + 8, "b"}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := dataSection(tc.segs...)
			out := mergeData(in)
			if tc.wantCount == 0 {
				if !bytes.Equal(out, in) {
					t.Fatal("section changed")
				}
				return
			}
			size := 2<<20 + 64
			want, _, _ := applyData(in, size)
			got, n, ok := applyData(out, size)
			if !ok {
				t.Fatal("merged section does not decode")
			}
			if n != tc.wantCount {
				t.Fatalf("%d segments, want %d", n, tc.wantCount)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("merged segments write different memory")
			}
		})
	}
	// Anything but active segments at constant offsets is left alone.
	passive := append(wasmbin.AppendU32(nil, 2), 0x01, 0x01, 'a', 0x01, 0x01, 'b')
	if out := mergeData(passive); !bytes.Equal(out, passive) {
		t.Fatal("passive segments changed")
	}
}

func FuzzMergeData(f *testing.F) {
	f.Add(dataSection(testSegment{0, "ab"}, testSegment{3, "cd"}))
	f.Add(dataSection(testSegment{9, "ab"}, testSegment{0, "cd"}, testSegment{300, "x"}))
	f.Add([]byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, body []byte) {
		out := mergeData(body)
		if bytes.Equal(out, body) {
			return
		}
		// A merge happened, so the input was valid: both must write the same memory.
		const size = 1 << 16
		want, _, ok := applyData(body, size)
		if !ok {
			return // offsets beyond the test memory
		}
		got, _, ok := applyData(out, size)
		if !ok || !bytes.Equal(got, want) {
			t.Fatalf("merge changed memory (ok %v)", ok)
		}
	})
}
