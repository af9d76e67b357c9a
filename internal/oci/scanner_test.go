package oci_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
)

// withConfig returns a copy of a whose config is edit(config), with the manifest
// pointing at the new config: a pusher that lies about what its module needs.
func withConfig(t *testing.T, a *artifact.Artifact, edit func(cfg map[string]any)) *artifact.Artifact {
	t.Helper()
	var cfg map[string]any
	if err := json.Unmarshal(a.Config, &cfg); err != nil {
		t.Fatal(err)
	}
	edit(cfg)
	config, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(a.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	m.Config.Digest = digest.FromBytes(config)
	m.Config.Size = int64(len(config))
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	b := *a
	b.Config, b.ConfigDigest = config, m.Config.Digest
	b.Manifest, b.ManifestDigest = raw, digest.FromBytes(raw)
	return &b
}

// TestRegistryScannerRefusesUngrantedCapabilities pushes examples/enrich (which imports
// outbound HTTP) with a config whose manifest grants no outbound hosts: the registry's
// own scanner refuses it, whatever the client claimed.
func TestRegistryScannerRefusesUngrantedCapabilities(t *testing.T) {
	reg := startRegistry(t)
	c := newClient()
	m, err := manifest.Load(filepath.Join(fermiontest.Root(t), "examples", "enrich"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := artifact.Package(m, fermiontest.Guest(t, "examples/enrich", true), artifact.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Push(context.Background(), parseRef(t, reg.host+"/scan/enrich:1.0.0"), a); err != nil {
		t.Fatalf("an honest artifact is refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(cfg map[string]any)
		want string
	}{
		{"outbound hosts removed", func(cfg map[string]any) {
			cfg["manifest"].(map[string]any)["capabilities"].(map[string]any)["allowed_outbound_hosts"] = []any{}
		}, "allowed_outbound_hosts"},
		{"capabilities understated", func(cfg map[string]any) {
			cfg["scan"].(map[string]any)["capabilities"] = []any{}
		}, "capabilities"},
		{"imports hidden", func(cfg map[string]any) {
			cfg["module"].(map[string]any)["imports"] = []any{}
		}, "imports"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lying := withConfig(t, a, tc.edit)
			_, err := c.Push(context.Background(), parseRef(t, reg.host+"/scan/enrich:2.0.0"), lying)
			if err == nil {
				t.Fatal("the registry accepted an artifact whose config lies about its module")
			}
			if !strings.Contains(err.Error(), "registry scanner") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error does not explain the refusal: %v", err)
			}
		})
	}
}
