package wasmbin

import (
	"bytes"
	"strings"
	"testing"
)

func sec(id byte, payload ...[]byte) []byte {
	p := bytes.Join(payload, nil)
	return append(append([]byte{id}, AppendU32(nil, uint32(len(p)))...), p...)
}

func mod(sections ...[]byte) []byte {
	return append([]byte("\x00asm\x01\x00\x00\x00"), bytes.Join(sections, nil)...)
}

// oneFunc is a module with one () -> () function with the given locals groups and
// instructions (the final end included).
func oneFunc(locals []byte, instrs []byte) []byte {
	body := append(append([]byte{}, locals...), instrs...)
	return mod(
		sec(1, []byte{1, 0x60, 0, 0}),
		sec(3, []byte{1, 0}),
		sec(10, []byte{1}, AppendU32(nil, uint32(len(body))), body),
	)
}

func TestInspect(t *testing.T) {
	imports := sec(2, []byte{3},
		[]byte{4}, []byte("wasi"), []byte{3}, []byte("foo"), []byte{0x00, 0x00}, // func, type 0
		[]byte{3}, []byte("env"), []byte{1}, []byte("t"), []byte{0x01, 0x70, 0x00, 0x02}, // table min 2
		[]byte{3}, []byte("env"), []byte{1}, []byte("g"), []byte{0x03, 0x7f, 0x00}, // global
	)
	body := []byte{
		1, 2, 0x7f, // 2 i32 locals
		0x02, 0x40, // block
		0x41, 0x00, 0x0e, 0x03, 0x00, 0x00, 0x00, 0x00, // br_table of 4 targets
		0x0b,
		0x03, 0x40, 0x41, 0x01, 0x0d, 0x00, 0x0b, // loop; br_if 0
		0xfd, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x1a, // v128.const; drop
		0x0b,
	}
	m, err := Inspect(mod(
		sec(1, []byte{2, 0x60, 0, 0, 0x60, 2, 0x7f, 0x7e, 1, 0x7f}),
		imports,
		sec(3, []byte{1, 0}),
		sec(4, []byte{2, 0x70, 0x00, 0x05, 0x70, 0x01, 0x01, 0x80, 0x01}), // min 5; min 1 max 128
		sec(6, []byte{2, 0x7f, 0x00, 0x41, 0x00, 0x0b, 0x7f, 0x00, 0x41, 0x00, 0x0b}),
		sec(9, []byte{0}),
		sec(10, []byte{1}, AppendU32(nil, uint32(len(body))), body),
		sec(11, []byte{0}),
		sec(0, []byte{4}, []byte("name"), []byte{1, 2, 3}),
	))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Types) != 2 || string(m.Types[1].Params) != "\x7f\x7e" || string(m.Types[1].Results) != "\x7f" {
		t.Errorf("types %+v", m.Types)
	}
	if len(m.Imports) != 3 || m.Imports[0].Module != "wasi" || m.Imports[0].Name != "foo" || m.Imports[2].Kind != KindGlobal {
		t.Errorf("imports %+v", m.Imports)
	}
	if m.ImportedFunctions != 1 || m.Functions != 1 || m.Globals != 2 {
		t.Errorf("functions %d+%d globals %d", m.ImportedFunctions, m.Functions, m.Globals)
	}
	want := []Table{{Min: 2, Imported: true}, {Min: 5}, {Min: 1, Max: 128, HasMax: true}}
	if len(m.Tables) != len(want) {
		t.Fatalf("tables %+v", m.Tables)
	}
	for i, tb := range m.Tables {
		if tb.Min != want[i].Min || tb.Max != want[i].Max || tb.HasMax != want[i].HasMax || tb.Imported != want[i].Imported {
			t.Errorf("table %d: %+v, want %+v", i, tb, want[i])
		}
	}
	if m.Largest.Bytes.Value != uint64(len(body)) || m.Largest.Bytes.Function != 1 {
		t.Errorf("largest body %+v", m.Largest.Bytes)
	}
	if m.Largest.Locals.Value != 2 {
		t.Errorf("locals %+v", m.Largest.Locals)
	}
	// block, br_table (4 targets), loop, br_if
	if m.Largest.Branches.Value != 7 || m.Largest.BrTableTargets.Value != 4 {
		t.Errorf("branches %+v, br_table %+v", m.Largest.Branches, m.Largest.BrTableTargets)
	}
}

func TestInspectRefuses(t *testing.T) {
	tests := []struct {
		name string
		wasm []byte
		want string
	}{
		{"no magic", []byte("\x00wasm\x01\x00\x00"), "magic"},
		{"component", []byte("\x00asm\x0d\x00\x01\x00"), "components are not supported"},
		{"truncated section", mod(sec(1, []byte{1, 0x60, 0, 0}))[:11], "truncated"},
		{"unknown section", mod([]byte{42, 0}), "unknown section id 42"},
		{"no final end", oneFunc([]byte{0}, []byte{0x01}), "final end"},
		{"bytes after end", oneFunc([]byte{0}, []byte{0x0b, 0x01}), "after the function's final end"},
		{"unknown opcode", oneFunc([]byte{0}, []byte{0xff, 0x0b}), "unknown opcode 0xff"},
		{"unknown simd opcode", oneFunc([]byte{0}, []byte{0xfd, 0xff, 0x7f, 0x0b}), "unknown opcode 0xfd"},
		{"br_table longer than the body", oneFunc([]byte{0}, []byte{0x0e, 0xff, 0xff, 0x03, 0x0b}), "truncated"},
		{"bodies and functions disagree", mod(sec(1, []byte{1, 0x60, 0, 0}), sec(3, []byte{2, 0, 0}), sec(10, []byte{1, 2, 0, 0x0b})), "declares 2 functions"},
		{"functions without code", mod(sec(1, []byte{1, 0x60, 0, 0}), sec(3, []byte{1, 0})), "no code section"},
		{"bad type form", mod(sec(1, []byte{1, 0x5f, 0, 0})), "unsupported type form"},
		{"trailing bytes in a section", mod(sec(3, []byte{0, 7})), "bytes after its last entry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Inspect(tt.wasm)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// FuzzInspect: Inspect never panics, and what it reports is consistent with the input.
func FuzzInspect(f *testing.F) {
	f.Add(oneFunc([]byte{1, 2, 0x7f}, []byte{0x02, 0x40, 0x41, 0x00, 0x0e, 0x01, 0x00, 0x00, 0x0b, 0x0b}))
	f.Add(mod(sec(4, []byte{1, 0x70, 0x00, 0x05})))
	f.Add(oneFunc([]byte{0}, []byte{0xfd, 0x0c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x1a, 0x0b}))
	f.Fuzz(func(t *testing.T, wasm []byte) {
		m, err := Inspect(wasm)
		if err != nil {
			return
		}
		if m.Size != len(wasm) || m.CodeBytes > len(wasm) || m.Largest.Bytes.Value > uint64(len(wasm)) {
			t.Fatalf("sizes out of range: %+v for %d bytes", m, len(wasm))
		}
		if m.Largest.Branches.Value > uint64(len(wasm)) {
			t.Fatalf("%d branches in %d bytes", m.Largest.Branches.Value, len(wasm))
		}
		for _, tb := range m.Tables {
			if tb.LimitsStart < 8 || tb.LimitsEnd > len(wasm) || tb.LimitsStart >= tb.LimitsEnd {
				t.Fatalf("table limits at [%d, %d) in %d bytes", tb.LimitsStart, tb.LimitsEnd, len(wasm))
			}
		}
		for _, s := range m.Sections {
			if s.Start < 8 || s.Body <= s.Start || s.End < s.Body || s.End > len(wasm) {
				t.Fatalf("section %+v in %d bytes", s, len(wasm))
			}
		}
	})
}
