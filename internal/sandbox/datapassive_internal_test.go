package sandbox

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"testing"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/internal/wasmbin"
)

// activeData encodes active segments on memory 0 at i32.const offsets.
func activeData(segs ...dataSegment) []byte {
	b := wasmbin.AppendU32(nil, uint32(len(segs)))
	for _, s := range segs {
		b = append(b, 0x00, 0x41)
		b = wasmbin.AppendS32(b, int32(s.off))
		b = append(b, 0x0b)
		b = wasmbin.AppendU32(b, uint32(len(s.data)))
		b = append(b, s.data...)
	}
	return b
}

func TestPassiveData(t *testing.T) {
	segs := []dataSegment{{off: 16, data: []byte("hello")}, {off: 4096, data: bytes.Repeat([]byte{7}, 300)}}
	tests := []struct {
		name     string
		body     []byte
		memBytes uint64
		wantOK   bool
	}{
		{name: "active segments", body: activeData(segs...), memBytes: 1 << 16, wantOK: true},
		{name: "ends exactly at the memory's end", body: activeData(dataSegment{off: 65531, data: []byte("12345")}), memBytes: 1 << 16, wantOK: true},
		{name: "past the memory's initial size", body: activeData(dataSegment{off: 65532, data: []byte("12345")}), memBytes: 1 << 16},
		{name: "negative offset, huge as unsigned", body: activeData(dataSegment{off: 0xffffff00, data: []byte("x")}), memBytes: 1 << 16},
		{name: "no segments", body: wasmbin.AppendU32(nil, 0), memBytes: 1 << 16},
		{name: "passive segment", body: append(wasmbin.AppendU32(nil, 1), 0x01, 0x01, 'x'), memBytes: 1 << 16},
		{name: "memory index", body: append(wasmbin.AppendU32(nil, 1), 0x02, 0x00, 0x41, 0x00, 0x0b, 0x01, 'x'), memBytes: 1 << 16},
		{name: "offset from a global", body: append(wasmbin.AppendU32(nil, 1), 0x00, 0x23, 0x00, 0x0b, 0x01, 'x'), memBytes: 1 << 16},
		{name: "truncated", body: activeData(segs...)[:20], memBytes: 1 << 16},
		{name: "trailing bytes", body: append(activeData(segs...), 0), memBytes: 1 << 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, offs, ok := passiveData(tt.body, tt.memBytes)
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if !ok {
				return
			}
			// What the host reads back from the rewritten module is what wazero would
			// have written.
			wasm := moduleWith(sectionOf(11, out))
			got, err := hostData(wasm, offs)
			if err != nil {
				t.Fatal(err)
			}
			mem, want := make([]byte, tt.memBytes), make([]byte, tt.memBytes)
			if err := writeData(mem, got); err != nil {
				t.Fatal(err)
			}
			r := wasmbin.Reader{B: tt.body}
			for n := r.U32(); n > 0; n-- {
				r.U32()
				r.Byte()
				off := uint32(r.S32())
				r.Byte()
				copy(want[off:], r.Bytes(r.U32()))
			}
			if !bytes.Equal(mem, want) {
				t.Fatal("the host's writes differ from the active segments'")
			}
		})
	}
}

func TestHostDataRefuses(t *testing.T) {
	out, offs, _ := passiveData(activeData(dataSegment{off: 8, data: []byte("abc")}), 1<<16)
	tests := []struct {
		name string
		wasm []byte
		offs []uint32
	}{
		{"not wasm", []byte("nope"), offs},
		{"no data section", moduleWith(), offs},
		{"more offsets than segments", moduleWith(sectionOf(11, out)), []uint32{8, 9}},
		{"active segment", moduleWith(sectionOf(11, activeData(dataSegment{off: 8, data: []byte("abc")}))), offs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := hostData(tt.wasm, tt.offs); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if err := writeData(make([]byte, 10), []dataSegment{{off: 8, data: []byte("abc")}}); err == nil {
		t.Fatal("writeData wrote past the memory")
	}
}

func TestDefinedMemoryBytes(t *testing.T) {
	tests := []struct {
		name string
		body []byte
		want uint64
		ok   bool
	}{
		{"min", []byte{1, 0x00, 17}, 17 << 16, true},
		{"min and max", []byte{1, 0x01, 2, 100}, 2 << 16, true},
		{"none", []byte{0}, 0, false},
		{"two", []byte{2, 0x00, 1, 0x00, 1}, 0, false},
		{"shared", []byte{1, 0x03, 1, 2}, 0, false},
		{"64-bit", []byte{1, 0x04, 1}, 0, false},
		{"empty", nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := definedMemoryBytes(tt.body)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("got %d, %v; want %d, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestExportsReactor(t *testing.T) {
	export := func(name string, kind byte) []byte {
		return append(append(wasmbin.AppendU32(nil, uint32(len(name))), name...), kind, 0)
	}
	section := func(es ...[]byte) []byte {
		return append(wasmbin.AppendU32(nil, uint32(len(es))), bytes.Join(es, nil)...)
	}
	all := [][]byte{export(abi.ExportHandle, 0), export(abi.ExportBuf, 0), export(abi.ExportInitialize, 0), export("memory", 2)}
	if !exportsReactor(section(all...)) {
		t.Fatal("the reactor ABI not found")
	}
	if exportsReactor(section(all[1:]...)) {
		t.Fatal("found without fermion_handle")
	}
	if exportsReactor(section(export(abi.ExportHandle, 0), export(abi.ExportBuf, 0), export(abi.ExportInitialize, 3))) {
		t.Fatal("found with _initialize exported as a global")
	}
	if exportsReactor(section(all...)[:10]) {
		t.Fatal("found in a truncated section")
	}
}

// TestWriteInto: resetting a reused memory to a snapshot whose data the host writes,
// whatever the previous instance left in it, gives exactly the initialised memory.
func TestWriteInto(t *testing.T) {
	const pages = 3
	rng := rand.New(rand.NewPCG(1, 2))
	fill := func(b []byte) {
		for i := range b {
			b[i] = byte(rng.UintN(255) + 1)
		}
	}
	base := []dataSegment{{off: 1000, data: make([]byte, 70000)}, {off: 80000, data: make([]byte, 5)}, {off: 90000, data: make([]byte, 20000)}}
	for _, d := range base {
		fill(d.data)
	}
	pristine := make([]byte, pages<<16)
	if err := writeData(pristine, base); err != nil {
		t.Fatal(err)
	}
	mem := bytes.Clone(pristine) // what init made of it: scattered changes, some to zero
	for i := 0; i < 40; i++ {
		off := rng.IntN(len(mem) - 9000)
		if i%5 == 0 {
			clear(mem[off : off+rng.IntN(9000)])
			continue
		}
		fill(mem[off : off+rng.IntN(9000)])
	}
	runs, data := diffPages(pristine, mem)
	unsorted := []dataSegment{base[2], base[0], base[1]}
	for _, tc := range []struct {
		name   string
		base   []dataSegment
		sorted bool
	}{{"sorted segments", base, true}, {"segments out of order", unsorted, false}} {
		s := &snapshot{pages: pages, base: tc.base, runs: runs, data: data}
		s.planWrites()
		if sortedSegments(tc.base) != tc.sorted || (s.layout != nil) != tc.sorted {
			t.Fatalf("%s: sortedSegments = %v, layout planned %v", tc.name, !tc.sorted, s.layout != nil)
		}
		for _, dirty := range []uint64{0, 100, 1500, pages << 16, pages<<16 + 5000, 6 << 16} {
			buf := make([]byte, 8<<16) // the reservation
			for i := range buf[:dirty] {
				buf[i] = 0xee
			}
			newDirty, restored := s.writeInto(buf, dirty)
			if !restored || newDirty != pages<<16 {
				t.Fatalf("%s, dirty %d: got %d, %v", tc.name, dirty, newDirty, restored)
			}
			if !bytes.Equal(buf[:len(mem)], mem) || bytes.ContainsFunc(buf[len(mem):], func(r rune) bool { return r != 0 }) {
				t.Fatalf("%s, dirty %d: the memory is not the initialised one, zero after it", tc.name, dirty)
			}
		}
		// A fresh memory (restore's one pass over zeros, when there is a layout).
		fresh := make([]byte, pages<<16)
		if err := s.writeZeroed(fresh); err != nil {
			t.Fatalf("%s: writeZeroed: %v", tc.name, err)
		}
		if !bytes.Equal(fresh, mem) {
			t.Fatalf("%s: a restored fresh memory is not the initialised one", tc.name)
		}
	}
	// Data written by wazero: only cleared, restore copies the pages afterwards.
	wazeros := &snapshot{pages: pages, runs: runs, data: data}
	buf := bytes.Repeat([]byte{0xee}, 8<<16)
	if newDirty, restored := wazeros.writeInto(buf, 4<<16); restored || newDirty != 0 || !bytes.Equal(buf[:4<<16], make([]byte, 4<<16)) {
		t.Fatalf("wazero's data: got %d, %v", newDirty, restored)
	}
	// Larger than the reservation: only cleared.
	s := &snapshot{pages: pages, base: base, runs: runs, data: data}
	s.planWrites()
	if _, restored := s.writeInto(make([]byte, 2<<16), 0); restored {
		t.Fatal("a snapshot larger than the memory was written")
	}
}

// FuzzPassiveData: the data section reader never panics, and what it makes passive the
// host reads back as the same segments.
func FuzzPassiveData(f *testing.F) {
	f.Add(activeData(dataSegment{off: 16, data: []byte("hello")}, dataSegment{off: 4096, data: []byte("x")}), uint32(1))
	f.Add([]byte{1, 0x01, 0x01, 'x'}, uint32(1))
	f.Fuzz(func(t *testing.T, body []byte, pages uint32) {
		out, offs, ok := passiveData(body, uint64(pages%4)<<16)
		if !ok {
			return
		}
		segs, err := hostData(moduleWith(sectionOf(11, out)), offs)
		if err != nil {
			t.Fatalf("the rewritten section does not read back: %v", err)
		}
		if len(segs) != len(offs) {
			t.Fatalf("%d segments, %d offsets", len(segs), len(offs))
		}
		if err := writeData(make([]byte, uint64(pages%4)<<16), segs); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(offs, func() []uint32 {
			var o []uint32
			for _, s := range segs {
				o = append(o, s.off)
			}
			return o
		}()) {
			t.Fatal("offsets differ")
		}
	})
}
