// Package artifact defines what a Fermion artifact is and how it is signed and
// verified: the OCI image manifest, config and wasm layer that `fermion push` uploads
// and nodes pull; the scan of the module that a registry runs before admitting it; and
// cosign-compatible keys and signatures, so `cosign sign --key` and `cosign verify --key`
// work on Fermion artifacts and Fermion trusts keys made by cosign.
//
// An artifact is one OCI image manifest (artifactType ArtifactType) with a JSON config
// (ConfigMediaType) that carries the app's normalized manifest, what the module imports
// and exports, and the scan's findings, and exactly one layer: the wasm module itself.
// Equal inputs give byte-identical blobs and therefore equal digests.
//
// The package is pure: no network, disk or clock. Callers move the bytes and pass times
// in; everything here decides from its arguments alone. Everything that parses outside
// input (Parse, ParseManifest, Scan, ParseSignatures, ParsePrivateKey, ParsePublicKey)
// refuses malformed input with an error and never panics.
package artifact

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"fermion.dev/fermion/internal/manifest"
)

// Media types of a Fermion artifact.
const (
	ArtifactType    = "application/vnd.fermion.app.v1"
	ConfigMediaType = "application/vnd.fermion.app.config.v1+json"
	LayerMediaType  = "application/wasm"
)

// AnnotationABI is the manifest annotation holding the module's ABI ("reactor" or
// "command"), so a registry listing shows it without fetching the config.
const AnnotationABI = "dev.fermion.abi"

// Size limits for outside input. Registries commonly cap manifests at 4 MiB; a Fermion
// config is a few KiB.
const (
	MaxManifestSize = 4 << 20
	MaxConfigSize   = 4 << 20
)

// Config is the artifact's config blob.
type Config struct {
	// Manifest is the app manifest's Normalize() output, byte for byte.
	Manifest json.RawMessage `json:"manifest"`
	Module   ModuleInfo      `json:"module"`
	Scan     ScanResult      `json:"scan"`
}

// ModuleInfo describes the wasm layer.
type ModuleInfo struct {
	Digest  digest.Digest `json:"digest"`
	Size    int64         `json:"size"`
	ABI     string        `json:"abi"`     // ABIReactor or ABICommand
	Imports []Import      `json:"imports"` // in module order
	Exports []string      `json:"exports"` // exported function names, sorted
}

// Import is one import of the module.
type Import struct {
	Module string `json:"module"`
	Name   string `json:"name"`
	Kind   string `json:"kind"` // KindFunc, KindTable, KindMemory, KindGlobal or KindTag
}

// ScanResult is what the scan found, recorded so admission and nodes can check it
// without parsing the module again.
type ScanResult struct {
	// Capabilities the module uses (Cap constants), sorted.
	Capabilities []string `json:"capabilities"`
	// Findings are problems that did not refuse the module, as sentences with a fix.
	Findings []string `json:"findings"`
}

// Meta is packaging metadata that does not come from the manifest.
type Meta struct {
	Source   string    // source repository URL (org.opencontainers.image.source); "" omits it
	Revision string    // source revision, e.g. a commit (org.opencontainers.image.revision); "" omits it
	Created  time.Time // build time (org.opencontainers.image.created); zero omits it, keeping builds reproducible
}

// Artifact is a packaged app, ready to push: three blobs and their digests.
type Artifact struct {
	Manifest       []byte // OCI image manifest
	ManifestDigest digest.Digest
	Config         []byte
	ConfigDigest   digest.Digest
	Layer          []byte // the wasm module
	LayerDigest    digest.Digest
	Annotations    map[string]string // the manifest's annotations
}

// ManifestDescriptor describes a.Manifest, as a registry push or an index needs it.
func (a *Artifact) ManifestDescriptor() ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: ArtifactType,
		Digest: a.ManifestDigest, Size: int64(len(a.Manifest))}
}

// ConfigDescriptor describes a.Config.
func (a *Artifact) ConfigDescriptor() ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: ConfigMediaType, Digest: a.ConfigDigest, Size: int64(len(a.Config))}
}

// LayerDescriptor describes a.Layer.
func (a *Artifact) LayerDescriptor() ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: LayerMediaType, Digest: a.LayerDigest, Size: int64(len(a.Layer))}
}

// Package scans the module against the manifest and builds the artifact. The blobs are
// deterministic: the same manifest, module and meta give the same digests on any
// machine, since the manifest is normalized and JSON objects are written in a fixed
// order. A module the scan refuses gives its *ScanError.
func Package(m *manifest.Manifest, wasm []byte, meta Meta) (*Artifact, error) {
	if m == nil {
		return nil, errors.New("package artifact: no manifest")
	}
	info, scan, err := Scan(m, wasm)
	if err != nil {
		return nil, err
	}
	norm, err := m.Normalize()
	if err != nil {
		return nil, fmt.Errorf("package %s: %w", m.ID(), err)
	}
	config, err := marshalJSON(Config{Manifest: norm, Module: info, Scan: scan})
	if err != nil {
		return nil, fmt.Errorf("package %s: encode config: %w", m.ID(), err)
	}

	title := path.Base(filepath.ToSlash(m.Component.Source))
	if title == "." || title == "/" {
		title = m.App.Name + ".wasm"
	}
	ann := map[string]string{
		ocispec.AnnotationTitle:   m.App.Name,
		ocispec.AnnotationVersion: m.App.Version,
		AnnotationABI:             info.ABI,
	}
	for k, v := range map[string]string{
		ocispec.AnnotationDescription: m.App.Description,
		ocispec.AnnotationSource:      meta.Source,
		ocispec.AnnotationRevision:    meta.Revision,
	} {
		if v != "" {
			ann[k] = v
		}
	}
	if !meta.Created.IsZero() {
		ann[ocispec.AnnotationCreated] = meta.Created.UTC().Format(time.RFC3339)
	}

	a := &Artifact{
		Config:       config,
		ConfigDigest: digest.FromBytes(config),
		Layer:        wasm,
		LayerDigest:  info.Digest,
		Annotations:  ann,
	}
	layer := a.LayerDescriptor()
	layer.Annotations = map[string]string{ocispec.AnnotationTitle: title}
	om := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: ArtifactType,
		Config:       a.ConfigDescriptor(),
		Layers:       []ocispec.Descriptor{layer},
		Annotations:  ann,
	}
	// encoding/json writes struct fields in declaration order and map keys sorted, so
	// the bytes depend only on the values.
	if a.Manifest, err = marshalJSON(om); err != nil {
		return nil, fmt.Errorf("package %s: encode manifest: %w", m.ID(), err)
	}
	a.ManifestDigest = digest.FromBytes(a.Manifest)
	return a, nil
}

// Parsed is a pulled artifact's manifest and config, checked for consistency.
type Parsed struct {
	Manifest         ocispec.Manifest
	ConfigDescriptor ocispec.Descriptor
	Config           Config
	Layer            ocispec.Descriptor // the wasm layer; fetch it and check it with VerifyLayer
}

// ParseManifest decodes an OCI image manifest and checks that it is a Fermion artifact:
// the media types, artifactType and a single wasm layer. Use it to find the config
// descriptor before fetching the config, then Parse both.
func ParseManifest(manifestJSON []byte) (ocispec.Manifest, error) {
	var om ocispec.Manifest
	if err := checkManifest(manifestJSON, &om); err != nil {
		return ocispec.Manifest{}, fmt.Errorf("parse artifact manifest: %w", err)
	}
	return om, nil
}

func checkManifest(manifestJSON []byte, om *ocispec.Manifest) error {
	if len(manifestJSON) > MaxManifestSize {
		return fmt.Errorf("%w: manifest is %d bytes, more than the %d allowed", ErrBadManifest, len(manifestJSON), MaxManifestSize)
	}
	// Unknown fields are ignored, as the OCI spec requires of manifest consumers.
	if err := decodeJSON(manifestJSON, om, false); err != nil {
		return fmt.Errorf("%w: manifest is not valid JSON: %v", ErrBadManifest, err)
	}
	if om.SchemaVersion != 2 {
		return fmt.Errorf("%w: schemaVersion is %d, want 2", ErrBadManifest, om.SchemaVersion)
	}
	if om.MediaType != ocispec.MediaTypeImageManifest {
		return fmt.Errorf("%w: mediaType is %q, want %q", ErrBadManifest, om.MediaType, ocispec.MediaTypeImageManifest)
	}
	if om.ArtifactType != ArtifactType {
		return fmt.Errorf("%w: artifactType is %q, want %q; this is not a Fermion app", ErrBadManifest, om.ArtifactType, ArtifactType)
	}
	if om.Config.MediaType != ConfigMediaType {
		return fmt.Errorf("%w: config mediaType is %q, want %q", ErrBadManifest, om.Config.MediaType, ConfigMediaType)
	}
	if err := checkDescriptor(om.Config); err != nil {
		return fmt.Errorf("%w: config: %v", ErrBadManifest, err)
	}
	if len(om.Layers) != 1 {
		return fmt.Errorf("%w: manifest has %d layers, want exactly one wasm layer", ErrBadManifest, len(om.Layers))
	}
	l := om.Layers[0]
	if l.MediaType != LayerMediaType {
		return fmt.Errorf("%w: layer mediaType is %q, want %q", ErrBadManifest, l.MediaType, LayerMediaType)
	}
	if err := checkDescriptor(l); err != nil {
		return fmt.Errorf("%w: layer: %v", ErrBadManifest, err)
	}
	if l.Size == 0 {
		return fmt.Errorf("%w: layer is empty", ErrBadManifest)
	}
	return nil
}

// Parse decodes a pulled artifact's manifest and config and checks that they are a
// Fermion artifact and agree with each other: the config matches its descriptor and
// describes the layer the manifest names. It is the inverse of Package. The layer itself
// is checked by VerifyLayer once fetched.
func Parse(manifestJSON, configJSON []byte) (*Parsed, error) {
	p := &Parsed{}
	if err := checkManifest(manifestJSON, &p.Manifest); err != nil {
		return nil, fmt.Errorf("parse artifact: %w", err)
	}
	p.ConfigDescriptor = p.Manifest.Config
	p.Layer = p.Manifest.Layers[0]
	if len(configJSON) > MaxConfigSize {
		return nil, fmt.Errorf("parse artifact: %w: config is %d bytes, more than the %d allowed", ErrBadManifest, len(configJSON), MaxConfigSize)
	}
	if err := VerifyLayer(p.ConfigDescriptor, configJSON); err != nil {
		return nil, fmt.Errorf("parse artifact: config: %w", err)
	}
	c, err := ParseConfig(configJSON)
	if err != nil {
		return nil, fmt.Errorf("parse artifact: %w", err)
	}
	p.Config = *c
	c = &p.Config
	if !c.HasApp() {
		return nil, fmt.Errorf("parse artifact: %w: config has no app manifest object", ErrBadManifest)
	}
	app, err := c.App()
	if err != nil {
		return nil, fmt.Errorf("parse artifact: %w: config: %v", ErrBadManifest, err)
	}
	if c.Module.Digest != p.Layer.Digest || c.Module.Size != p.Layer.Size {
		return nil, fmt.Errorf("parse artifact: %w: config describes module %s (%d bytes) but the layer is %s (%d bytes)",
			ErrBadManifest, c.Module.Digest, c.Module.Size, p.Layer.Digest, p.Layer.Size)
	}
	if c.Module.ABI != ABIReactor && c.Module.ABI != ABICommand {
		return nil, fmt.Errorf("parse artifact: %w: module abi is %q, want %q or %q", ErrBadManifest, c.Module.ABI, ABIReactor, ABICommand)
	}
	ann := p.Manifest.Annotations
	for _, chk := range []struct{ key, want string }{
		{AnnotationABI, c.Module.ABI},
		{ocispec.AnnotationTitle, app.App.Name},
		{ocispec.AnnotationVersion, app.App.Version},
	} {
		if got, ok := ann[chk.key]; ok && got != chk.want {
			return nil, fmt.Errorf("parse artifact: %w: annotation %s is %q but the config says %q", ErrBadManifest, chk.key, got, chk.want)
		}
	}
	return p, nil
}

// VerifyLayer checks that blob is the content desc names: its size and its sha256
// digest. It works for any blob (layer, config, signature payload); a mismatch is
// ErrTamperedLayer and names the expected and actual values.
func VerifyLayer(desc ocispec.Descriptor, blob []byte) error {
	if err := checkDescriptor(desc); err != nil {
		return fmt.Errorf("verify blob: %w: %v", ErrBadManifest, err)
	}
	if int64(len(blob)) != desc.Size {
		return fmt.Errorf("verify blob %s: %w: size is %d bytes, expected %d; the blob was altered in the registry or in transit, push it again",
			desc.Digest, ErrTamperedLayer, len(blob), desc.Size)
	}
	sum := sha256.Sum256(blob)
	if got := digest.NewDigestFromBytes(digest.SHA256, sum[:]); got != desc.Digest {
		return fmt.Errorf("verify blob: %w: expected digest %s, actual %s; the blob was altered in the registry or in transit, push it again",
			ErrTamperedLayer, desc.Digest, got)
	}
	return nil
}

// checkDescriptor refuses descriptors whose digest is not a well-formed sha256 or
// whose size is negative.
func checkDescriptor(d ocispec.Descriptor) error {
	if err := checkDigest(d.Digest); err != nil {
		return err
	}
	if d.Size < 0 {
		return fmt.Errorf("negative size %d", d.Size)
	}
	return nil
}

func checkDigest(d digest.Digest) error {
	if d.Algorithm() != digest.SHA256 {
		return fmt.Errorf("digest %q is not a sha256 digest", d)
	}
	if err := d.Validate(); err != nil {
		return fmt.Errorf("digest %q: %v", d, err)
	}
	return nil
}

// marshalJSON encodes v without HTML escaping (so "&" in a description stays readable)
// and without the encoder's trailing newline.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// decodeJSON decodes exactly one JSON value into v, refusing trailing data and, when
// strict, unknown fields.
func decodeJSON(b []byte, v any, strict bool) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// ParseConfig decodes an artifact's config blob: the one decoder of the format. It is
// strict, because the format is ours and versioned by its media type: a field this
// version does not know might carry a constraint it would silently ignore. Parse
// checks the result against the manifest and layer; App decodes the app manifest
// inside.
func ParseConfig(configJSON []byte) (*Config, error) {
	if len(configJSON) > MaxConfigSize {
		return nil, fmt.Errorf("%w: config is %d bytes, more than the %d allowed", ErrBadManifest, len(configJSON), MaxConfigSize)
	}
	c := &Config{}
	if err := decodeJSON(configJSON, c, true); err != nil {
		return nil, fmt.Errorf("%w: config: %v", ErrBadManifest, err)
	}
	return c, nil
}

// HasApp reports whether the config carries an app manifest object at all.
func (c *Config) HasApp() bool {
	m := bytes.TrimSpace(c.Manifest)
	return len(m) > 0 && m[0] == '{'
}

// App decodes the app manifest the config carries (manifest.ParseNormalized).
func (c *Config) App() (*manifest.Normalized, error) {
	return manifest.ParseNormalized(c.Manifest)
}
