package agent

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/nodecache"
)

// packaged returns an example's manifest and the cache entry of its artifact.
func packaged(t *testing.T, example string, reactor bool) (*manifest.Manifest, *nodecache.Entry) {
	t.Helper()
	m, err := manifest.Load(filepath.Join(fermiontest.Root(t), "examples", example))
	if err != nil {
		t.Fatal(err)
	}
	a, err := artifact.Package(m, fermiontest.Guest(t, "examples/"+example, reactor), artifact.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	return m, &nodecache.Entry{
		Layer:  nodecache.Descriptor{Digest: a.LayerDigest.String(), Size: int64(len(a.Layer))},
		Wasm:   a.Layer,
		Config: a.Config,
	}
}

// normalizedWithoutBuild is m's normalized form without component.build, which a node
// drops.
func normalizedWithoutBuild(t *testing.T, m *manifest.Manifest) string {
	t.Helper()
	c := *m
	c.Component.Build = nil
	b, err := c.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAppManifestRoundTrip(t *testing.T) {
	tests := []struct {
		example string
		reactor bool
	}{{"hello", true}, {"enrich", true}, {"cgi", false}}
	for _, tt := range tests {
		t.Run(tt.example, func(t *testing.T) {
			m, e := packaged(t, tt.example, tt.reactor)
			got, err := appManifest(e)
			if err != nil {
				t.Fatal(err)
			}
			if want, have := normalizedWithoutBuild(t, m), normalizedWithoutBuild(t, got); want != have {
				t.Fatalf("manifest read back from the config differs:\nwant %s\nhave %s", want, have)
			}
		})
	}
}

func TestAppManifestRefuses(t *testing.T) {
	_, good := packaged(t, "hello", true)
	editConfig := func(edit func(cfg map[string]any)) []byte {
		var cfg map[string]any
		if err := json.Unmarshal(good.Config, &cfg); err != nil {
			t.Fatal(err)
		}
		edit(cfg)
		b, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	app := func(cfg map[string]any) map[string]any { return cfg["manifest"].(map[string]any) }
	tests := []struct {
		name   string
		config []byte
		layer  *nodecache.Descriptor
		want   string
	}{
		{"no config", nil, nil, "no config blob"},
		{"not JSON", []byte("{"), nil, "invalid artifact"},
		{"unknown field", editConfig(func(cfg map[string]any) { cfg["sandbox"] = "off" }), nil, `unknown field "sandbox"`},
		{"config of another module", nil, &nodecache.Descriptor{Digest: "sha256:" + strings.Repeat("0", 64), Size: good.Layer.Size}, "config describes module"},
		{"invalid manifest", editConfig(func(cfg map[string]any) { app(cfg)["routes"] = []any{} }), nil, "routes: must not be empty"},
		{"host directory mount", editConfig(func(cfg map[string]any) {
			app(cfg)["capabilities"].(map[string]any)["files"] = []any{map[string]any{"source": "etc", "destination": "/etc"}}
		}), nil, "cannot mount"},
		{"capability the module needs is not granted", editConfig(func(cfg map[string]any) {
			cfg["scan"].(map[string]any)["capabilities"] = []any{"outbound_http"}
		}), nil, "rescan"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := *good
			e.Config = tt.config
			if tt.layer != nil {
				e.Layer = *tt.layer
				e.Config = good.Config
			}
			m, err := appManifest(&e)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("appManifest = %v, %v; want an error containing %q", m, err, tt.want)
			}
			t.Logf("refused: %v", err)
		})
	}
}

// FuzzParseNormalized: an artifact's config comes from whoever pushed it. Whatever its
// manifest says, reading it must not panic, and what it accepts normalizes again.
func FuzzParseNormalized(f *testing.F) {
	m, err := manifest.Load(filepath.Join(fermiontest.Root(f), "examples", "hello"))
	if err != nil {
		f.Fatal(err)
	}
	norm, err := m.Normalize()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(norm)
	f.Add([]byte(`{"routes":[null,{"path":1.5}],"limits":{"memory":1e400}}`))
	f.Add([]byte(`{"app":{"labels":[[[]]]}}`))
	f.Add(bytes.Repeat([]byte("["), 1000))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseNormalized(b)
		if err != nil {
			return
		}
		if _, err := got.Normalize(); err != nil {
			t.Fatalf("accepted manifest does not normalize: %v", err)
		}
	})
}
