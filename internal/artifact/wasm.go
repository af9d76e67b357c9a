package artifact

import (
	"errors"
	"fmt"

	"fermion.dev/fermion/internal/wasmbin"
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
	r := wasmbin.Reader{B: wasm[8:], Off: 8}
	seen := map[byte]bool{}
	for !r.Done() {
		start := r.Off
		id := r.Byte()
		size := r.U32()
		body := r.Bytes(size)
		if r.Err != nil {
			return nil, fmt.Errorf("section at offset %#x: %w", start, r.Err)
		}
		if id > sectionMax {
			return nil, fmt.Errorf("section at offset %#x: unknown section id %d", start, id)
		}
		if id != 0 && seen[id] {
			return nil, fmt.Errorf("section at offset %#x: duplicate section id %d", start, id)
		}
		seen[id] = true
		sr := wasmbin.Reader{B: body, Off: r.Off - len(body)}
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

func readImports(r *wasmbin.Reader) ([]Import, error) {
	n := r.U32()
	// Every import takes at least 4 bytes; a count the section cannot hold is garbage,
	// refused before it drives a long loop.
	if r.Err == nil && uint64(n)*4 > uint64(len(r.B)) {
		return nil, fmt.Errorf("import section at offset %#x: %d imports cannot fit in %d bytes", r.Off, n, len(r.B))
	}
	var imports []Import
	for i := uint32(0); i < n && r.Err == nil; i++ {
		start := r.Off
		mod := r.Name()
		name := r.Name()
		kind := r.Byte()
		switch kind {
		case 0x00: // func: type index
			r.U32()
		case 0x01: // table: reference type, limits
			r.Byte()
			r.Limits()
		case 0x02: // memory: limits
			r.Limits()
		case 0x03: // global: value type, mutability
			r.ValType()
			if mut := r.Byte(); mut > 1 && r.Err == nil {
				r.Fail(fmt.Errorf("bad global mutability %#x", mut))
			}
		case 0x04: // tag: attribute, type index
			r.Byte()
			r.U32()
		default:
			if r.Err == nil {
				r.Fail(fmt.Errorf("unknown import kind %#x", kind))
			}
		}
		if r.Err != nil {
			return nil, fmt.Errorf("import %d at offset %#x: %w", i, start, r.Err)
		}
		imports = append(imports, Import{Module: mod, Name: name, Kind: kindNames[kind]})
	}
	if r.Err != nil {
		return nil, fmt.Errorf("import section: %w", r.Err)
	}
	if len(r.B) != 0 {
		return nil, fmt.Errorf("import section at offset %#x: %d trailing bytes", r.Off, len(r.B))
	}
	return imports, nil
}

func readExports(r *wasmbin.Reader) ([]wasmExport, error) {
	n := r.U32()
	// Every export takes at least 3 bytes.
	if r.Err == nil && uint64(n)*3 > uint64(len(r.B)) {
		return nil, fmt.Errorf("export section at offset %#x: %d exports cannot fit in %d bytes", r.Off, n, len(r.B))
	}
	var exports []wasmExport
	names := map[string]bool{}
	for i := uint32(0); i < n && r.Err == nil; i++ {
		start := r.Off
		name := r.Name()
		kind := r.Byte()
		r.U32() // index
		if r.Err != nil {
			return nil, fmt.Errorf("export %d at offset %#x: %w", i, start, r.Err)
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
	if r.Err != nil {
		return nil, fmt.Errorf("export section: %w", r.Err)
	}
	if len(r.B) != 0 {
		return nil, fmt.Errorf("export section at offset %#x: %d trailing bytes", r.Off, len(r.B))
	}
	return exports, nil
}
