package artifact

import (
	"fmt"
	"testing"

	"fermion.dev/fermion/internal/manifest"
)

// testManifest parses a small manifest for handcrafted modules; abi may be "".
func testManifest(t testing.TB, abi string, outbound ...string) *manifest.Manifest {
	t.Helper()
	src := "manifest_version = 1\n[app]\nname = \"tiny\"\nversion = \"1.2.3\"\ndescription = \"A & B <tiny>\"\n" +
		"[component]\nsource = \"build/tiny.wasm\"\n"
	if abi != "" {
		src += fmt.Sprintf("abi = %q\n", abi)
	}
	src += "[[routes]]\npath = \"/tiny\"\n"
	if len(outbound) > 0 {
		src += "[capabilities]\nallowed_outbound_hosts = ["
		for i, h := range outbound {
			if i > 0 {
				src += ", "
			}
			src += fmt.Sprintf("%q", h)
		}
		src += "]\n"
	}
	m, err := manifest.Parse("fermion.toml", []byte(src), "")
	if err != nil {
		t.Fatalf("test manifest: %v", err)
	}
	return m
}

// testImport is one import of a handcrafted module; kind is an import kind byte and desc
// its encoded description (a type index, limits...).
type testImport struct {
	module, name string
	kind         byte
	desc         []byte
}

func funcImport(module, name string) testImport { return testImport{module, name, 0x00, []byte{0}} }

// tinyModule assembles a valid wasm module by hand: one type () -> (), the imports, one
// empty function per export name, and a one-page memory exported as "memory" (unless
// noMemory). The scanner reads only imports and exports; the other sections make the
// module real, as TestTinyModulesCompile checks.
func tinyModule(imports []testImport, exports []string, noMemory bool) []byte {
	var imps [][]byte
	for _, im := range imports {
		imps = append(imps, cat(wname(im.module), wname(im.name), []byte{im.kind}, im.desc))
	}
	var funcs, bodies, exps [][]byte
	if !noMemory {
		exps = append(exps, cat(wname("memory"), []byte{0x02, 0x00}))
	}
	nImportedFuncs := 0
	for _, im := range imports {
		if im.kind == 0x00 {
			nImportedFuncs++
		}
	}
	for i, e := range exports {
		funcs = append(funcs, []byte{0x00})
		bodies = append(bodies, []byte{0x02, 0x00, 0x0b}) // size 2: no locals, end
		exps = append(exps, cat(wname(e), []byte{0x00}, uleb(uint64(nImportedFuncs+i))))
	}
	out := []byte("\x00asm\x01\x00\x00\x00")
	out = append(out, section(1, vec([]byte{0x60, 0x00, 0x00}))...)
	if len(imps) > 0 {
		out = append(out, section(2, vec(imps...))...)
	}
	out = append(out, section(3, vec(funcs...))...)
	out = append(out, section(5, vec([]byte{0x00, 0x01}))...)
	out = append(out, section(7, vec(exps...))...)
	out = append(out, section(10, vec(bodies...))...)
	return out
}

// reactorExports and commandExports are what the two ABIs export (memory aside).
var (
	reactorExports = []string{"_initialize", "fermion_abi_v1", "fermion_buf", "fermion_handle"}
	commandExports = []string{"_start"}
)

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func uleb(v uint64) []byte {
	var out []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(out, c)
		}
		out = append(out, c|0x80)
	}
}

func wname(s string) []byte { return cat(uleb(uint64(len(s))), []byte(s)) }

func vec(items ...[]byte) []byte { return cat(uleb(uint64(len(items))), cat(items...)) }

func section(id byte, body []byte) []byte { return cat([]byte{id}, uleb(uint64(len(body))), body) }
