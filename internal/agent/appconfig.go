package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/BurntSushi/toml"

	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/nodecache"
	"fermion.dev/fermion/internal/telemetry"
)

// appManifest returns the app manifest carried by a verified artifact's config blob,
// checked against the module it came with. It is the only source of a function's routes,
// limits and capabilities on a node: the control plane's copy is never trusted for them.
func appManifest(e *nodecache.Entry) (*manifest.Manifest, error) {
	if len(e.Config) == 0 {
		return nil, errors.New("read app manifest: the artifact has no config blob; push it with fermion push")
	}
	cfg, err := artifact.ParseConfig(e.Config)
	if err != nil {
		return nil, fmt.Errorf("read app manifest: %w", err)
	}
	if cfg.Module.Digest.String() != e.Layer.Digest || cfg.Module.Size != e.Layer.Size {
		return nil, fmt.Errorf("read app manifest: %w: config describes module %s (%d bytes) but the layer is %s (%d bytes)",
			artifact.ErrBadManifest, cfg.Module.Digest, cfg.Module.Size, e.Layer.Digest, e.Layer.Size)
	}
	m, err := parseNormalized(cfg.Manifest)
	if err != nil {
		return nil, fmt.Errorf("read app manifest: %w", err)
	}
	if len(m.Capabilities.Files) > 0 {
		return nil, fmt.Errorf("read app manifest %s: capabilities.files: an artifact carries no files, so a node cannot mount %q; remove the mount or bake the files into the module",
			m.ID(), m.Capabilities.Files[0].Source)
	}
	// The registry scans on push, but the node may pull from any registry: the module
	// must need nothing its manifest does not grant.
	if err := artifact.Rescan(&artifact.Parsed{Config: *cfg}, e.Wasm); err != nil {
		return nil, &LoadError{Reason: telemetry.LoadModule, Err: fmt.Errorf("check module of %s against its manifest: %w", m.ID(), err)}
	}
	return m, nil
}

// parseNormalized reads a manifest's normalized JSON (Manifest.Normalize) back through
// manifest.Parse, so that a manifest from an artifact passes every check a fermion.toml
// does. The normalized form mirrors the TOML keys, durations as Go duration strings and
// sizes as byte counts, which Parse accepts as they are.
func parseNormalized(norm []byte) (*manifest.Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(norm))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%w: config manifest: %v", artifact.ErrBadManifest, err)
	}
	if comp, ok := raw["component"].(map[string]any); ok {
		delete(comp, "build") // how the module was built is of no use on a node
	}
	tree, err := tomlValue(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: config manifest: %v", artifact.ErrBadManifest, err)
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(tree); err != nil {
		return nil, fmt.Errorf("%w: config manifest: %v", artifact.ErrBadManifest, err)
	}
	return manifest.Parse("artifact config", buf.Bytes(), "")
}

// tomlValue converts a decoded JSON value into what the TOML encoder writes as the same
// value: integers as int64, objects as tables, arrays of objects as arrays of tables.
func tomlValue(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i, nil
		}
		return x.Float64()
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			if e == nil {
				continue // TOML has no null; absent means the default
			}
			c, err := tomlValue(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = c
		}
		return out, nil
	case []any:
		tables := len(x) > 0
		out := make([]any, 0, len(x))
		for i, e := range x {
			c, err := tomlValue(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			_, isTable := c.(map[string]any)
			tables = tables && isTable
			out = append(out, c)
		}
		if tables {
			ts := make([]map[string]any, len(out))
			for i, c := range out {
				ts[i] = c.(map[string]any)
			}
			return ts, nil
		}
		return out, nil
	case string, bool:
		return x, nil
	case nil:
		return nil, errors.New("null inside an array")
	default:
		return nil, fmt.Errorf("unexpected JSON value %T", v)
	}
}
