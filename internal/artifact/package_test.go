package artifact

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
)

var testMeta = Meta{
	Source:   "https://git.example.com/team/hello",
	Revision: "0123abcd",
	Created:  time.Date(2025, 3, 4, 5, 6, 7, 0, time.FixedZone("X", 3600)),
}

func tinyReactor() []byte {
	return tinyModule([]testImport{funcImport(WASIModule, "fd_write"), funcImport("fermion", "response")}, reactorExports, false)
}

func mustPackage(t testing.TB, wasm []byte, meta Meta) *Artifact {
	t.Helper()
	a, err := Package(testManifest(t, ""), wasm, meta)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestPackageDeterministic(t *testing.T) {
	hello := fermiontest.Guest(t, "examples/hello", true)
	a, err := Package(loadExample(t, "hello"), hello, testMeta)
	if err != nil {
		t.Fatal(err)
	}
	// A second manifest value from a fresh load: same inputs, separately built maps.
	b, err := Package(loadExample(t, "hello"), bytes.Clone(hello), testMeta)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Manifest, b.Manifest) || a.ManifestDigest != b.ManifestDigest ||
		a.ConfigDigest != b.ConfigDigest || a.LayerDigest != b.LayerDigest {
		t.Fatalf("same inputs, different artifacts:\n%s\n%s", a.Manifest, b.Manifest)
	}
	for name, d := range map[string]struct {
		blob []byte
		dg   digest.Digest
	}{"manifest": {a.Manifest, a.ManifestDigest}, "config": {a.Config, a.ConfigDigest}, "layer": {a.Layer, a.LayerDigest}} {
		if digest.FromBytes(d.blob) != d.dg {
			t.Errorf("%s digest does not match its bytes", name)
		}
	}

	// One byte more in the module (a custom section, so it stays valid) changes all three
	// digests but the manifest of course.
	changed := append(bytes.Clone(hello), section(0, wname("x"))...)
	c, err := Package(loadExample(t, "hello"), changed, testMeta)
	if err != nil {
		t.Fatal(err)
	}
	if c.LayerDigest == a.LayerDigest || c.ConfigDigest == a.ConfigDigest || c.ManifestDigest == a.ManifestDigest {
		t.Error("a changed module kept a digest")
	}

	// Metadata changes only the manifest.
	meta := testMeta
	meta.Revision = "fedcba98"
	d, err := Package(loadExample(t, "hello"), hello, meta)
	if err != nil {
		t.Fatal(err)
	}
	if d.ManifestDigest == a.ManifestDigest || d.ConfigDigest != a.ConfigDigest {
		t.Error("revision change: want a new manifest digest and the same config digest")
	}
}

func TestPackageContents(t *testing.T) {
	wasm := tinyReactor()
	a := mustPackage(t, wasm, testMeta)

	want := map[string]string{
		ocispec.AnnotationTitle:       "tiny",
		ocispec.AnnotationVersion:     "1.2.3",
		ocispec.AnnotationDescription: "A & B <tiny>",
		ocispec.AnnotationSource:      testMeta.Source,
		ocispec.AnnotationRevision:    testMeta.Revision,
		ocispec.AnnotationCreated:     "2025-03-04T04:06:07Z",
		AnnotationABI:                 ABIReactor,
	}
	var om ocispec.Manifest
	if err := json.Unmarshal(a.Manifest, &om); err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if om.Annotations[k] != v || a.Annotations[k] != v {
			t.Errorf("annotation %s = %q (Artifact: %q), want %q", k, om.Annotations[k], a.Annotations[k], v)
		}
	}
	if len(om.Annotations) != len(want) {
		t.Errorf("annotations = %v, want exactly %v", om.Annotations, want)
	}
	if om.SchemaVersion != 2 || om.MediaType != ocispec.MediaTypeImageManifest || om.ArtifactType != ArtifactType {
		t.Errorf("header = %d %q %q", om.SchemaVersion, om.MediaType, om.ArtifactType)
	}
	if len(om.Layers) != 1 || om.Layers[0].Annotations[ocispec.AnnotationTitle] != "tiny.wasm" ||
		om.Layers[0].Digest != a.LayerDigest || om.Layers[0].MediaType != LayerMediaType {
		t.Errorf("layers = %+v, want one wasm layer titled tiny.wasm", om.Layers)
	}
	if !reflect.DeepEqual(om.Config, a.ConfigDescriptor()) {
		t.Errorf("config descriptor = %+v, want %+v", om.Config, a.ConfigDescriptor())
	}
	if !strings.Contains(string(a.Manifest), `"A & B <tiny>"`) {
		t.Error("description is HTML-escaped in the manifest")
	}

	var c Config
	if err := json.Unmarshal(a.Config, &c); err != nil {
		t.Fatal(err)
	}
	norm, _ := testManifest(t, "").Normalize()
	if !bytes.Equal(c.Manifest, norm) {
		t.Errorf("config manifest = %s, want the Normalize output %s", c.Manifest, norm)
	}
	if c.Module.ABI != ABIReactor || c.Module.Digest != a.LayerDigest || len(c.Module.Imports) != 2 {
		t.Errorf("module = %+v", c.Module)
	}

	t.Run("no optional metadata", func(t *testing.T) {
		a := mustPackage(t, wasm, Meta{})
		for _, k := range []string{ocispec.AnnotationCreated, ocispec.AnnotationSource, ocispec.AnnotationRevision} {
			if _, ok := a.Annotations[k]; ok {
				t.Errorf("annotation %s present without metadata", k)
			}
		}
	})

	t.Run("refused module", func(t *testing.T) {
		_, err := Package(testManifest(t, ""), tinyModule([]testImport{funcImport(WASIModule, "sock_send")}, commandExports, false), Meta{})
		var serr *ScanError
		if !errors.As(err, &serr) {
			t.Fatalf("err = %v, want a *ScanError", err)
		}
	})
}

func TestParseRoundTrip(t *testing.T) {
	a := mustPackage(t, tinyReactor(), testMeta)
	p, err := Parse(a.Manifest, a.Config)
	if err != nil {
		t.Fatal(err)
	}
	if p.Layer.Digest != a.LayerDigest || p.Layer.Size != int64(len(a.Layer)) || p.Layer.MediaType != LayerMediaType {
		t.Errorf("layer = %+v", p.Layer)
	}
	if !reflect.DeepEqual(p.ConfigDescriptor, a.ConfigDescriptor()) {
		t.Errorf("config descriptor = %+v", p.ConfigDescriptor)
	}
	if p.Config.Module.ABI != ABIReactor || p.Manifest.Annotations[AnnotationABI] != ABIReactor {
		t.Errorf("abi = %q", p.Config.Module.ABI)
	}
	om, err := ParseManifest(a.Manifest)
	if err != nil || om.Config.Digest != a.ConfigDigest {
		t.Errorf("ParseManifest = %+v, %v", om.Config, err)
	}
	if err := VerifyLayer(p.Layer, a.Layer); err != nil {
		t.Errorf("VerifyLayer on the packaged layer: %v", err)
	}
}

func TestVerifyLayerTampered(t *testing.T) {
	a := mustPackage(t, tinyReactor(), Meta{})
	desc := a.LayerDescriptor()

	tampered := bytes.Clone(a.Layer)
	tampered[len(tampered)-1] ^= 1
	err := VerifyLayer(desc, tampered)
	if !errors.Is(err, ErrTamperedLayer) || Reason(err) != "tampered_layer" {
		t.Fatalf("err = %v, want ErrTamperedLayer", err)
	}
	if actual := digest.FromBytes(tampered); !strings.Contains(err.Error(), "expected digest "+a.LayerDigest.String()) ||
		!strings.Contains(err.Error(), "actual "+actual.String()) {
		t.Errorf("error %q does not name expected and actual digests", err)
	}

	if err := VerifyLayer(desc, a.Layer[1:]); !errors.Is(err, ErrTamperedLayer) || !strings.Contains(err.Error(), "size") {
		t.Errorf("short blob: err = %v", err)
	}
	desc.Digest = "md5:abc"
	if err := VerifyLayer(desc, a.Layer); !errors.Is(err, ErrBadManifest) {
		t.Errorf("non-sha256 descriptor: err = %v", err)
	}
}

// edit decodes JSON into a generic map, lets f change it and encodes it again.
func edit(t *testing.T, b []byte, f func(map[string]any)) []byte {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	f(v)
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestParseRefuses(t *testing.T) {
	a := mustPackage(t, tinyReactor(), Meta{})
	layer := func(v map[string]any) map[string]any { return v["layers"].([]any)[0].(map[string]any) }
	// withConfig replaces the config blob and repoints the manifest at it.
	withConfig := func(f func(map[string]any)) (manifest, config []byte) {
		config = edit(t, a.Config, f)
		manifest = edit(t, a.Manifest, func(v map[string]any) {
			c := v["config"].(map[string]any)
			c["digest"] = digest.FromBytes(config).String()
			c["size"] = len(config)
		})
		return manifest, config
	}
	type tc struct {
		name             string
		manifest, config []byte
		want             string
	}
	tests := []tc{
		{"garbage", []byte("not json"), a.Config, "not valid JSON"},
		{"trailing data", append(bytes.Clone(a.Manifest), "{}"...), a.Config, "trailing data"},
		{"image index", edit(t, a.Manifest, func(v map[string]any) { v["mediaType"] = ocispec.MediaTypeImageIndex }), a.Config, "mediaType is"},
		{"schema 1", edit(t, a.Manifest, func(v map[string]any) { v["schemaVersion"] = 1 }), a.Config, "schemaVersion is 1"},
		{"container image", edit(t, a.Manifest, func(v map[string]any) { delete(v, "artifactType") }), a.Config, "this is not a Fermion app"},
		{"config media type", edit(t, a.Manifest, func(v map[string]any) {
			v["config"].(map[string]any)["mediaType"] = ocispec.MediaTypeImageConfig
		}), a.Config, "config mediaType is"},
		{"two layers", edit(t, a.Manifest, func(v map[string]any) {
			v["layers"] = append(v["layers"].([]any), layer(v))
		}), a.Config, "2 layers, want exactly one"},
		{"no layers", edit(t, a.Manifest, func(v map[string]any) { v["layers"] = []any{} }), a.Config, "0 layers"},
		{"tar layer", edit(t, a.Manifest, func(v map[string]any) { layer(v)["mediaType"] = ocispec.MediaTypeImageLayerGzip }), a.Config, "layer mediaType is"},
		{"bad layer digest", edit(t, a.Manifest, func(v map[string]any) { layer(v)["digest"] = "sha256:xyz" }), a.Config, "layer"},
		{"config altered", a.Manifest, append(bytes.Clone(a.Config[:len(a.Config)-1]), ' ', '}'), "altered"},
		{"config garbage", a.Manifest, []byte("{{{"), "altered"},
	}
	m, c := withConfig(func(v map[string]any) { v["extra"] = true })
	tests = append(tests, tc{"config unknown field", m, c, `unknown field "extra"`})
	m, c = withConfig(func(v map[string]any) { v["module"].(map[string]any)["digest"] = digest.FromString("x").String() })
	tests = append(tests, tc{"config names another module", m, c, "config describes module"})
	m, c = withConfig(func(v map[string]any) { v["module"].(map[string]any)["abi"] = "wagi" })
	tests = append(tests, tc{"config abi", m, c, `module abi is "wagi"`})
	m, c = withConfig(func(v map[string]any) { v["manifest"] = "fermion.toml" })
	tests = append(tests, tc{"config without manifest", m, c, "no app manifest"})
	m, c = withConfig(func(v map[string]any) { v["manifest"].(map[string]any)["app"].(map[string]any)["version"] = "9.9.9" })
	tests = append(tests, tc{"annotation disagrees", m, c, `annotation org.opencontainers.image.version is "1.2.3" but the config says "9.9.9"`})

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.manifest, tt.config)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if r := Reason(err); r != "bad_manifest" && r != "tampered_layer" {
				t.Errorf("Reason = %q", r)
			}
			if !strings.HasPrefix(err.Error(), "parse artifact: ") {
				t.Errorf("error %q does not name the operation", err)
			}
		})
	}
}

func TestRescan(t *testing.T) {
	root := fermiontest.Root(t)
	load := func(name string) (*manifest.Manifest, []byte) {
		m, err := manifest.Load(filepath.Join(root, "examples", name))
		if err != nil {
			t.Fatal(err)
		}
		return m, fermiontest.Guest(t, "examples/"+name, true)
	}
	em, ewasm := load("enrich")
	a, err := Package(em, ewasm, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := Parse(a.Manifest, a.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := Rescan(p, ewasm); err != nil {
		t.Fatalf("honest artifact: %v", err)
	}
	_, hwasm := load("hello")
	if err := Rescan(p, hwasm); err == nil {
		t.Fatal("a different module passed the rescan")
	}
	var nm map[string]any
	json.Unmarshal(p.Config.Manifest, &nm)
	nm["capabilities"].(map[string]any)["allowed_outbound_hosts"] = []any{}
	p.Config.Manifest, _ = json.Marshal(nm)
	if err := Rescan(p, ewasm); err == nil || !strings.Contains(err.Error(), "allowed_outbound_hosts") {
		t.Fatalf("ungranted outbound HTTP passed the rescan: %v", err)
	}
}
