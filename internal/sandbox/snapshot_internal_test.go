package sandbox

import (
	"bytes"
	"reflect"
	"slices"
	"testing"

	"fermion.dev/fermion/internal/wasmbin"
)

func TestDiffPages(t *testing.T) {
	page := func(b byte) []byte { return bytes.Repeat([]byte{b}, snapshotPage) }
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	zero := page(0)
	tests := []struct {
		name      string
		base, mem []byte
		wantRuns  []pageRun
		wantData  []byte
	}{
		{name: "same", base: join(page(1), page(2)), mem: join(page(1), page(2))},
		{name: "one page changed", base: join(page(1), page(2), page(3)), mem: join(page(1), page(9), page(3)),
			wantRuns: []pageRun{{off: snapshotPage, start: 0, end: snapshotPage}}, wantData: page(9)},
		{name: "adjacent pages merge", base: join(page(1), page(2), page(3)), mem: join(page(7), page(8), page(3)),
			wantRuns: []pageRun{{off: 0, start: 0, end: 2 * snapshotPage}}, wantData: join(page(7), page(8))},
		{name: "separate runs", base: join(page(1), page(2), page(3)), mem: join(page(7), page(2), page(9)),
			wantRuns: []pageRun{{0, 0, snapshotPage}, {2 * snapshotPage, snapshotPage, 2 * snapshotPage}}, wantData: join(page(7), page(9))},
		{name: "grown, zero past the base", base: page(1), mem: join(page(1), zero, zero)},
		{name: "grown", base: page(1), mem: join(page(1), zero, page(5)),
			wantRuns: []pageRun{{2 * snapshotPage, 0, snapshotPage}}, wantData: page(5)},
		{name: "page straddling the base's end", base: page(1)[:100], mem: join(append(page(1)[:100], bytes.Repeat([]byte{4}, snapshotPage-100)...)),
			wantRuns: []pageRun{{0, 0, snapshotPage}}, wantData: append(page(1)[:100], bytes.Repeat([]byte{4}, snapshotPage-100)...)},
		{name: "byte changed to zero", base: page(1), mem: append(page(1)[:snapshotPage-1], 0),
			wantRuns: []pageRun{{0, 0, snapshotPage}}, wantData: append(page(1)[:snapshotPage-1], 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs, data := diffPages(tt.base, tt.mem)
			if !reflect.DeepEqual(runs, tt.wantRuns) || !bytes.Equal(data, tt.wantData) {
				t.Fatalf("runs %v (%d bytes), want %v (%d bytes)", runs, len(data), tt.wantRuns, len(tt.wantData))
			}
			// Applying the runs to the base, grown to mem's size, gives mem.
			got := append(bytes.Clone(tt.base), make([]byte, max(len(tt.mem)-len(tt.base), 0))...)
			for _, r := range runs {
				copy(got[r.off:], data[r.start:r.end])
			}
			if !bytes.Equal(got, tt.mem) {
				t.Fatal("restoring the runs does not give the memory back")
			}
		})
	}
}

// moduleWith returns a module holding only the given sections.
func moduleWith(sections ...[]byte) []byte {
	out := []byte("\x00asm\x01\x00\x00\x00")
	for _, s := range sections {
		out = append(out, s...)
	}
	return out
}

func sectionOf(id byte, body []byte) []byte {
	return append(wasmbin.AppendU32([]byte{id}, uint32(len(body))), body...)
}

func TestSnapshotFactsRoundTrip(t *testing.T) {
	facts := snapshotFacts{tableWrites: true, globals: []globalExport{{0, valI32}, {3, valI64}, {300, valF64}}}
	tests := []struct {
		name    string
		wasm    []byte
		want    moduleOutline
		wantErr bool
	}{
		{name: "facts", wasm: moduleWith(sectionOf(0, appendFacts(nil, facts))), want: moduleOutline{facts: facts}},
		{name: "facts with data offsets", wasm: moduleWith(sectionOf(0, appendFacts(nil, snapshotFacts{globals: facts.globals, data: []uint32{0, 1024, 1 << 20}}))),
			want: moduleOutline{facts: snapshotFacts{globals: facts.globals, data: []uint32{0, 1024, 1 << 20}}}},
		{name: "facts with no data segments", wasm: moduleWith(sectionOf(0, appendFacts(nil, snapshotFacts{data: []uint32{}}))),
			want: moduleOutline{facts: snapshotFacts{data: []uint32{}}}},
		{name: "data offsets past the section", wasm: moduleWith(sectionOf(0, append(appendFacts(nil, snapshotFacts{})[:len(appendFacts(nil, snapshotFacts{}))-2], 2, 0, 0x7f))),
			wantErr: true},
		{name: "facts and start", wasm: moduleWith(sectionOf(8, []byte{0}), sectionOf(0, appendFacts(nil, snapshotFacts{}))),
			want: moduleOutline{hasStart: true}},
		{name: "no facts", wasm: moduleWith(sectionOf(0, append(wasmbin.AppendU32(nil, 4), "name"...))), wantErr: true},
		{name: "truncated facts", wasm: moduleWith(sectionOf(0, appendFacts(nil, facts)[:20])), wantErr: true},
		{name: "truncated section", wasm: moduleWith(sectionOf(0, appendFacts(nil, facts)))[:30], wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readOutline(tt.wasm)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if err == nil && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestMutableGlobals(t *testing.T) {
	entries := func(es ...[]byte) []byte {
		return append(wasmbin.AppendU32(nil, uint32(len(es))), bytes.Join(es, nil)...)
	}
	tests := []struct {
		name     string
		body     []byte
		imported uint32
		want     []globalExport
		wantErr  bool
	}{
		{name: "go-like", imported: 0, body: entries(
			[]byte{valI32, 1, 0x41, 0x80, 0x80, 0x04, 0x0b}, // mutable i32 = 65536
			[]byte{valI64, 0, 0x42, 0x00, 0x0b},             // immutable
			[]byte{valI64, 1, 0x42, 0x7f, 0x0b},
		), want: []globalExport{{0, valI32}, {2, valI64}}},
		{name: "after imports, every constant form", imported: 2, body: entries(
			[]byte{valF32, 1, 0x43, 0, 0, 0, 0, 0x0b},
			[]byte{valF64, 1, 0x44, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b},
			append(append([]byte{valV128, 1, 0xfd, 12}, make([]byte, 16)...), 0x0b),
			[]byte{valFuncref, 1, 0xd0, 0x70, 0x0b},
			[]byte{valI32, 0, 0x23, 0x00, 0x41, 0x01, 0x6a, 0x0b}, // extended constant
		), want: []globalExport{{2, valF32}, {3, valF64}, {4, valV128}, {5, valFuncref}}},
		{name: "unknown type", body: entries([]byte{0x63, 1, 0x0b}), wantErr: true},
		{name: "unknown constant", body: entries([]byte{valI32, 1, 0x20, 0x00, 0x0b}), wantErr: true},
		{name: "truncated", body: entries([]byte{valI32, 1, 0x41}), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mutableGlobals(tt.body, tt.imported)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if err == nil && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestStaticRefusal(t *testing.T) {
	tests := []struct {
		name string
		o    moduleOutline
		want string
	}{
		{"eligible", moduleOutline{facts: snapshotFacts{globals: []globalExport{{0, valI32}, {1, valI64}, {2, valF32}, {3, valF64}}}}, ""},
		{"start", moduleOutline{hasStart: true}, SnapshotStartFunction},
		{"tables", moduleOutline{facts: snapshotFacts{tableWrites: true}}, SnapshotTableWrites},
		{"v128", moduleOutline{facts: snapshotFacts{globals: []globalExport{{4, valV128}}}}, SnapshotGlobalType},
		{"funcref", moduleOutline{facts: snapshotFacts{globals: []globalExport{{4, valFuncref}}}}, SnapshotGlobalType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, got := staticRefusal(tt.o); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzReadOutline: the outline reader never panics on a damaged module (the rewritten
// module comes back from the on-disk rewrite cache).
func FuzzReadOutline(f *testing.F) {
	f.Add(moduleWith(sectionOf(0, appendFacts(nil, snapshotFacts{tableWrites: true, globals: []globalExport{{1, valI32}}}))))
	f.Add(moduleWith(sectionOf(8, []byte{0})))
	f.Fuzz(func(t *testing.T, wasm []byte) {
		readOutline(wasm)
	})
}

// FuzzMutableGlobals: the global section reader never panics, whatever the section.
func FuzzMutableGlobals(f *testing.F) {
	f.Add([]byte{2, valI32, 1, 0x41, 0x00, 0x0b, valI64, 0, 0x42, 0x01, 0x0b})
	f.Fuzz(func(t *testing.T, body []byte) {
		mutableGlobals(body, 0)
	})
}

// FuzzPlanWrites: whatever the data segments (in order or not, touching, empty) and
// whatever init changed (runs inside segments, across their ends, in the gaps, past the
// last one), a reused memory reset by writeInto, whatever it held, and a fresh memory
// written by writeZeroed both hold exactly the initialised memory, and zeros after it.
func FuzzPlanWrites(f *testing.F) {
	f.Add([]byte{10, 20, 0, 5, 3, 40}, []byte{1, 2, 3, 4, 5, 6, 7, 8}, uint16(300))
	f.Add([]byte{0, 255, 0, 255, 0, 1}, []byte{0, 0, 9, 9}, uint16(0))
	f.Fuzz(func(t *testing.T, segSpec, initSpec []byte, dirtySpec uint16) {
		const pages = 2
		size := pages << 16
		// Segments: pairs of (gap, length) in units of 97 bytes, so they straddle pages.
		var base []dataSegment
		pos := 0
		for i := 0; i+1 < len(segSpec) && len(base) < 16; i += 2 {
			off, n := pos+int(segSpec[i])*97, int(segSpec[i+1])*97
			if off+n > size {
				break
			}
			d := make([]byte, n)
			for j := range d {
				d[j] = byte(j*7+off) | 1
			}
			base = append(base, dataSegment{off: uint32(off), data: d})
			pos = off + n
		}
		if len(base) == 0 {
			return // the host writes no data: writeInto only clears (TestWriteInto)
		}
		if len(base) > 2 && segSpec[0]&1 == 1 { // out of address order
			base[0], base[1] = base[1], base[0]
		}
		pristine := make([]byte, size)
		if err := writeData(pristine, base); err != nil {
			t.Fatal(err)
		}
		mem := bytes.Clone(pristine)
		// Init's changes: triples of (position in units of 331 bytes, length in units of
		// 61, value), some to zero.
		for i := 0; i+2 < len(initSpec); i += 3 {
			off := int(initSpec[i]) * 331
			end := min(off+int(initSpec[i+1])*61, size)
			for j := off; j < end; j++ {
				mem[j] = initSpec[i+2]
			}
		}
		runs, data := diffPages(pristine, mem)
		s := &snapshot{pages: pages, base: base, runs: runs, data: data}
		s.planWrites()
		if (s.layout != nil) != sortedSegments(base) {
			t.Fatalf("layout planned %v for segments in order %v", s.layout != nil, sortedSegments(base))
		}
		var end uint64
		for _, w := range s.layout {
			if w.off < end {
				t.Fatalf("write at %d overlaps the one before, which ends at %d", w.off, end)
			}
			end = w.off + uint64(len(w.b))
		}
		dirty := uint64(dirtySpec) * 3 % (3 << 16)
		buf := make([]byte, 3<<16)
		for i := range buf[:dirty] {
			buf[i] = 0xee
		}
		if _, ok := s.writeInto(buf, dirty); !ok {
			t.Fatal("not restored")
		}
		if !bytes.Equal(buf[:size], mem) || bytes.ContainsFunc(buf[size:], func(r rune) bool { return r != 0 }) {
			t.Fatal("a reset memory is not the initialised one, zero after it")
		}
		fresh := make([]byte, size)
		if err := s.writeZeroed(fresh); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fresh, mem) {
			t.Fatal("a fresh memory is not the initialised one")
		}
	})
}

// TestPlanWrites: the snapshot's pages are cut out of the data segments, wherever they
// fall, and the writes come in address order without overlaps, the pages' bytes where
// a page and a segment meet.
func TestPlanWrites(t *testing.T) {
	type span struct{ off, end uint64 }
	seg := func(off, end uint32) dataSegment {
		return dataSegment{off: off, data: bytes.Repeat([]byte{'s'}, int(end-off))}
	}
	for _, tc := range []struct {
		name string
		segs []dataSegment
		runs []span // pages init changed
		want []span
	}{
		{"no pages changed", []dataSegment{seg(10, 100), seg(5000, 6000)}, nil,
			[]span{{10, 100}, {5000, 6000}}},
		{"a page inside a segment", []dataSegment{seg(1000, 20000)}, []span{{4096, 8192}},
			[]span{{1000, 4096}, {4096, 8192}, {8192, 20000}}},
		{"pages over a gap and a whole segment", []dataSegment{seg(0, 5000), seg(9000, 12000), seg(12288, 13000)}, []span{{4096, 12288}},
			[]span{{0, 4096}, {4096, 12288}, {12288, 13000}}},
		{"a page in a gap", []dataSegment{seg(0, 1000), seg(20000, 21000)}, []span{{8192, 12288}},
			[]span{{0, 1000}, {8192, 12288}, {20000, 21000}}},
		{"pages before the first segment and after the last", []dataSegment{seg(5000, 6000)}, []span{{0, 4096}, {8192, 12288}},
			[]span{{0, 4096}, {5000, 6000}, {8192, 12288}}},
		{"a segment that starts under a page and ends past it", []dataSegment{seg(0, 100), seg(4000, 9000)}, []span{{0, 8192}},
			[]span{{0, 8192}, {8192, 9000}}},
		{"empty segments", []dataSegment{seg(10, 10), seg(50, 50)}, nil, []span{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &snapshot{pages: 1, base: tc.segs}
			for _, r := range tc.runs {
				n := uint32(r.end - r.off)
				s.runs = append(s.runs, pageRun{off: uint32(r.off), start: uint32(len(s.data)), end: uint32(len(s.data)) + n})
				s.data = append(s.data, bytes.Repeat([]byte{'p'}, int(n))...)
			}
			s.planWrites()
			got := []span{}
			for _, w := range s.layout {
				got = append(got, span{w.off, w.off + uint64(len(w.b))})
				isPage := slices.ContainsFunc(tc.runs, func(r span) bool { return r.off <= w.off && w.off < r.end })
				if want := map[bool]byte{true: 'p', false: 's'}[isPage]; len(w.b) > 0 && (w.b[0] != want || w.b[len(w.b)-1] != want) {
					t.Errorf("write at %d: bytes %q…%q, want %q", w.off, w.b[0], w.b[len(w.b)-1], want)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("writes %v, want %v", got, tc.want)
			}
		})
	}
}
