package policy

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"fermion.dev/fermion/internal/artifact"
)

// ParseApplied parses a policy as the control plane stores it: the file's source, in
// the mode it was applied with (mode "" keeps the file's spec.mode) and at the version
// the store gave it. The control plane uses it when it applies a policy and when it
// loads the stored ones; an agent uses it on the runtime policies it is sent. file
// names the source in messages.
func ParseApplied(file string, source []byte, mode Mode, version int) (*Policy, error) {
	switch mode {
	case "", ModeDeny, ModeWarn, ModeAudit:
	default:
		return nil, &Error{Problems: []Problem{{File: file, Field: "mode", Msg: fmt.Sprintf("is %s; use deny, warn or audit", quoteShort(string(mode)))}}}
	}
	p, err := ParseFile(file, source)
	if err != nil {
		return nil, err
	}
	if mode != "" {
		p = p.WithMode(mode)
	}
	if version < 0 {
		return nil, &Error{Problems: []Problem{{File: file, Field: "version", Msg: fmt.Sprintf("is %d; versions count from 1", version)}}}
	}
	return p.WithVersion(version), nil
}

// MaxArtifactConfigSize is the largest artifact config ParseArtifactConfig reads.
const MaxArtifactConfigSize = 4 << 20

// ArtifactConfig is what policies read from a Fermion artifact's OCI config blob: the
// app's normalised manifest and the module scan's ABI and imports. The control plane
// builds admission inputs from it and an agent runtime inputs, so both judge the same
// facts.
type ArtifactConfig struct {
	Manifest Manifest
	ABI      string   // "reactor" or "command"
	Imports  []string // every wasm import as "module.name", in module order
	Size     int64    // bytes of the wasm module
}

// ParseArtifactConfig reads an artifact's config blob (artifact.ParseConfig, and the
// app manifest inside it with manifest.ParseNormalized: the format has one owner).
// Beyond those decoders it checks only what it reads: a config without a manifest, or
// with a timeout that is not a duration, is an error.
func ParseArtifactConfig(config []byte) (ArtifactConfig, error) {
	var out ArtifactConfig
	if len(config) > MaxArtifactConfigSize {
		return out, fmt.Errorf("read artifact config: %d bytes, more than the %d allowed", len(config), MaxArtifactConfigSize)
	}
	doc, err := artifact.ParseConfig(config)
	if err != nil {
		return out, fmt.Errorf("read artifact config: %w", err)
	}
	if !doc.HasApp() {
		return out, fmt.Errorf("read artifact config: no app manifest in it")
	}
	m, err := doc.App()
	if err != nil {
		return out, fmt.Errorf("read artifact config: %w", err)
	}
	// Declared objectives: the manifest's [[slo]] tables (an array, as the manifest
	// normalises them and ParseNormalized checked); policies see a map by SLO name.
	var declared struct {
		SLO json.RawMessage `json:"slo"`
	}
	if err := json.Unmarshal(doc.Manifest, &declared); err != nil {
		return out, fmt.Errorf("read artifact config: slo: %w", err)
	}
	var timeout time.Duration
	if m.Limits.Timeout != "" {
		d, err := time.ParseDuration(m.Limits.Timeout)
		if err != nil || d < 0 {
			return out, fmt.Errorf("read artifact config: limits.timeout %s is not a duration", quoteShort(m.Limits.Timeout))
		}
		timeout = d
	}
	mem := int64(math.MaxInt64)
	if m.Limits.Memory <= math.MaxInt64 {
		mem = int64(m.Limits.Memory)
	}
	env := make([]string, 0, len(m.Capabilities.Env))
	for k := range m.Capabilities.Env {
		env = append(env, k)
	}
	slices.Sort(env)
	hosts := make([]string, 0, len(m.Capabilities.AllowedOutboundHosts))
	for _, h := range m.Capabilities.AllowedOutboundHosts {
		hosts = append(hosts, h.String())
	}
	files := make([]string, 0, len(m.Capabilities.Files))
	for _, f := range m.Capabilities.Files {
		files = append(files, f.Destination)
	}
	out.Manifest = Manifest{
		App: App{Name: m.App.Name, Version: m.App.Version, Labels: nonNilMap(m.App.Labels)},
		Limits: Limits{Memory: mem, TimeoutMS: timeout.Milliseconds(), MaxRequestBody: m.Limits.MaxRequestBody,
			MaxResponseBody: m.Limits.MaxResponseBody, MaxConcurrency: int64(m.Limits.MaxConcurrency)},
		Capabilities: Capabilities{Env: env, AllowedOutboundHosts: hosts, Files: files},
		Scaling: Scaling{MinWarm: int64(m.Scaling.MinWarm), MaxInstances: int64(m.Scaling.MaxInstances),
			TargetUtilizationPercentage: int64(cmp.Or(m.Scaling.TargetUtilization, 100))},
		SLO: sloByName(declared.SLO),
	}
	out.ABI, out.Size = doc.Module.ABI, doc.Module.Size
	out.Imports = make([]string, 0, len(doc.Module.Imports))
	for _, im := range doc.Module.Imports {
		out.Imports = append(out.Imports, im.Module+"."+im.Name)
	}
	return out, nil
}

// RuntimeArtifact is what a runtime policy sees of the artifact with manifest digest
// digest: what the agent passes as RuntimeInput.Artifact before it starts it.
func (c ArtifactConfig) RuntimeArtifact(digest string) RuntimeArtifact {
	return RuntimeArtifact{Digest: digest, ABI: c.ABI, Imports: slices.Clone(c.Imports),
		Capabilities: c.Manifest.Capabilities, Limits: c.Manifest.Limits}
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func nonNilSlice(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// sloByName keys the manifest's [[slo]] tables by name, as policies see them.
func sloByName(raw json.RawMessage) map[string]any {
	var tables []map[string]any
	if len(raw) == 0 || json.Unmarshal(raw, &tables) != nil || len(tables) == 0 {
		return nil
	}
	out := make(map[string]any, len(tables))
	for _, t := range tables {
		if name, ok := t["name"].(string); ok {
			out[name] = t
		}
	}
	return out
}
