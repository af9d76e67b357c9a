// Package manifest parses and validates fermion.toml, the file that
// describes one Fermion app: a single sandboxed WebAssembly function, the
// routes it serves, the resources it may use, the capabilities it is granted
// and how it scales.
//
// Parsing is strict: unknown keys are errors, every value is range-checked,
// and all problems are reported together as an *Error whose lines name the
// file, line, field and a fix. A *Manifest returned without error has every
// default applied and every invariant checked, so the sandbox, gateway and
// CLI can use it without re-validating. The package is pure apart from Load,
// which reads the file, and CheckGrants, which walks the files grants on disk.
package manifest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"fermion.dev/fermion/internal/rollout"
	"fermion.dev/fermion/internal/slo"
)

// FileName is the conventional manifest name looked up inside a directory.
const FileName = "fermion.toml"

// Manifest is a validated fermion.toml with defaults applied.
type Manifest struct {
	ManifestVersion int
	App             App
	Component       Component
	Routes          []Route
	Limits          Limits
	Capabilities    Capabilities
	Scaling         Scaling
	// SLOs are the [[slo]] tables: the app's SLOs, applied with its deployment.
	SLOs []slo.ManifestSLO
	// Strategy is the [strategy] table: how a new version reaches the nodes (a
	// canary's steps and checks, rolling batches); nil when absent. fermion deploy's
	// strategy flags replace it.
	Strategy *rollout.Spec

	// Dir is the absolute directory of the manifest file ("" when parsed
	// from bytes with Parse and dir ""). Relative paths resolve against it.
	Dir string
	// Path is the file name used in error messages.
	Path string
}

// App identifies the application.
type App struct {
	Name        string
	Version     string
	Description string
	Labels      map[string]string
}

// Component is the WebAssembly module that implements the app.
type Component struct {
	// Source is the module path: absolute when the manifest has an absolute
	// Dir (always after Load), otherwise relative to Dir. Use SourcePath.
	Source string
	// ABI is "reactor", "command" or "" to detect from the module's exports.
	ABI   string
	Build *Build // nil when there is no [component.build]
	// NoSnapshot is component.snapshot = false: every new instance runs the guest's
	// _initialize instead of starting from a snapshot of an initialised one.
	NoSnapshot bool
	// Warmup is component.warmup: a path (and optional query) the node GETs through
	// the guest's handler on every new instance before it takes traffic; "" for none.
	// WarmupTimeout bounds that request (DefaultWarmupTimeout when Warmup is set).
	Warmup        string
	WarmupTimeout time.Duration
}

// Build says how to produce Component.Source from source code.
type Build struct {
	Command string            // run by a shell in Workdir
	Workdir string            // like Component.Source; defaults to the manifest directory
	Env     map[string]string // extra environment for the build
}

// Route sends requests to the app. Paths are prefix matches (the longest
// wins); an empty Host matches any host, "*.example.com" any subdomain.
type Route struct {
	Path string
	Host string // lower-cased
}

// Limits bound what one request or instance may consume.
type Limits struct {
	MemoryBytes     uint64        // a multiple of the 64KiB wasm page size
	Timeout         time.Duration // per-request deadline
	MaxRequestBody  int64         // 0 means requests must not have a body
	MaxResponseBody int64
	MaxConcurrency  int           // effective value: never 0 after parsing
	QueueTimeout    time.Duration // how long a request may wait for an instance
	// Load bounds what the module itself may declare, checked before it is compiled.
	Load LoadLimits
}

// LoadLimits bound a module's size and shape, and the time its compilation may take,
// so that no module costs a node more than these to load (see docs/limits.md). A zero
// field means the node's default (the agent's flags, or the sandbox's built-in value):
// a manifest states a bound only to raise or lower it for its own module.
type LoadLimits struct {
	ModuleSize       int64 // bytes of the module file
	CodeSize         int64 // bytes of the code section
	FunctionSize     int64 // bytes of one function body
	Functions        int   // defined functions
	FunctionLocals   int   // locals of one function
	FunctionBranches int   // blocks, branches and br_table targets of one function
	TableElements    int   // entries of one table, initially and after table.grow
	Globals          int
	DataSegments     int
	ElementSegments  int
	CompileTimeout   time.Duration
}

// MemoryPages is the memory limit in 64KiB wasm pages, the unit runtimes
// take for a linear-memory cap.
func (l Limits) MemoryPages() uint32 {
	return uint32(l.MemoryBytes / wasmPageSize)
}

// Capabilities are what the guest may do beyond computing; everything not
// granted here is denied.
type Capabilities struct {
	Env                  map[string]string
	AllowedOutboundHosts []HostPattern
	OutboundTimeout      time.Duration
	Files                []Mount
}

// Mount is a read-only directory made visible to the guest.
type Mount struct {
	Source      string // host directory; absolute when the manifest has an absolute Dir (always after Load)
	Destination string // absolute, cleaned guest path
}

// Scaling controls the instance pool.
type Scaling struct {
	MinWarm                int
	MaxInstances           int
	MaxRequestsPerInstance int // recycle after this many requests; 0 = never
	IdleTimeout            time.Duration
	// TargetUtilizationPercentage sizes the warm pool ahead of traffic: the highest
	// concurrency within IdleTimeout is kept at this share of the pool (1-100; 100 keeps
	// exactly the peak). See internal/autoscale.
	TargetUtilizationPercentage int
}

// Load reads and parses a manifest. If path is a directory, FileName inside
// it is read. Relative paths in the manifest resolve against the file's
// absolute directory, and the files grants are checked on disk (CheckGrants).
func Load(path string) (*Manifest, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load manifest: %s: %w; give a function directory holding %s (fermion new NAME creates one)", path, fs.ErrNotExist, FileName)
	}
	if err != nil {
		return nil, fmt.Errorf("load manifest: %w", err)
	}
	dir := fi.IsDir()
	if dir {
		path = filepath.Join(path, FileName)
	}
	data, err := os.ReadFile(path)
	if dir && errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load manifest: directory %s has no %s (%w); run fermion new NAME to create a function, or give the directory that holds %s",
			filepath.Dir(path), FileName, fs.ErrNotExist, FileName)
	}
	if err != nil {
		return nil, fmt.Errorf("load manifest: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("load manifest: %w", err)
	}
	// Parse errors already name the file, so they are returned unwrapped and
	// stay a *Error for callers that want the individual problems.
	m, err := Parse(path, data, filepath.Dir(abs))
	if err != nil {
		return nil, err
	}
	if err := checkGrants(m, indexKeys(string(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))))); err != nil {
		return nil, err
	}
	return m, nil
}

// SourcePath is the absolute path of the component's wasm module (relative
// only when the manifest was parsed without a directory).
func (m *Manifest) SourcePath() string {
	return m.abs(m.Component.Source)
}

func (m *Manifest) abs(p string) string {
	if m.Dir == "" || filepath.IsAbs(p) {
		return filepath.FromSlash(p)
	}
	return filepath.Join(m.Dir, filepath.FromSlash(p))
}

// rel undoes abs for Normalize, so the canonical form does not depend on
// where the project happens to be checked out.
func (m *Manifest) rel(p string) (string, error) {
	if m.Dir == "" || !filepath.IsAbs(p) || !filepath.IsAbs(m.Dir) {
		return filepath.ToSlash(p), nil
	}
	r, err := filepath.Rel(m.Dir, p)
	if err != nil {
		return "", err
	}
	return filepath.ToSlash(r), nil
}

// ID is "name@version", the app's identity in registries and logs.
func (m *Manifest) ID() string {
	return m.App.Name + "@" + m.App.Version
}

// The normalized form mirrors the TOML keys so it reads like the manifest.
type (
	normManifest struct {
		ManifestVersion int         `json:"manifest_version"`
		App             normApp     `json:"app"`
		Component       normComp    `json:"component"`
		Routes          []normRoute `json:"routes"`
		Limits          normLimits  `json:"limits"`
		Capabilities    normCaps    `json:"capabilities"`
		Scaling         normScaling `json:"scaling"`
		// SLO is omitted when empty, so a manifest without [[slo]] normalises to the
		// bytes it always did (and its artifact keeps its digest).
		SLO []slo.ManifestSLO `json:"slo,omitempty"`
	}
	normApp struct {
		Name        string            `json:"name"`
		Version     string            `json:"version"`
		Description string            `json:"description"`
		Labels      map[string]string `json:"labels"`
	}
	normComp struct {
		Source string     `json:"source"`
		ABI    string     `json:"abi"`
		Build  *normBuild `json:"build,omitempty"`
		// Snapshot is emitted only when false, so that adding it changed no existing
		// app's config digest.
		Snapshot *bool `json:"snapshot,omitempty"`
		// Warmup and its timeout are emitted only when a hook is set, for the same reason.
		Warmup        string `json:"warmup,omitempty"`
		WarmupTimeout string `json:"warmup_timeout,omitempty"`
	}
	normBuild struct {
		Command string            `json:"command"`
		Workdir string            `json:"workdir"`
		Env     map[string]string `json:"env"`
	}
	normRoute struct {
		Path string `json:"path"`
		Host string `json:"host"`
	}
	normLimits struct {
		Memory          uint64 `json:"memory"`
		Timeout         string `json:"timeout"`
		MaxRequestBody  int64  `json:"max_request_body"`
		MaxResponseBody int64  `json:"max_response_body"`
		MaxConcurrency  int    `json:"max_concurrency"`
		QueueTimeout    string `json:"queue_timeout"`
		// Load bounds are emitted only when the manifest sets them, so that adding them
		// changed no existing app's config digest.
		MaxModuleSize       int64  `json:"max_module_size,omitempty"`
		MaxCodeSize         int64  `json:"max_code_size,omitempty"`
		MaxFunctionSize     int64  `json:"max_function_size,omitempty"`
		MaxFunctions        int    `json:"max_functions,omitempty"`
		MaxFunctionLocals   int    `json:"max_function_locals,omitempty"`
		MaxFunctionBranches int    `json:"max_function_branches,omitempty"`
		MaxTableElements    int    `json:"max_table_elements,omitempty"`
		MaxGlobals          int    `json:"max_globals,omitempty"`
		MaxDataSegments     int    `json:"max_data_segments,omitempty"`
		MaxElementSegments  int    `json:"max_element_segments,omitempty"`
		CompileTimeout      string `json:"compile_timeout,omitempty"`
	}
	normCaps struct {
		Env                  map[string]string `json:"env"`
		AllowedOutboundHosts []HostPattern     `json:"allowed_outbound_hosts"`
		OutboundTimeout      string            `json:"outbound_timeout"`
		Files                []normMount       `json:"files"`
	}
	normMount struct {
		Source      string `json:"source"`
		Destination string `json:"destination"`
	}
	normScaling struct {
		MinWarm                int    `json:"min_warm"`
		MaxInstances           int    `json:"max_instances"`
		MaxRequestsPerInstance int    `json:"max_requests_per_instance"`
		IdleTimeout            string `json:"idle_timeout"`
		TargetUtilization      int    `json:"target_utilization_percentage"`
	}
)

// Normalize returns the canonical JSON of the effective manifest: defaults
// applied, durations as Go duration strings ("10s"), sizes as byte counts,
// map keys sorted, paths relative to the manifest directory, no Dir or Path.
// Its bytes become an OCI config blob, so equal manifests must yield equal
// bytes regardless of map order or checkout location.
func (m *Manifest) Normalize() ([]byte, error) {
	n := normManifest{
		ManifestVersion: m.ManifestVersion,
		App: normApp{
			Name:        m.App.Name,
			Version:     m.App.Version,
			Description: m.App.Description,
			Labels:      nonNil(m.App.Labels),
		},
		Component: normComp{ABI: m.Component.ABI, Snapshot: noSnapshot(m.Component.NoSnapshot)},
		Routes:    make([]normRoute, 0, len(m.Routes)),
		Limits: normLimits{
			Memory:          m.Limits.MemoryBytes,
			Timeout:         m.Limits.Timeout.String(),
			MaxRequestBody:  m.Limits.MaxRequestBody,
			MaxResponseBody: m.Limits.MaxResponseBody,
			MaxConcurrency:  m.Limits.MaxConcurrency,
			QueueTimeout:    m.Limits.QueueTimeout.String(),

			MaxModuleSize:       m.Limits.Load.ModuleSize,
			MaxCodeSize:         m.Limits.Load.CodeSize,
			MaxFunctionSize:     m.Limits.Load.FunctionSize,
			MaxFunctions:        m.Limits.Load.Functions,
			MaxFunctionLocals:   m.Limits.Load.FunctionLocals,
			MaxFunctionBranches: m.Limits.Load.FunctionBranches,
			MaxTableElements:    m.Limits.Load.TableElements,
			MaxGlobals:          m.Limits.Load.Globals,
			MaxDataSegments:     m.Limits.Load.DataSegments,
			MaxElementSegments:  m.Limits.Load.ElementSegments,
		},
		Capabilities: normCaps{
			Env:                  nonNil(m.Capabilities.Env),
			AllowedOutboundHosts: append([]HostPattern{}, m.Capabilities.AllowedOutboundHosts...),
			OutboundTimeout:      m.Capabilities.OutboundTimeout.String(),
			Files:                make([]normMount, 0, len(m.Capabilities.Files)),
		},
		Scaling: normScaling{
			MinWarm:                m.Scaling.MinWarm,
			MaxInstances:           m.Scaling.MaxInstances,
			MaxRequestsPerInstance: m.Scaling.MaxRequestsPerInstance,
			IdleTimeout:            m.Scaling.IdleTimeout.String(),
			TargetUtilization:      m.Scaling.TargetUtilizationPercentage,
		},
	}
	n.SLO = m.SLOs
	if n.Limits.MaxConcurrency == 0 {
		// Hand-built manifests may leave the "same as max_instances" default.
		n.Limits.MaxConcurrency = m.Scaling.MaxInstances
	}
	if t := m.Limits.Load.CompileTimeout; t > 0 {
		n.Limits.CompileTimeout = t.String()
	}
	if n.Scaling.TargetUtilization == 0 {
		n.Scaling.TargetUtilization = 100 // hand-built manifests: the decoder's default
	}
	if m.Component.Warmup != "" {
		n.Component.Warmup = m.Component.Warmup
		n.Component.WarmupTimeout = cmp.Or(m.Component.WarmupTimeout, DefaultWarmupTimeout).String()
	}
	var err error
	if n.Component.Source, err = m.rel(m.Component.Source); err != nil {
		return nil, fmt.Errorf("normalize manifest: component.source: %w", err)
	}
	if b := m.Component.Build; b != nil {
		nb := &normBuild{Command: b.Command, Env: nonNil(b.Env)}
		if nb.Workdir, err = m.rel(b.Workdir); err != nil {
			return nil, fmt.Errorf("normalize manifest: component.build.workdir: %w", err)
		}
		if nb.Workdir == "" {
			nb.Workdir = "."
		}
		n.Component.Build = nb
	}
	for _, r := range m.Routes {
		n.Routes = append(n.Routes, normRoute(r))
	}
	for i, f := range m.Capabilities.Files {
		src, err := m.rel(f.Source)
		if err != nil {
			return nil, fmt.Errorf("normalize manifest: capabilities.files[%d].source: %w", i, err)
		}
		n.Capabilities.Files = append(n.Capabilities.Files, normMount{Source: src, Destination: f.Destination})
	}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep "&" and "<" readable; escaping is not needed for a blob
	if err := enc.Encode(n); err != nil {
		return nil, fmt.Errorf("normalize manifest: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// nonNil makes absent and empty maps encode identically ({} rather than
// null), so they normalize to the same bytes.
func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// noSnapshot is component.snapshot in the normalized form: absent unless false.
func noSnapshot(off bool) *bool {
	if !off {
		return nil
	}
	f := false
	return &f
}
