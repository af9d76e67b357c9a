package agent

import (
	"testing"

	"fermion.dev/fermion/internal/manifest"
)

// TestAppManifestSnapshotOff: component.snapshot = false survives the artifact config,
// so the node's engine runs _initialize in every instance of such a function.
func TestAppManifestSnapshotOff(t *testing.T) {
	for _, off := range []bool{false, true} {
		src := "manifest_version = 1\n[app]\nname = \"n\"\nversion = \"1.0.0\"\n[component]\nsource = \"x.wasm\"\n"
		if off {
			src += "snapshot = false\n"
		}
		src += "[[routes]]\npath = \"/\"\n"
		m, err := manifest.Parse(manifest.FileName, []byte(src), "")
		if err != nil {
			t.Fatal(err)
		}
		norm, err := m.Normalize()
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseNormalized(norm)
		if err != nil {
			t.Fatal(err)
		}
		if got.Component.NoSnapshot != off {
			t.Fatalf("snapshot off %v: read back NoSnapshot = %v from %s", off, got.Component.NoSnapshot, norm)
		}
	}
}
