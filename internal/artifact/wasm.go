package artifact

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Import kinds as recorded in ModuleInfo.Imports.
const (
	KindFunc   = "func"
	KindTable  = "table"
	KindMemory = "memory"
	KindGlobal = "global"
	KindTag    = "tag"
)

var kindNames = [...]string{KindFunc, KindTable, KindMemory, KindGlobal, KindTag}

// Section ids of the wasm binary format that the reader looks into.
const (
	sectionImport = 2
	sectionExport = 7
	sectionMax    = 13 // tag section, the highest id defined so far
)

// wasmExport is one entry of the export section.
type wasmExport struct {
	name string
	kind string
}

// wasmModule is what the scanner needs from a module: its imports and exports, in
// module order.
type wasmModule struct {
	imports []Import
	exports []wasmExport
}

// errNotWasm is returned for input that does not start with the wasm header.
var errNotWasm = errors.New("not a WebAssembly module (the file does not start with \\0asm version 1); component.source must be a .wasm file built with GOOS=wasip1 GOARCH=wasm")

// readModule decodes the import and export sections of a wasm binary and skips every
// other section by its size. It checks only what it reads: a module that passes may
// still fail to compile, which the sandbox reports when it loads it.
func readModule(wasm []byte) (*wasmModule, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return nil, errNotWasm
	}
	if v := wasm[4:8]; v[0] != 1 || v[1] != 0 || v[2] != 0 || v[3] != 0 {
		return nil, fmt.Errorf("unsupported wasm binary version %d (want 1); components are not supported, build a core module with GOOS=wasip1 GOARCH=wasm", uint32(v[0])|uint32(v[1])<<8|uint32(v[2])<<16|uint32(v[3])<<24)
	}
	m := &wasmModule{}
	r := wasmReader{b: wasm[8:], off: 8}
	seen := map[byte]bool{}
	for !r.done() {
		start := r.off
		id := r.byte()
		size := r.u32()
		body := r.bytes(size)
		if r.err != nil {
			return nil, fmt.Errorf("section at offset %#x: %w", start, r.err)
		}
		if id > sectionMax {
			return nil, fmt.Errorf("section at offset %#x: unknown section id %d", start, id)
		}
		if id != 0 && seen[id] {
			return nil, fmt.Errorf("section at offset %#x: duplicate section id %d", start, id)
		}
		seen[id] = true
		sr := wasmReader{b: body, off: r.off - len(body)}
		var err error
		switch id {
		case sectionImport:
			m.imports, err = readImports(&sr)
		case sectionExport:
			m.exports, err = readExports(&sr)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
	}
	return m, nil
}

func readImports(r *wasmReader) ([]Import, error) {
	n := r.u32()
	// Every import takes at least 4 bytes; a count the section cannot hold is garbage,
	// refused before it drives a long loop.
	if r.err == nil && uint64(n)*4 > uint64(len(r.b)) {
		return nil, fmt.Errorf("import section at offset %#x: %d imports cannot fit in %d bytes", r.off, n, len(r.b))
	}
	var imports []Import
	for i := uint32(0); i < n && r.err == nil; i++ {
		start := r.off
		mod := r.name()
		name := r.name()
		kind := r.byte()
		switch kind {
		case 0x00: // func: type index
			r.u32()
		case 0x01: // table: reference type, limits
			r.byte()
			r.limits()
		case 0x02: // memory: limits
			r.limits()
		case 0x03: // global: value type, mutability
			r.valType()
			if mut := r.byte(); mut > 1 && r.err == nil {
				r.fail(fmt.Errorf("bad global mutability %#x", mut))
			}
		case 0x04: // tag: attribute, type index
			r.byte()
			r.u32()
		default:
			if r.err == nil {
				r.fail(fmt.Errorf("unknown import kind %#x", kind))
			}
		}
		if r.err != nil {
			return nil, fmt.Errorf("import %d at offset %#x: %w", i, start, r.err)
		}
		imports = append(imports, Import{Module: mod, Name: name, Kind: kindNames[kind]})
	}
	if r.err != nil {
		return nil, fmt.Errorf("import section: %w", r.err)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("import section at offset %#x: %d trailing bytes", r.off, len(r.b))
	}
	return imports, nil
}

func readExports(r *wasmReader) ([]wasmExport, error) {
	n := r.u32()
	// Every export takes at least 3 bytes.
	if r.err == nil && uint64(n)*3 > uint64(len(r.b)) {
		return nil, fmt.Errorf("export section at offset %#x: %d exports cannot fit in %d bytes", r.off, n, len(r.b))
	}
	var exports []wasmExport
	names := map[string]bool{}
	for i := uint32(0); i < n && r.err == nil; i++ {
		start := r.off
		name := r.name()
		kind := r.byte()
		r.u32() // index
		if r.err != nil {
			return nil, fmt.Errorf("export %d at offset %#x: %w", i, start, r.err)
		}
		if int(kind) >= len(kindNames) {
			return nil, fmt.Errorf("export %q at offset %#x: unknown export kind %#x", name, start, kind)
		}
		if names[name] {
			return nil, fmt.Errorf("export %q at offset %#x: duplicate export name", name, start)
		}
		names[name] = true
		exports = append(exports, wasmExport{name: name, kind: kindNames[kind]})
	}
	if r.err != nil {
		return nil, fmt.Errorf("export section: %w", r.err)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("export section at offset %#x: %d trailing bytes", r.off, len(r.b))
	}
	return exports, nil
}

// wasmReader decodes the wasm binary format, tracks the file offset for error messages
// and remembers the first error, so callers check once per item.
type wasmReader struct {
	b   []byte
	off int
	err error
}

var errTruncated = errors.New("unexpected end of module (truncated file?)")

func (r *wasmReader) done() bool { return len(r.b) == 0 || r.err != nil }

func (r *wasmReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *wasmReader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.err = errTruncated
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	r.off++
	return c
}

func (r *wasmReader) bytes(n uint32) []byte {
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(r.b)) {
		r.err = errTruncated
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	r.off += int(n)
	return p
}

// leb reads an unsigned LEB128 of at most maxBytes bytes.
func (r *wasmReader) leb(maxBytes int) uint64 {
	var v uint64
	for i := 0; i < maxBytes; i++ {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v
		}
	}
	r.fail(errors.New("integer encoding too long"))
	return 0
}

func (r *wasmReader) u32() uint32 {
	v := r.leb(5)
	if v > 0xffffffff {
		r.fail(errors.New("integer out of u32 range"))
		return 0
	}
	return uint32(v)
}

func (r *wasmReader) name() string {
	b := r.bytes(r.u32())
	if r.err != nil {
		return ""
	}
	if !utf8.Valid(b) {
		r.fail(errors.New("name is not valid UTF-8"))
		return ""
	}
	return string(b)
}

// limits skips table or memory limits: flags, minimum and, if flagged, maximum.
// Flags 0x04 (memory64) widen the bounds to u64.
func (r *wasmReader) limits() {
	flags := r.byte()
	if flags > 0x07 {
		r.fail(fmt.Errorf("bad limits flags %#x", flags))
		return
	}
	width := 5
	if flags&0x04 != 0 {
		width = 10
	}
	r.leb(width)
	if flags&0x01 != 0 {
		r.leb(width)
	}
}

// valType skips a value type: a number, vector or abbreviated reference type, or a
// typed reference (0x63/0x64 followed by a heap type).
func (r *wasmReader) valType() {
	switch t := r.byte(); t {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
	case 0x63, 0x64:
		r.leb(5) // heap type (s33), skipped by its length
	default:
		if r.err == nil {
			r.fail(fmt.Errorf("unknown value type %#x", t))
		}
	}
}
