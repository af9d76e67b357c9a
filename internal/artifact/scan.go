package artifact

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/internal/manifest"
)

// ABIs a module can implement (the values of manifest component.abi).
const (
	ABIReactor = "reactor"
	ABICommand = "command"
)

// Capabilities a module may use, as recorded in ScanResult.Capabilities. Only
// CapOutboundHTTP must be granted by the manifest; the others say what the guest can
// reach at all (the manifest's env and files decide what it finds there).
const (
	CapOutboundHTTP = "outbound_http" // imports fermion.http_send or fermion.http_take
	CapEnv          = "env"           // imports WASI environ_get
	CapFiles        = "files"         // imports WASI path_open
)

// WASIModule is the WASI preview 1 import module, the only one besides abi.HostModule
// that the host provides.
const WASIModule = "wasi_snapshot_preview1"

// wasiFuncs are the functions WASI preview 1 defines, all of which the host provides
// except the sock_ family.
var wasiFuncs = map[string]bool{
	"args_get": true, "args_sizes_get": true, "environ_get": true, "environ_sizes_get": true,
	"clock_res_get": true, "clock_time_get": true,
	"fd_advise": true, "fd_allocate": true, "fd_close": true, "fd_datasync": true,
	"fd_fdstat_get": true, "fd_fdstat_set_flags": true, "fd_fdstat_set_rights": true,
	"fd_filestat_get": true, "fd_filestat_set_size": true, "fd_filestat_set_times": true,
	"fd_pread": true, "fd_prestat_get": true, "fd_prestat_dir_name": true, "fd_pwrite": true,
	"fd_read": true, "fd_readdir": true, "fd_renumber": true, "fd_seek": true, "fd_sync": true,
	"fd_tell": true, "fd_write": true,
	"path_create_directory": true, "path_filestat_get": true, "path_filestat_set_times": true,
	"path_link": true, "path_open": true, "path_readlink": true, "path_remove_directory": true,
	"path_rename": true, "path_symlink": true, "path_unlink_file": true,
	"poll_oneoff": true, "proc_exit": true, "proc_raise": true, "sched_yield": true,
	"random_get": true,
}

// ScanError lists every reason a module was refused, so one run shows them all.
type ScanError struct {
	Problems []string
}

// Error writes one line per problem, each naming the operation.
func (e *ScanError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = "scan module: " + p
	}
	return strings.Join(lines, "\n")
}

// Needs reports whether the scanned module uses the capability (one of the Cap
// constants).
func (s ScanResult) Needs(capability string) bool {
	return slices.Contains(s.Capabilities, capability)
}

// Scan reads the module's imports and exports, detects its ABI and checks both against
// the manifest: what the module imports must be something the host provides and the
// manifest grants. It is what a registry runs on push and what Package runs before
// packaging. A refusal is a *ScanError listing every problem; a module that cannot be
// read gives a plain error.
func Scan(m *manifest.Manifest, wasm []byte) (ModuleInfo, ScanResult, error) {
	if m == nil {
		return ModuleInfo{}, ScanResult{}, errors.New("scan module: no manifest to check the module against")
	}
	mod, err := readModule(wasm)
	if err != nil {
		return ModuleInfo{}, ScanResult{}, fmt.Errorf("scan module: %w", err)
	}
	info := ModuleInfo{
		Digest:  digest.FromBytes(wasm),
		Size:    int64(len(wasm)),
		Imports: append([]Import{}, mod.imports...),
		Exports: []string{},
	}
	exports := map[string]string{}
	for _, e := range mod.exports {
		exports[e.name] = e.kind
		if e.kind == KindFunc {
			info.Exports = append(info.Exports, e.name)
		}
	}
	slices.Sort(info.Exports)

	var problems []string
	add := func(format string, args ...any) {
		p := fmt.Sprintf(format, args...)
		if !slices.Contains(problems, p) {
			problems = append(problems, p)
		}
	}
	var res ScanResult
	need := func(c string) {
		if !slices.Contains(res.Capabilities, c) {
			res.Capabilities = append(res.Capabilities, c)
		}
	}
	httpImport := ""
	for _, imp := range mod.imports {
		switch imp.Module {
		case abi.HostModule:
			if imp.Kind != KindFunc {
				add("module imports %s %s.%s, but the host provides only functions; rebuild with the Fermion SDK", imp.Kind, imp.Module, imp.Name)
				continue
			}
			switch imp.Name {
			case abi.HostResponse:
			case abi.HostHTTPSend, abi.HostHTTPTake:
				need(CapOutboundHTTP)
				if httpImport == "" {
					httpImport = imp.Name
				}
			default:
				add("module imports %s.%s, which the host does not provide (it provides %s, %s and %s); rebuild with the current Fermion SDK",
					imp.Module, imp.Name, abi.HostResponse, abi.HostHTTPSend, abi.HostHTTPTake)
			}
		case WASIModule:
			switch {
			case imp.Kind != KindFunc:
				add("module imports %s %s.%s, but WASI provides only functions; build it with GOOS=wasip1 GOARCH=wasm", imp.Kind, imp.Module, imp.Name)
			case strings.HasPrefix(imp.Name, "sock_"):
				add("module imports %s.%s (sockets), but Fermion grants no socket capability; make outbound requests through the Fermion SDK (fermion.http_send) and list the hosts under allowed_outbound_hosts in [capabilities]",
					imp.Module, imp.Name)
			case !wasiFuncs[imp.Name]:
				add("module imports %s.%s, which WASI preview 1 does not define, so the host cannot satisfy it; remove the //go:wasmimport or the dependency that needs it",
					imp.Module, imp.Name)
			case imp.Name == "environ_get":
				need(CapEnv)
			case imp.Name == "path_open":
				need(CapFiles)
			}
		default:
			add("module imports %s.%s from module %q, which the host cannot satisfy (it provides only %s and %s); remove the //go:wasmimport or the dependency that needs it",
				imp.Module, imp.Name, imp.Module, WASIModule, abi.HostModule)
		}
	}
	slices.Sort(res.Capabilities)

	if httpImport != "" && len(m.Capabilities.AllowedOutboundHosts) == 0 {
		add("module imports %s.%s (outbound HTTP) but %s grants no allowed_outbound_hosts; add the hosts it calls under [capabilities]",
			abi.HostModule, httpImport, manifest.FileName)
	}
	if httpImport == "" && len(m.Capabilities.AllowedOutboundHosts) > 0 {
		res.Findings = append(res.Findings, fmt.Sprintf("%s grants allowed_outbound_hosts but the module makes no outbound HTTP requests; remove the grant", manifest.FileName))
	}

	detected, err := detectABI(exports)
	if err != nil {
		add("%s", err.Error())
	} else {
		info.ABI = detected
		if d := m.Component.ABI; d != "" && d != detected {
			add("%s declares abi %q but the module is a %s module; set component.abi = %q or rebuild the module",
				manifest.FileName, d, detected, detected)
		}
		if detected == ABIReactor && exports[abi.ExportMarker] != KindFunc {
			res.Findings = append(res.Findings, fmt.Sprintf("reactor module does not export %s (the ABI version marker); rebuild it with the current Fermion SDK", abi.ExportMarker))
		}
	}
	if res.Capabilities == nil {
		res.Capabilities = []string{}
	}
	if res.Findings == nil {
		res.Findings = []string{}
	}
	if len(problems) > 0 {
		return info, res, &ScanError{Problems: problems}
	}
	return info, res, nil
}

// detectABI decides the ABI from the exports (name to kind), the same way the sandbox
// does when it loads a module.
func detectABI(exports map[string]string) (string, error) {
	fn := func(name string) bool { return exports[name] == KindFunc }
	if exports["memory"] != KindMemory {
		return "", errors.New(`module exports no memory named "memory"; build it with GOOS=wasip1 GOARCH=wasm`)
	}
	switch {
	case fn(abi.ExportHandle) && fn(abi.ExportBuf) && fn(abi.ExportInitialize):
		return ABIReactor, nil
	case fn(abi.ExportStart):
		return ABICommand, nil
	case fn(abi.ExportHandle) || fn(abi.ExportBuf):
		return "", errors.New("module exports part of the reactor ABI but not _initialize; build it with the Fermion SDK (Go: -buildmode=c-shared; Rust: fermion::handler!)")
	default:
		return "", errors.New("module exports neither the reactor ABI (fermion_handle, fermion_buf, _initialize) nor a WASI _start; build a reactor with the Fermion SDK (Go: -buildmode=c-shared; Rust: a cdylib with fermion::handler!), or a WASI command")
	}
}
