package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// TestInspectListsAnImportOnce: a module that imports one function twice (two import
// entries, same module and name) is listed once with its count by `fermion inspect`,
// in module order; --json keeps every entry, as the artifact's config records them.
func TestInspectListsAnImportOnce(t *testing.T) {
	const token = "push-token"
	t.Setenv("FERMION_REGISTRY_TOKEN", "")
	host := startRegistryServe(t, token)
	dir := t.TempDir()
	const wasi = "wasi_snapshot_preview1"
	wasm := commandModule([][2]string{{wasi, "fd_write"}, {wasi, "proc_exit"}, {wasi, "fd_write"}, {wasi, "fd_write"}})
	toml := "manifest_version = 1\n[app]\nname = \"dup\"\nversion = \"0.1.0\"\n[component]\nsource = \"dup.wasm\"\nabi = \"command\"\n[[routes]]\npath = \"/dup\"\n"
	for file, data := range map[string][]byte{"fermion.toml": []byte(toml), "dup.wasm": wasm} {
		if err := os.WriteFile(filepath.Join(dir, file), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ref := host + "/acme/dup:0.1.0"
	mustRun(t, "push", ref, "--dir", dir, "--no-build", "--cache-dir", t.TempDir(), "--token", token)

	out := mustRun(t, "inspect", ref)
	if got := match(t, regexp.MustCompile(`(?m)^imports +(.*)$`), out); got != wasi+".fd_write×3 "+wasi+".proc_exit" {
		t.Errorf("inspect lists imports %q, want fd_write once with its count, then proc_exit", got)
	}
	var doc struct {
		Config struct {
			Module struct {
				Imports []struct{ Module, Name string }
			}
		}
	}
	if err := json.Unmarshal([]byte(mustRun(t, "inspect", ref, "--json")), &doc); err != nil {
		t.Fatal(err)
	}
	if n := len(doc.Config.Module.Imports); n != 4 {
		t.Errorf("inspect --json has %d imports, want the module's 4 entries", n)
	}
}

// commandModule assembles a WASI command module by hand: the function imports given
// (module, name), each of fd_write's or proc_exit's type as the host has them, an
// empty _start and a one-page memory.
func commandModule(imports [][2]string) []byte {
	uleb := func(v uint64) []byte {
		var out []byte
		for {
			c := byte(v & 0x7f)
			if v >>= 7; v == 0 {
				return append(out, c)
			}
			out = append(out, c|0x80)
		}
	}
	name := func(s string) []byte { return append(uleb(uint64(len(s))), s...) }
	vec := func(items ...[]byte) []byte {
		out := uleb(uint64(len(items)))
		for _, it := range items {
			out = append(out, it...)
		}
		return out
	}
	section := func(id byte, body []byte) []byte {
		return append(append([]byte{id}, uleb(uint64(len(body)))...), body...)
	}
	var imps [][]byte
	for _, im := range imports {
		typ := byte(1) // fd_write's
		if im[1] == "proc_exit" {
			typ = 2
		}
		imps = append(imps, append(append(name(im[0]), name(im[1])...), 0x00, typ)) // a func of that type
	}
	const i32 = 0x7f
	types := vec([]byte{0x60, 0x00, 0x00}, // () -> (): _start
		[]byte{0x60, 0x04, i32, i32, i32, i32, 0x01, i32}, // (i32, i32, i32, i32) -> i32: fd_write
		[]byte{0x60, 0x01, i32, 0x00})                     // (i32) -> (): proc_exit
	out := []byte("\x00asm\x01\x00\x00\x00")
	out = append(out, section(1, types)...)
	out = append(out, section(2, vec(imps...))...)
	out = append(out, section(3, vec([]byte{0x00}))...)
	out = append(out, section(5, vec([]byte{0x00, 0x01}))...)
	out = append(out, section(7, vec(append(name("memory"), 0x02, 0x00), append(name("_start"), append([]byte{0x00}, uleb(uint64(len(imports)))...)...)))...)
	out = append(out, section(10, vec([]byte{0x02, 0x00, 0x0b}))...)
	return out
}
