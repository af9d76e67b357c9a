package artifact

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
)

func loadExample(t *testing.T, name string) *manifest.Manifest {
	t.Helper()
	m, err := manifest.Load(filepath.Join(fermiontest.Root(t), "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func hasImport(info ModuleInfo, module, name string) bool {
	return slices.Contains(info.Imports, Import{Module: module, Name: name, Kind: KindFunc})
}

func TestScanExamples(t *testing.T) {
	hello := fermiontest.Guest(t, "examples/hello", true)
	enrich := fermiontest.Guest(t, "examples/enrich", true)
	cgi := fermiontest.Guest(t, "examples/cgi", false)

	t.Run("hello is a reactor", func(t *testing.T) {
		info, res, err := Scan(loadExample(t, "hello"), hello)
		if err != nil {
			t.Fatal(err)
		}
		if info.ABI != ABIReactor {
			t.Errorf("ABI = %q, want reactor", info.ABI)
		}
		if !hasImport(info, "fermion", "response") {
			t.Errorf("imports lack fermion.response: %v", info.Imports)
		}
		if res.Needs(CapOutboundHTTP) {
			t.Errorf("hello needs outbound HTTP? %v", res.Capabilities)
		}
		if !slices.Contains(info.Exports, "fermion_handle") || !slices.IsSorted(info.Exports) {
			t.Errorf("exports = %v, want sorted and including fermion_handle", info.Exports)
		}
		if info.Size != int64(len(hello)) || info.Digest.Validate() != nil {
			t.Errorf("size/digest = %d %q", info.Size, info.Digest)
		}
		if len(res.Findings) != 0 {
			t.Errorf("findings = %v, want none", res.Findings)
		}
	})

	t.Run("enrich with its grant", func(t *testing.T) {
		info, res, err := Scan(loadExample(t, "enrich"), enrich)
		if err != nil {
			t.Fatal(err)
		}
		if !hasImport(info, "fermion", "http_send") || !res.Needs(CapOutboundHTTP) {
			t.Errorf("imports %v, capabilities %v: want fermion.http_send and outbound_http", info.Imports, res.Capabilities)
		}
	})

	t.Run("enrich without allowed_outbound_hosts", func(t *testing.T) {
		m := loadExample(t, "enrich")
		m.Capabilities.AllowedOutboundHosts = nil
		_, _, err := Scan(m, enrich)
		var serr *ScanError
		if !errors.As(err, &serr) {
			t.Fatalf("err = %v, want a *ScanError", err)
		}
		want := "module imports fermion.http_send (outbound HTTP) but fermion.toml grants no allowed_outbound_hosts; add the hosts it calls under [capabilities]"
		if !slices.Contains(serr.Problems, want) {
			t.Errorf("problems = %q, want %q", serr.Problems, want)
		}
		if !strings.HasPrefix(err.Error(), "scan module: ") {
			t.Errorf("error %q does not name the operation", err)
		}
	})

	t.Run("cgi is a command", func(t *testing.T) {
		info, _, err := Scan(loadExample(t, "cgi"), cgi)
		if err != nil {
			t.Fatal(err)
		}
		if info.ABI != ABICommand {
			t.Errorf("ABI = %q, want command", info.ABI)
		}
	})

	t.Run("declared abi contradicts", func(t *testing.T) {
		m := loadExample(t, "cgi")
		m.Component.ABI = ABIReactor
		_, _, err := Scan(m, cgi)
		if err == nil || !strings.Contains(err.Error(), `declares abi "reactor" but the module is a command module`) {
			t.Errorf("err = %v, want the abi contradiction", err)
		}
	})
}

func TestScanHandcrafted(t *testing.T) {
	wasi := func(name string) testImport { return funcImport(WASIModule, name) }
	tests := []struct {
		name     string
		m        *manifest.Manifest
		wasm     []byte
		abi      string   // want on success
		caps     []string // want on success
		findings int
		problems []string // substrings, one per expected problem
	}{
		{
			name: "reactor",
			m:    testManifest(t, ""),
			wasm: tinyModule([]testImport{wasi("fd_write"), wasi("environ_get"), funcImport("fermion", "response")}, reactorExports, false),
			abi:  ABIReactor, caps: []string{CapEnv},
		},
		{
			name: "command with files",
			m:    testManifest(t, "command"),
			wasm: tinyModule([]testImport{wasi("path_open")}, commandExports, false),
			abi:  ABICommand, caps: []string{CapFiles},
		},
		{
			name: "unused outbound grant and no marker",
			m:    testManifest(t, "", "https://api.example.com"),
			wasm: tinyModule(nil, []string{"_initialize", "fermion_buf", "fermion_handle"}, false),
			abi:  ABIReactor, caps: []string{}, findings: 2,
		},
		{
			name:     "sock_accept",
			m:        testManifest(t, ""),
			wasm:     tinyModule([]testImport{wasi("sock_accept")}, commandExports, false),
			problems: []string{"wasi_snapshot_preview1.sock_accept (sockets), but Fermion grants no socket capability"},
		},
		{
			name:     "socket extension",
			m:        testManifest(t, "", "https://api.example.com"),
			wasm:     tinyModule([]testImport{wasi("sock_open"), wasi("sock_connect")}, commandExports, false),
			problems: []string{"sock_open (sockets)", "sock_connect (sockets)"},
		},
		{
			name:     "unknown import module",
			m:        testManifest(t, ""),
			wasm:     tinyModule([]testImport{funcImport("env", "now")}, commandExports, false),
			problems: []string{`module imports env.now from module "env", which the host cannot satisfy`},
		},
		{
			name:     "unknown wasi function",
			m:        testManifest(t, ""),
			wasm:     tinyModule([]testImport{wasi("thread_spawn")}, commandExports, false),
			problems: []string{"wasi_snapshot_preview1.thread_spawn, which WASI preview 1 does not define"},
		},
		{
			name:     "unknown fermion function",
			m:        testManifest(t, ""),
			wasm:     tinyModule([]testImport{funcImport("fermion", "kv_get")}, reactorExports, false),
			problems: []string{"fermion.kv_get, which the host does not provide"},
		},
		{
			name:     "memory import",
			m:        testManifest(t, ""),
			wasm:     tinyModule([]testImport{{"fermion", "mem", 0x02, []byte{0x00, 0x01}}}, reactorExports, false),
			problems: []string{"imports memory fermion.mem, but the host provides only functions"},
		},
		{
			name:     "outbound without grant",
			m:        testManifest(t, ""),
			wasm:     tinyModule([]testImport{funcImport("fermion", "http_take")}, reactorExports, false),
			problems: []string{"module imports fermion.http_take (outbound HTTP) but fermion.toml grants no allowed_outbound_hosts"},
		},
		{
			name:     "no abi",
			m:        testManifest(t, ""),
			wasm:     tinyModule(nil, []string{"main"}, false),
			problems: []string{"neither the reactor ABI"},
		},
		{
			name:     "partial reactor",
			m:        testManifest(t, ""),
			wasm:     tinyModule(nil, []string{"fermion_handle", "fermion_buf"}, false),
			problems: []string{"part of the reactor ABI but not _initialize"},
		},
		{
			name:     "no memory",
			m:        testManifest(t, ""),
			wasm:     tinyModule(nil, commandExports, true),
			problems: []string{`exports no memory named "memory"`},
		},
		{
			name:     "abi contradiction",
			m:        testManifest(t, "reactor"),
			wasm:     tinyModule(nil, commandExports, false),
			problems: []string{`declares abi "reactor" but the module is a command module; set component.abi = "command"`},
		},
		{
			name: "every problem at once",
			m:    testManifest(t, ""),
			wasm: tinyModule([]testImport{wasi("sock_accept"), funcImport("env", "f"), funcImport("env", "f")}, nil, false),
			problems: []string{"sock_accept", `module imports env.f from module "env"`, // reported once
				"neither the reactor ABI"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, res, err := Scan(tt.m, tt.wasm)
			if len(tt.problems) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if info.ABI != tt.abi || !slices.Equal(res.Capabilities, tt.caps) || len(res.Findings) != tt.findings {
					t.Errorf("abi %q caps %q findings %q; want %q %q and %d findings", info.ABI, res.Capabilities, res.Findings, tt.abi, tt.caps, tt.findings)
				}
				return
			}
			var serr *ScanError
			if !errors.As(err, &serr) {
				t.Fatalf("err = %v, want a *ScanError", err)
			}
			if len(serr.Problems) != len(tt.problems) {
				t.Fatalf("problems = %q, want %d", serr.Problems, len(tt.problems))
			}
			for i, want := range tt.problems {
				if !strings.Contains(serr.Problems[i], want) {
					t.Errorf("problem %d = %q, want it to contain %q", i, serr.Problems[i], want)
				}
			}
		})
	}
}

func TestScanGarbage(t *testing.T) {
	m := testManifest(t, "")
	valid := tinyModule([]testImport{funcImport(WASIModule, "fd_write")}, commandExports, false)
	importSection := section(2, vec(cat(wname(WASIModule), wname("fd_write"), []byte{0x00, 0x00})))
	header := []byte("\x00asm\x01\x00\x00\x00")
	tests := []struct {
		name string
		wasm []byte
		want string
	}{
		{"empty", nil, "not a WebAssembly module"},
		{"text", []byte("(module)"), "not a WebAssembly module"},
		{"component", []byte("\x00asm\x0d\x00\x01\x00"), "unsupported wasm binary version"},
		{"truncated", valid[:len(valid)-3], "truncated"},
		{"section past end", cat(header, []byte{0x01, 0xff, 0x01}), "truncated"},
		{"unknown section", cat(header, section(42, nil)), "unknown section id 42"},
		{"duplicate import section", cat(header, importSection, importSection), "duplicate section id 2"},
		{"huge import count", cat(header, section(2, cat(uleb(1<<31), []byte{0, 0}))), "cannot fit"},
		{"long leb", cat(header, []byte{0x02, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}), "too long"},
		{"bad utf-8 name", cat(header, section(2, vec(cat(wname("\xff"), wname("x"), []byte{0x00, 0x00})))), "UTF-8"},
		{"bad import kind", cat(header, section(2, vec(cat(wname("a"), wname("b"), []byte{0x09, 0x00})))), "unknown import kind"},
		{"trailing bytes", cat(header, section(2, cat(vec(), []byte{0x01}))), "trailing bytes"},
		{"duplicate export", cat(header, section(7, vec(cat(wname("a"), []byte{0, 0}), cat(wname("a"), []byte{0, 1})))), "duplicate export"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Scan(m, tt.wasm)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "scan module: ") {
				t.Errorf("error %q does not name the operation", err)
			}
		})
	}
}

// TestTinyModulesCompile keeps the handcrafted fixtures honest: they are modules a real
// runtime accepts, not just bytes the scanner happens to read.
func TestTinyModulesCompile(t *testing.T) {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	for _, wasm := range [][]byte{
		tinyModule([]testImport{funcImport(WASIModule, "sock_accept"), funcImport("env", "now")}, reactorExports, false),
		tinyModule(nil, commandExports, true),
	} {
		cm, err := rt.CompileModule(ctx, wasm)
		if err != nil {
			t.Fatalf("wazero refuses a handcrafted module: %v", err)
		}
		cm.Close(ctx)
	}
}
