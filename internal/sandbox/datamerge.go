package sandbox

import (
	"cmp"
	"slices"

	"fermion.dev/fermion/internal/wasmbin"
)

// Why merge data segments? Go's wasm linker writes one active data segment per run of
// non-zero bytes: examples/hello has 53,729 of them. wazero evaluates each segment's
// offset expression and copies it when instantiating, which made the data section
// three quarters of a new instance's cost. Segments closer than maxDataGap bytes are
// joined, with the gap written as the zeros the memory already holds there.

// maxDataGap is the largest gap between two segments that merging fills with zeros.
const maxDataGap = 256

// mergeData rewrites a data section's active segments into fewer, larger ones. It
// returns body unchanged unless every segment is active on memory 0 at an i32.const
// offset and no two overlap: then the order segments are applied in does not matter
// and no segment writes into another's gap, so sorting them and writing zeros into the
// gaps changes nothing. Callers must not merge when the code refers to segments by
// index (memory.init, data.drop) or the module has a data count section.
func mergeData(body []byte) []byte {
	type segment struct {
		off  uint32
		data []byte
	}
	r := wasmbin.Reader{B: body}
	n := r.U32()
	if r.Err != nil || uint64(n) > uint64(len(body)) {
		return body
	}
	segs := make([]segment, 0, n)
	for i := uint32(0); i < n; i++ {
		if r.U32() != 0 || r.Byte() != 0x41 { // active, memory 0, i32.const
			return body
		}
		off := uint32(r.S32())
		if r.Byte() != 0x0b {
			return body
		}
		data := r.Bytes(r.U32())
		if r.Err != nil {
			return body
		}
		segs = append(segs, segment{off, data})
	}
	if r.Err != nil || len(r.B) != 0 {
		return body
	}
	slices.SortStableFunc(segs, func(a, b segment) int { return cmp.Compare(a.off, b.off) })
	for i := 1; i < len(segs); i++ {
		if uint64(segs[i].off) < uint64(segs[i-1].off)+uint64(len(segs[i-1].data)) {
			return body // overlapping: the order matters, keep it
		}
	}
	// Group consecutive segments whose gaps are small.
	var groups [][2]int // [first, last+1)
	for i := 0; i < len(segs); {
		j := i + 1
		for j < len(segs) && uint64(segs[j].off)-(uint64(segs[j-1].off)+uint64(len(segs[j-1].data))) <= maxDataGap {
			j++
		}
		groups = append(groups, [2]int{i, j})
		i = j
	}
	if len(groups) == len(segs) {
		return body
	}
	out := wasmbin.AppendU32(make([]byte, 0, len(body)), uint32(len(groups)))
	for _, g := range groups {
		first, last := segs[g[0]], segs[g[1]-1]
		size := last.off - first.off + uint32(len(last.data))
		out = append(out, 0x00, 0x41)
		out = wasmbin.AppendS32(out, int32(first.off))
		out = append(out, 0x0b)
		out = wasmbin.AppendU32(out, size)
		base := len(out)
		out = append(out, make([]byte, size)...)
		for _, s := range segs[g[0]:g[1]] {
			copy(out[base+int(s.off-first.off):], s.data)
		}
	}
	return out
}
