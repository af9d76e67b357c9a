package artifact

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const testRepo = "localhost:5000/team/hello"

// blobs is an in-memory blob store standing in for a registry in ParseSignatures.
type blobs map[digest.Digest][]byte

func (b blobs) fetch(d ocispec.Descriptor) ([]byte, error) {
	blob, ok := b[d.Digest]
	if !ok {
		return nil, fmt.Errorf("blob %s not found", d.Digest)
	}
	return blob, nil
}

// signed signs d as repo and returns the signature manifest and a store holding the
// payload.
func signed(t *testing.T, priv *ecdsa.PrivateKey, repo string, d digest.Digest, existing []byte, store blobs) []byte {
	t.Helper()
	payload, sig, err := Sign(priv, repo, d)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := SignatureManifest(existing, payload, sig)
	if err != nil {
		t.Fatal(err)
	}
	store[digest.FromBytes(payload)] = payload
	return m
}

func TestSignatureTag(t *testing.T) {
	d := digest.FromString("hello")
	if got, want := SignatureTag(d), "sha256-"+d.Encoded()+".sig"; got != want {
		t.Errorf("SignatureTag = %q, want %q", got, want)
	}
}

func TestRepository(t *testing.T) {
	for in, want := range map[string]string{
		"localhost:5000/team/app":             "localhost:5000/team/app",
		"localhost:5000/team/app:1.0":         "localhost:5000/team/app",
		"localhost:5000/team/app@sha256:abcd": "localhost:5000/team/app",
		"team/app:v1@sha256:abcd":             "team/app",
		"app":                                 "app",
	} {
		if got := Repository(in); got != want {
			t.Errorf("Repository(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSignPayload(t *testing.T) {
	priv, _ := GenerateKey()
	d := digest.FromString("manifest")
	payload, sig, err := Sign(priv, testRepo+":1.0", d)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"critical":{"identity":{"docker-reference":"localhost:5000/team/hello"},"image":{"docker-manifest-digest":"` +
		d.String() + `"},"type":"cosign container image signature"},"optional":null}`
	if string(payload) != want {
		t.Errorf("payload =\n%s\nwant\n%s", payload, want)
	}
	if sig == "" {
		t.Error("empty signature")
	}
	if _, _, err := Sign(priv, testRepo, "sha256:nothex"); err == nil {
		t.Error("Sign accepted a malformed digest")
	}
	if _, _, err := Sign(priv, "", d); err == nil {
		t.Error("Sign accepted an empty repository")
	}
}

func TestSignatureManifest(t *testing.T) {
	k1, _ := GenerateKey()
	k2, _ := GenerateKey()
	d := digest.FromString("manifest")
	p1, s1, _ := Sign(k1, testRepo, d)
	p2, s2, _ := Sign(k2, testRepo, d)

	m1, c1, err := SignatureManifest(nil, p1, s1)
	if err != nil {
		t.Fatal(err)
	}
	wantConfig := `{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],"os":"",` +
		`"rootfs":{"type":"layers","diff_ids":["` + digest.FromBytes(p1).String() + `"]},"config":{}}`
	if string(c1) != wantConfig {
		t.Errorf("config =\n%s\nwant\n%s", c1, wantConfig)
	}
	wantManifest := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` +
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":` + fmt.Sprint(len(c1)) + `,"digest":"` + digest.FromBytes(c1).String() + `"},` +
		`"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":` + fmt.Sprint(len(p1)) + `,"digest":"` + digest.FromBytes(p1).String() + `",` +
		`"annotations":{"dev.cosignproject.cosign/signature":"` + s1 + `"}}]}`
	if string(m1) != wantManifest {
		t.Errorf("manifest =\n%s\nwant\n%s", m1, wantManifest)
	}
	again, _, _ := SignatureManifest(nil, p1, s1)
	if !bytes.Equal(again, m1) {
		t.Error("SignatureManifest is not deterministic")
	}

	m2, c2, err := SignatureManifest(m1, p2, s2)
	if err != nil {
		t.Fatal(err)
	}
	var om ocispec.Manifest
	if err := json.Unmarshal(m2, &om); err != nil {
		t.Fatal(err)
	}
	if len(om.Layers) != 2 || om.Layers[0].Annotations[SignatureAnnotation] != s1 || om.Layers[1].Annotations[SignatureAnnotation] != s2 {
		t.Fatalf("layers = %+v, want the first signature then the second", om.Layers)
	}
	if om.Config.Digest != digest.FromBytes(c2) || !strings.Contains(string(c2), digest.FromBytes(p2).String()) ||
		strings.Count(string(c2), `{"created":`) != 2 {
		t.Errorf("config does not list both layers: %s", c2)
	}

	same, _, err := SignatureManifest(m2, p1, s1)
	if err != nil || !bytes.Equal(same, m2) {
		t.Errorf("re-adding a signature changed the manifest: %v", err)
	}

	for name, tt := range map[string]struct {
		existing, payload []byte
		sig, want         string
	}{
		"garbage existing": {[]byte("<html>"), p1, s1, "not valid JSON"},
		"index existing":   {[]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","layers":[]}`), p1, s1, "mediaType is"},
		"empty payload":    {nil, nil, s1, "payload is 0 bytes"},
		"bad signature":    {nil, p1, "not base64!", "not standard base64"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := SignatureManifest(tt.existing, tt.payload, tt.sig); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseSignatures(t *testing.T) {
	k1, _ := GenerateKey()
	d := digest.FromString("manifest")
	store := blobs{}
	m := signed(t, k1, testRepo, d, nil, store)

	sigs, err := ParseSignatures(m, store.fetch)
	if err != nil || len(sigs) != 1 || sigs[0].Base64 == "" || sigs[0].Layer.MediaType != SignatureLayerMediaType {
		t.Fatalf("ParseSignatures = %+v, %v", sigs, err)
	}

	t.Run("tampered payload", func(t *testing.T) {
		bad := blobs{}
		for k, v := range store {
			bad[k] = bytes.Replace(v, []byte(d.Encoded()), []byte(digest.FromString("other").Encoded()), 1)
		}
		_, err := ParseSignatures(m, bad.fetch)
		if !errors.Is(err, ErrTamperedLayer) {
			t.Fatalf("err = %v, want ErrTamperedLayer", err)
		}
	})
	t.Run("fetch fails", func(t *testing.T) {
		_, err := ParseSignatures(m, blobs{}.fetch)
		if err == nil || !strings.Contains(err.Error(), "not found") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("other layers skipped", func(t *testing.T) {
		other := edit(t, m, func(v map[string]any) {
			v["layers"] = append(v["layers"].([]any), map[string]any{
				"mediaType": "application/vnd.dev.sigstore.bundle+json", "size": 3, "digest": digest.FromString("abc").String(),
			})
		})
		sigs, err := ParseSignatures(other, store.fetch)
		if err != nil || len(sigs) != 1 {
			t.Fatalf("ParseSignatures = %d signatures, %v", len(sigs), err)
		}
	})
	t.Run("bad manifest", func(t *testing.T) {
		_, err := ParseSignatures([]byte(`{"schemaVersion":2}`), store.fetch)
		if Reason(err) != "bad_manifest" {
			t.Fatalf("err = %v, want bad_manifest", err)
		}
	})
}

func TestVerify(t *testing.T) {
	trusted, _ := GenerateKey()
	stranger, _ := GenerateKey()
	pub, _ := MarshalPublicKey(&trusted.PublicKey)
	policy, err := LoadTrustPolicy([][]byte{pub, pub}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(policy.Keys) != 1 {
		t.Errorf("policy keeps %d copies of one key", len(policy.Keys))
	}
	lax := policy
	lax.RequireSignature = false
	strict := policy
	strict.MatchRepository = true

	d := digest.FromString("manifest")
	other := digest.FromString("another manifest")
	sigsFor := func(priv *ecdsa.PrivateKey, repo string, d digest.Digest) []Signature {
		store := blobs{}
		sigs, err := ParseSignatures(signed(t, priv, repo, d, nil, store), store.fetch)
		if err != nil {
			t.Fatal(err)
		}
		return sigs
	}
	good := sigsFor(trusted, testRepo, d)
	forged := []Signature{good[0]}
	forged[0].Payload = bytes.Replace(good[0].Payload, []byte(d.Encoded()), []byte(other.Encoded()), 1)

	tests := []struct {
		name   string
		policy TrustPolicy
		repo   string
		digest digest.Digest
		sigs   []Signature
		err    error // nil for success
		signed bool
	}{
		{"good", policy, testRepo + ":1.0", d, good, nil, true},
		{"good, repository not checked", policy, "", d, good, nil, true},
		{"one good among strangers", policy, testRepo, d, append(sigsFor(stranger, testRepo, d), good...), nil, true},
		{"signature for another digest", policy, testRepo, other, good, ErrDigestMismatch, false},
		{"signature for another digest, lax", lax, testRepo, other, good, ErrDigestMismatch, false},
		// A signature binds the digest: the same artifact under another name verifies,
		// unless the policy matches repositories.
		{"pulled under another host name", policy, "127.0.0.1:5000/team/hello", d, good, nil, true},
		{"pulled from a mirror", policy, "mirror.example:443/copies/hello@" + d.String(), d, good, nil, true},
		{"matching repository", strict, testRepo + ":1.0", d, good, nil, true},
		{"signature for another repository, matched", strict, "localhost:5000/team/other", d, good, ErrIdentityMismatch, false},
		{"another host name, matched", strict, "127.0.0.1:5000/team/hello", d, good, ErrIdentityMismatch, false},
		{"payload edited after signing", policy, testRepo, other, forged, ErrUntrustedSignature, false},
		{"untrusted key", policy, testRepo, d, sigsFor(stranger, testRepo, d), ErrUntrustedSignature, false},
		{"untrusted key, lax", lax, testRepo, d, sigsFor(stranger, testRepo, d), nil, false},
		{"unsigned", policy, testRepo, d, nil, ErrNoSignature, false},
		{"unsigned, lax", lax, testRepo, d, nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := tt.policy.Verify(tt.repo, tt.digest, tt.sigs)
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if v.Signed != tt.signed {
				t.Errorf("Signed = %v, want %v", v.Signed, tt.signed)
			}
			if tt.signed && (v.KeyID != KeyID(&trusted.PublicKey) || v.Identity != testRepo) {
				t.Errorf("Verified = %+v", v)
			}
		})
	}
}

func TestVerifyAllNamesEverySigner(t *testing.T) {
	alice, _ := GenerateKey()
	bob, _ := GenerateKey()
	carol, _ := GenerateKey()
	pems := func(keys ...*ecdsa.PrivateKey) [][]byte {
		var out [][]byte
		for _, k := range keys {
			b, err := MarshalPublicKey(&k.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
		return out
	}
	d := digest.FromString("manifest")
	store := blobs{}
	m := signed(t, alice, testRepo, d, nil, store)
	m = signed(t, bob, "127.0.0.1:5000/team/hello", d, m, store)
	m = signed(t, alice, testRepo, d, m, store) // signed twice by one key: named once
	sigs, err := ParseSignatures(m, store.fetch)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		keys  [][]byte
		match bool
		want  []string // key ids, in order
		err   error
	}{
		{"both signers", pems(alice, bob), false, []string{KeyID(&alice.PublicKey), KeyID(&bob.PublicKey)}, nil},
		{"keys given in the other order", pems(bob, alice), false, []string{KeyID(&alice.PublicKey), KeyID(&bob.PublicKey)}, nil},
		{"one of them", pems(bob, carol), false, []string{KeyID(&bob.PublicKey)}, nil},
		{"matching the repository drops bob's", pems(alice, bob), true, []string{KeyID(&alice.PublicKey)}, nil},
		{"none", pems(carol), false, nil, ErrUntrustedSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := LoadTrustPolicy(tt.keys, true)
			if err != nil {
				t.Fatal(err)
			}
			p.MatchRepository = tt.match
			all, err := p.VerifyAll(testRepo, d, sigs)
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			var got []string
			for _, v := range all {
				got = append(got, v.KeyID)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("signers = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLoadTrustPolicy(t *testing.T) {
	if _, err := LoadTrustPolicy(nil, true); err == nil || !strings.Contains(err.Error(), "no public keys") {
		t.Errorf("require without keys: err = %v", err)
	}
	if p, err := LoadTrustPolicy(nil, false); err != nil || p.RequireSignature {
		t.Errorf("lax without keys: %+v, %v", p, err)
	}
	if _, err := LoadTrustPolicy([][]byte{[]byte("junk")}, false); err == nil || !strings.Contains(err.Error(), "key 1") {
		t.Errorf("junk key: err = %v", err)
	}
}

func TestReason(t *testing.T) {
	for err, want := range map[error]string{
		nil:                                 "",
		fmt.Errorf("x: %w", ErrNoSignature): "unsigned",
		fmt.Errorf("x: %w", ErrUntrustedSignature): "untrusted_key",
		fmt.Errorf("x: %w", ErrDigestMismatch):     "digest_mismatch",
		fmt.Errorf("x: %w", ErrIdentityMismatch):   "identity_mismatch",
		fmt.Errorf("x: %w", ErrTamperedLayer):      "tampered_layer",
		fmt.Errorf("x: %w", ErrBadManifest):        "bad_manifest",
		errors.New("connection refused"):           "other",
	} {
		if got := Reason(err); got != want {
			t.Errorf("Reason(%v) = %q, want %q", err, got, want)
		}
	}
}
