package artifact

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Signatures follow cosign's "simple signing" scheme, so cosign and Fermion can verify
// each other's: the signed payload is a small JSON document naming the repository and
// the manifest digest; it is stored as a layer of an OCI image manifest pushed under the
// tag SignatureTag(digest) in the same repository, with the base64 signature in a layer
// annotation. Signing again appends a layer.

// Names from cosign's signature layout.
const (
	SignatureLayerMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	SignatureAnnotation     = "dev.cosignproject.cosign/signature"
	CosignSignatureType     = "cosign container image signature"
)

const (
	dockerManifestMediaType = "application/vnd.docker.distribution.manifest.v2+json"
	dockerConfigMediaType   = "application/vnd.docker.container.image.v1+json"
	// zeroTime is how cosign's empty signature image records its (absent) times.
	zeroTime = "0001-01-01T00:00:00Z"
	// Bounds on outside input: cosign writes one layer per signature and payloads of a
	// few hundred bytes.
	maxSignatures  = 256
	maxPayloadSize = 1 << 20
)

// SignatureTag is the tag under which cosign stores the signatures of the manifest
// with digest d: "sha256-<hex>.sig".
func SignatureTag(d digest.Digest) string {
	return string(d.Algorithm()) + "-" + d.Encoded() + ".sig"
}

// simpleSigning is cosign's payload. Field order and the null "optional" match what
// cosign writes.
type simpleSigning struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
	Optional map[string]any `json:"optional"`
}

// Repository strips a tag or digest from an image reference: "host:5000/team/app:1.0"
// and "host:5000/team/app@sha256:…" both give "host:5000/team/app". It is what cosign
// writes as the payload's docker-reference.
func Repository(ref string) string {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		ref = ref[:i]
	}
	return ref
}

// Sign signs the manifest digest d for repository repo (a tag or digest on it is
// dropped) with priv, as `cosign sign --key` does: it returns the simple-signing
// payload and the base64 ECDSA (ASN.1) signature over its SHA-256.
func Sign(priv *ecdsa.PrivateKey, repo string, d digest.Digest) (payload []byte, sigB64 string, err error) {
	if priv == nil {
		return nil, "", errors.New("sign: no private key")
	}
	if err := checkDigest(d); err != nil {
		return nil, "", fmt.Errorf("sign: %w", err)
	}
	repo = Repository(repo)
	if repo == "" || strings.ContainsAny(repo, " \t\r\n") {
		return nil, "", fmt.Errorf("sign: %q is not a repository; pass it like host/team/app", repo)
	}
	var p simpleSigning
	p.Critical.Identity.DockerReference = repo
	p.Critical.Image.DockerManifestDigest = d.String()
	p.Critical.Type = CosignSignatureType
	if payload, err = json.Marshal(p); err != nil {
		return nil, "", fmt.Errorf("sign: %w", err)
	}
	h := sha256.Sum256(payload)
	sig, err := ecdsa.SignASN1(rand.Reader, priv, h[:])
	if err != nil {
		return nil, "", fmt.Errorf("sign: %w", err)
	}
	return payload, base64.StdEncoding.EncodeToString(sig), nil
}

// sigDescriptor and sigManifest mirror the OCI manifest as cosign writes it (field
// order included), keeping fields Fermion does not use so appending preserves them.
type sigDescriptor struct {
	MediaType    string            `json:"mediaType"`
	Size         int64             `json:"size"`
	Digest       digest.Digest     `json:"digest"`
	Data         []byte            `json:"data,omitempty"`
	URLs         []string          `json:"urls,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Platform     json.RawMessage   `json:"platform,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
}

type sigManifest struct {
	SchemaVersion int64             `json:"schemaVersion"`
	MediaType     string            `json:"mediaType,omitempty"`
	Config        sigDescriptor     `json:"config"`
	Layers        []sigDescriptor   `json:"layers"`
	Annotations   map[string]string `json:"annotations,omitempty"`
	Subject       json.RawMessage   `json:"subject,omitempty"`
	ArtifactType  string            `json:"artifactType,omitempty"`
}

// sigConfig is the config cosign's signature image carries: an empty image config
// whose rootfs lists each signature layer.
type sigConfig struct {
	Architecture string       `json:"architecture"`
	Created      string       `json:"created"`
	History      []sigHistory `json:"history"`
	OS           string       `json:"os"`
	RootFS       struct {
		Type    string          `json:"type"`
		DiffIDs []digest.Digest `json:"diff_ids"`
	} `json:"rootfs"`
	Config struct{} `json:"config"`
}

type sigHistory struct {
	Created string `json:"created"`
}

func (d sigDescriptor) oci() ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size, Annotations: d.Annotations}
}

// SignatureManifest adds a signature to the signature manifest existing (nil or empty
// to start one) and returns the new manifest and its config blob, both to be pushed:
// the config and payload as blobs, the manifest under SignatureTag. Adding a signature
// that is already there changes nothing. The result depends only on the inputs.
func SignatureManifest(existing []byte, payload []byte, sigB64 string) (manifest, config []byte, err error) {
	if len(payload) == 0 || len(payload) > maxPayloadSize {
		return nil, nil, fmt.Errorf("signature manifest: payload is %d bytes; want 1 to %d", len(payload), maxPayloadSize)
	}
	if _, err := base64.StdEncoding.DecodeString(sigB64); err != nil || sigB64 == "" {
		return nil, nil, errors.New("signature manifest: signature is not standard base64")
	}
	m := sigManifest{SchemaVersion: 2, MediaType: ocispec.MediaTypeImageManifest, Layers: []sigDescriptor{}}
	if len(existing) > 0 {
		if m, err = parseSigManifest(existing); err != nil {
			return nil, nil, fmt.Errorf("signature manifest: existing: %w", err)
		}
		if len(m.Layers) >= maxSignatures {
			return nil, nil, fmt.Errorf("signature manifest: already %d signatures, the most Fermion keeps", len(m.Layers))
		}
	}
	layer := sigDescriptor{
		MediaType:   SignatureLayerMediaType,
		Size:        int64(len(payload)),
		Digest:      digest.FromBytes(payload),
		Annotations: map[string]string{SignatureAnnotation: sigB64},
	}
	dup := false
	for _, l := range m.Layers {
		dup = dup || (l.Digest == layer.Digest && l.Annotations[SignatureAnnotation] == sigB64)
	}
	if !dup {
		m.Layers = append(m.Layers, layer)
	}

	var c sigConfig
	c.Created = zeroTime
	c.History = []sigHistory{}
	c.RootFS.Type = "layers"
	c.RootFS.DiffIDs = []digest.Digest{}
	for _, l := range m.Layers {
		// Signature layers are not compressed: a layer's diff ID is its digest.
		c.RootFS.DiffIDs = append(c.RootFS.DiffIDs, l.Digest)
		c.History = append(c.History, sigHistory{Created: zeroTime})
	}
	if config, err = json.Marshal(c); err != nil {
		return nil, nil, fmt.Errorf("signature manifest: %w", err)
	}
	m.Config = sigDescriptor{MediaType: ocispec.MediaTypeImageConfig, Size: int64(len(config)), Digest: digest.FromBytes(config)}
	if m.MediaType == dockerManifestMediaType {
		m.Config.MediaType = dockerConfigMediaType
	}
	if manifest, err = json.Marshal(m); err != nil {
		return nil, nil, fmt.Errorf("signature manifest: %w", err)
	}
	return manifest, config, nil
}

func parseSigManifest(b []byte) (sigManifest, error) {
	var m sigManifest
	if len(b) > MaxManifestSize {
		return m, fmt.Errorf("%w: signature manifest is %d bytes, more than the %d allowed", ErrBadManifest, len(b), MaxManifestSize)
	}
	if err := decodeJSON(b, &m, false); err != nil {
		return m, fmt.Errorf("%w: signature manifest is not valid JSON: %v", ErrBadManifest, err)
	}
	if m.SchemaVersion != 2 {
		return m, fmt.Errorf("%w: signature manifest schemaVersion is %d, want 2", ErrBadManifest, m.SchemaVersion)
	}
	if m.MediaType != ocispec.MediaTypeImageManifest && m.MediaType != dockerManifestMediaType {
		return m, fmt.Errorf("%w: signature manifest mediaType is %q, want %q", ErrBadManifest, m.MediaType, ocispec.MediaTypeImageManifest)
	}
	if len(m.Layers) > maxSignatures {
		return m, fmt.Errorf("%w: signature manifest has %d layers, more than the %d allowed", ErrBadManifest, len(m.Layers), maxSignatures)
	}
	for i, l := range m.Layers {
		if err := checkDescriptor(l.oci()); err != nil {
			return m, fmt.Errorf("%w: signature layer %d: %v", ErrBadManifest, i, err)
		}
	}
	if m.Layers == nil {
		m.Layers = []sigDescriptor{}
	}
	return m, nil
}

// Signature is one signature read from a signature manifest.
type Signature struct {
	Payload []byte // the simple-signing payload, checked against Layer
	Base64  string // the signature annotation: base64 ASN.1 ECDSA over SHA-256(Payload)
	// Layer is the payload's descriptor; its annotations carry anything else cosign
	// attached (a certificate, a transparency-log bundle), unused by Fermion.
	Layer ocispec.Descriptor
}

// ParseSignatures reads the signatures from a signature manifest (the manifest under
// SignatureTag). fetch returns the blob a descriptor names; each payload is checked
// against its descriptor before use. Layers that are not simple-signing payloads with a
// signature annotation are skipped.
func ParseSignatures(sigManifest []byte, fetch func(ocispec.Descriptor) ([]byte, error)) ([]Signature, error) {
	m, err := parseSigManifest(sigManifest)
	if err != nil {
		return nil, fmt.Errorf("parse signatures: %w", err)
	}
	if fetch == nil {
		return nil, errors.New("parse signatures: no fetch function")
	}
	var sigs []Signature
	for i, l := range m.Layers {
		sig, ok := l.Annotations[SignatureAnnotation]
		if l.MediaType != SignatureLayerMediaType || !ok {
			continue
		}
		if l.Size <= 0 || l.Size > maxPayloadSize {
			return nil, fmt.Errorf("parse signatures: %w: signature layer %d payload is %d bytes; want 1 to %d", ErrBadManifest, i, l.Size, maxPayloadSize)
		}
		desc := l.oci()
		payload, err := fetch(desc)
		if err != nil {
			return nil, fmt.Errorf("parse signatures: fetch payload %s: %w", l.Digest, err)
		}
		if err := VerifyLayer(desc, payload); err != nil {
			return nil, fmt.Errorf("parse signatures: payload %d: %w", i, err)
		}
		sigs = append(sigs, Signature{Payload: payload, Base64: sig, Layer: desc})
	}
	return sigs, nil
}

// TrustPolicy says which keys an artifact's signature must come from.
type TrustPolicy struct {
	Keys []*ecdsa.PublicKey
	// RequireSignature refuses artifacts without a signature by a trusted key. Without
	// it, unsigned artifacts and those signed only by unknown keys pass as unsigned; a
	// trusted signature for the wrong digest (or, with MatchRepository, the wrong
	// repository) is refused either way.
	RequireSignature bool
	// MatchRepository also requires the repository a signature names (its payload's
	// critical.identity.docker-reference) to be the one the artifact is pulled from.
	// Off by default: like cosign's key-based verification, a signature binds the
	// manifest digest, so it still verifies under another host name (localhost and
	// 127.0.0.1), another port or a mirror made with cosign copy.
	MatchRepository bool
}

// Verified is the outcome of a successful Verify.
type Verified struct {
	Signed   bool   // false when the policy let an unsigned artifact through
	KeyID    string // KeyID of the trusted key that signed it
	Identity string // the repository the signature names
}

// LoadTrustPolicy builds a policy from PEM public keys (cosign.pub files). Requiring
// signatures with no keys is refused, since nothing could pass.
func LoadTrustPolicy(pems [][]byte, require bool) (TrustPolicy, error) {
	p := TrustPolicy{RequireSignature: require}
	seen := map[string]bool{}
	for i, b := range pems {
		k, err := ParsePublicKey(b)
		if err != nil {
			return TrustPolicy{}, fmt.Errorf("load trust policy: key %d: %w", i+1, err)
		}
		if id := KeyID(k); !seen[id] {
			seen[id] = true
			p.Keys = append(p.Keys, k)
		}
	}
	if require && len(p.Keys) == 0 {
		return TrustPolicy{}, errors.New("load trust policy: signatures are required but no public keys are trusted; add the signer's public key (cosign.pub) or stop requiring signatures")
	}
	return p, nil
}

// Verify checks the signatures of the artifact with manifest digest d pulled from repo
// (a tag or digest on it is ignored; "" skips the repository check, which only a policy
// with MatchRepository makes). It succeeds when a signature verifies with a trusted key
// and its payload names d (and, with MatchRepository, repo). Failures wrap
// ErrNoSignature, ErrUntrustedSignature, ErrDigestMismatch, ErrIdentityMismatch or
// ErrBadManifest; see Reason.
func (p TrustPolicy) Verify(repo string, d digest.Digest, sigs []Signature) (Verified, error) {
	all, err := p.VerifyAll(repo, d, sigs)
	if err != nil || len(all) == 0 {
		return Verified{}, err
	}
	return all[0], nil
}

// VerifyAll is Verify reporting every trusted key that signed the artifact (once per
// key, in signature order) rather than the first: what a co-signed artifact's reader
// wants to see. It returns no signer and no error when the policy lets an artifact
// without a trusted signature through.
func (p TrustPolicy) VerifyAll(repo string, d digest.Digest, sigs []Signature) ([]Verified, error) {
	ref := d.String()
	if repo != "" {
		ref = Repository(repo) + "@" + ref
	}
	if len(sigs) == 0 {
		if p.RequireSignature {
			return nil, fmt.Errorf("verify %s: %w; sign it with a key the trust policy lists (cosign sign --key works too)", ref, ErrNoSignature)
		}
		return nil, nil
	}
	want := Repository(repo)
	var refused error
	var out []Verified
	seen := map[string]bool{}
	for _, s := range sigs {
		key := p.signer(s)
		if key == nil {
			continue
		}
		var pl simpleSigning
		if err := decodeJSON(s.Payload, &pl, false); err != nil || pl.Critical.Type != CosignSignatureType {
			if refused == nil {
				refused = fmt.Errorf("verify %s: %w: a trusted key signed a payload that is not a %q", ref, ErrBadManifest, CosignSignatureType)
			}
			continue
		}
		if got := pl.Critical.Image.DockerManifestDigest; got != d.String() {
			if refused == nil {
				refused = fmt.Errorf("verify %s: %w: the trusted signature is for %s; the signature was copied from another artifact, sign this one", ref, ErrDigestMismatch, got)
			}
			continue
		}
		if got := Repository(pl.Critical.Identity.DockerReference); p.MatchRepository && want != "" && got != want {
			if refused == nil {
				refused = fmt.Errorf("verify %s: %w: the trusted signature names %q, not %q, and the trust policy matches repositories; sign the artifact in this repository or stop matching repositories", ref, ErrIdentityMismatch, got, want)
			}
			continue
		}
		id := KeyID(key)
		if !seen[id] {
			seen[id] = true
			out = append(out, Verified{Signed: true, KeyID: id, Identity: pl.Critical.Identity.DockerReference})
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	if refused != nil {
		return nil, refused
	}
	if p.RequireSignature {
		return nil, fmt.Errorf("verify %s: %w: %d signature(s), none by the %d trusted key(s); sign with a trusted key or trust the signer's public key",
			ref, ErrUntrustedSignature, len(sigs), len(p.Keys))
	}
	return nil, nil
}

// signer returns the trusted key whose signature s carries, or nil.
func (p TrustPolicy) signer(s Signature) *ecdsa.PublicKey {
	raw, err := base64.StdEncoding.DecodeString(s.Base64)
	if err != nil {
		return nil
	}
	h := sha256.Sum256(s.Payload)
	for _, k := range p.Keys {
		if k != nil && k.Curve != nil && ecdsa.VerifyASN1(k, h[:], raw) {
			return k
		}
	}
	return nil
}
