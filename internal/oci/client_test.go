package oci_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"oras.land/oras-go/v2"

	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/oci"
	"fermion.dev/fermion/internal/registry"
)

func TestPushPullRoundTrip(t *testing.T) {
	reg := startRegistry(t)
	c := newClient()
	a := helloArtifact(t, artifact.Meta{})
	byTag, byDigest := pushed(t, c, reg.host, "acme/hello", "0.1.0", a)

	for _, tt := range []struct {
		name string
		ref  oci.Ref
	}{
		{"tag", byTag},
		{"digest", byDigest},
		{"tag and digest", parseRef(t, byTag.String()+"@"+a.ManifestDigest.String())},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := c.Pull(context.Background(), tt.ref, artifact.TrustPolicy{})
			if err != nil {
				t.Fatal(err)
			}
			if p.ManifestDigest != a.ManifestDigest || !bytes.Equal(p.Manifest, a.Manifest) ||
				!bytes.Equal(p.ConfigBytes, a.Config) || !bytes.Equal(p.Wasm, a.Layer) {
				t.Fatalf("pulled %s (manifest %d B, config %d B, module %d B), pushed %s (%d, %d, %d)",
					p.ManifestDigest, len(p.Manifest), len(p.ConfigBytes), len(p.Wasm),
					a.ManifestDigest, len(a.Manifest), len(a.Config), len(a.Layer))
			}
			if p.Verified.Signed {
				t.Fatalf("unsigned artifact pulled as signed: %+v", p.Verified)
			}
			if p.Parsed.Layer.Digest != a.LayerDigest || p.Parsed.Config.Module.ABI != artifact.ABIReactor {
				t.Fatalf("parsed layer %s abi %q", p.Parsed.Layer.Digest, p.Parsed.Config.Module.ABI)
			}
		})
	}

	t.Run("push again is idempotent", func(t *testing.T) {
		if _, err := c.Push(context.Background(), byTag, a); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("resolve", func(t *testing.T) {
		p, err := c.Resolve(context.Background(), byTag)
		if err != nil {
			t.Fatal(err)
		}
		if p.ManifestDigest != a.ManifestDigest || p.Wasm != nil {
			t.Fatalf("resolve gave %s with %d module bytes; want %s and no module", p.ManifestDigest, len(p.Wasm), a.ManifestDigest)
		}
	})
	t.Run("unknown tag", func(t *testing.T) {
		_, err := c.Pull(context.Background(), parseRef(t, reg.host+"/acme/hello:9.9.9"), artifact.TrustPolicy{})
		if err == nil || !strings.Contains(err.Error(), "9.9.9") {
			t.Fatalf("pull of an unknown tag: %v", err)
		}
	})
}

func TestPullTrustPolicy(t *testing.T) {
	reg := startRegistry(t)
	c := newClient()
	trusted, other := generateKey(t), generateKey(t)
	ctx := context.Background()

	signedRef, signedDigest := pushed(t, c, reg.host, "acme/signed", "1.0.0", helloArtifact(t, artifact.Meta{}))
	sign(t, c, signedRef, signedDigest.Digest, trusted)
	otherRef, otherDigest := pushed(t, c, reg.host, "acme/other", "1.0.0", helloArtifact(t, artifact.Meta{}))
	sign(t, c, otherRef, otherDigest.Digest, other)
	unsignedRef, _ := pushed(t, c, reg.host, "acme/unsigned", "1.0.0", helloArtifact(t, artifact.Meta{}))

	tests := []struct {
		name    string
		ref     oci.Ref
		policy  artifact.TrustPolicy
		wantErr error
		signed  bool
	}{
		{name: "signed by the trusted key", ref: signedRef, policy: requireKeys(trusted), signed: true},
		{name: "signed, by digest", ref: signedDigest, policy: requireKeys(trusted), signed: true},
		{name: "signed by another key", ref: otherRef, policy: requireKeys(trusted), wantErr: artifact.ErrUntrustedSignature},
		{name: "unsigned", ref: unsignedRef, policy: requireKeys(trusted), wantErr: artifact.ErrNoSignature},
		{name: "unsigned, signatures optional", ref: unsignedRef, policy: artifact.TrustPolicy{Keys: requireKeys(trusted).Keys}},
		{name: "another key, signatures optional", ref: otherRef, policy: artifact.TrustPolicy{Keys: requireKeys(trusted).Keys}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := c.Pull(ctx, tt.ref, tt.policy)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || p != nil {
					t.Fatalf("pull = %v, %v; want nothing and %v", p, err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.ref.Name()) {
					t.Fatalf("error does not name the repository: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Verified.Signed != tt.signed {
				t.Fatalf("verified = %+v, want signed=%v", p.Verified, tt.signed)
			}
			if tt.signed && (p.Verified.KeyID != artifact.KeyID(&trusted.PublicKey) || p.Verified.Identity != tt.ref.Name()) {
				t.Fatalf("verified = %+v, want key %s and identity %s", p.Verified, artifact.KeyID(&trusted.PublicKey), tt.ref.Name())
			}
		})
	}

	// A signature binds the manifest digest, as cosign verify --key does: the artifact
	// reached under another name (a copy with its signature manifest, in another
	// repository or registry; the same registry as localhost) verifies, unless the
	// policy matches repositories.
	_, port, err := net.SplitHostPort(reg.host)
	if err != nil {
		t.Fatal(err)
	}
	mirror := startRegistry(t)
	for _, tc := range []struct {
		name string
		ref  oci.Ref
		copy bool
	}{
		{"copied to another repository", parseRef(t, reg.host+"/acme/copied:1.0.0"), true},
		{"copied to another registry", parseRef(t, mirror.host+"/mirror/acme/signed:1.0.0"), true},
		{"same registry as localhost", parseRef(t, "localhost:"+port+"/acme/signed:1.0.0"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.copy {
				if _, err := c.Push(ctx, tc.ref, helloArtifact(t, artifact.Meta{})); err != nil {
					t.Fatal(err)
				}
				sigTag := artifact.SignatureTag(signedDigest.Digest)
				if _, err := oras.Copy(ctx, orasRepo(t, signedRef), sigTag, orasRepo(t, tc.ref), sigTag, oras.DefaultCopyOptions); err != nil {
					t.Fatal(err)
				}
			}
			p, err := c.Pull(ctx, tc.ref, requireKeys(trusted))
			if err != nil {
				t.Fatalf("pull %s: %v", tc.ref, err)
			}
			if p.ManifestDigest != signedDigest.Digest || p.Verified.KeyID != artifact.KeyID(&trusted.PublicKey) || p.Verified.Identity != signedRef.Name() {
				t.Fatalf("pull %s: digest %s, verified %+v", tc.ref, p.ManifestDigest, p.Verified)
			}
			strict := requireKeys(trusted)
			strict.MatchRepository = true
			p, err = c.Pull(ctx, tc.ref, strict)
			if !errors.Is(err, artifact.ErrIdentityMismatch) || p != nil {
				t.Fatalf("pull %s matching repositories = %v, %v; want %v", tc.ref, p, err, artifact.ErrIdentityMismatch)
			}
		})
	}
}

func TestSignTwice(t *testing.T) {
	reg := startRegistry(t)
	c := newClient()
	ctx := context.Background()
	k1, k2, k3 := generateKey(t), generateKey(t), generateKey(t)
	ref, byDigest := pushed(t, c, reg.host, "acme/hello", "1.0.0", helloArtifact(t, artifact.Meta{}))
	d := byDigest.Digest
	sign(t, c, ref, d, k1)
	sign(t, c, ref, d, k2)

	sigs, err := c.Signatures(ctx, ref, d)
	if err != nil {
		t.Fatal(err)
	}
	if len(sigs) != 2 {
		t.Fatalf("%d signatures after signing with two keys, want 2", len(sigs))
	}
	for i, k := range []*ecdsa.PrivateKey{k1, k2} {
		v, err := requireKeys(k).Verify(ref.Name(), d, sigs)
		if err != nil {
			t.Fatalf("key %d: %v", i+1, err)
		}
		if v.KeyID != artifact.KeyID(&k.PublicKey) {
			t.Fatalf("key %d: verified by %s", i+1, v.KeyID)
		}
	}
	for name, policy := range map[string]artifact.TrustPolicy{"first key": requireKeys(k1), "second key": requireKeys(k2), "either": requireKeys(k3, k2)} {
		t.Run(name, func(t *testing.T) {
			p, err := c.Pull(ctx, ref, policy)
			if err != nil {
				t.Fatal(err)
			}
			if !p.Verified.Signed {
				t.Fatalf("verified = %+v", p.Verified)
			}
		})
	}
	if _, err := c.Pull(ctx, ref, requireKeys(k3)); !errors.Is(err, artifact.ErrUntrustedSignature) {
		t.Fatalf("pull with a third key: %v", err)
	}

	t.Run("signing again with the same key appends a signature that verifies", func(t *testing.T) {
		sign(t, c, ref, d, k1)
		sigs, err := c.Signatures(ctx, ref, d)
		if err != nil {
			t.Fatal(err)
		}
		// ECDSA signatures are randomized, so a re-sign is a new signature of the same
		// payload: it is appended, and all of them still verify.
		if len(sigs) != 3 {
			t.Fatalf("%d signatures after a third sign, want 3", len(sigs))
		}
		for _, s := range sigs {
			if _, err := requireKeys(k1, k2).Verify(ref.Name(), d, []artifact.Signature{s}); err != nil {
				t.Fatalf("signature layer %s: %v", s.Layer.Digest, err)
			}
		}
	})
	t.Run("signatures of an unsigned digest", func(t *testing.T) {
		sigs, err := c.Signatures(ctx, ref, digest.FromString("nothing"))
		if err != nil || len(sigs) != 0 {
			t.Fatalf("signatures = %d, %v; want none and no error", len(sigs), err)
		}
	})
}

func TestPullTokens(t *testing.T) {
	reg := startRegistryConfig(t, registry.Config{PushTokens: []string{pushToken}, PullTokens: []string{"pull-token"}})
	c := newClient()
	key := generateKey(t)
	a := helloArtifact(t, artifact.Meta{})
	ref, _ := pushed(t, c, reg.host, "acme/hello", "1.0.0", a)
	sign(t, c, ref, a.ManifestDigest, key)
	ctx := context.Background()

	puller := &oci.Client{Token: "pull-token", HTTPClient: &http.Client{Timeout: 30 * time.Second}}
	p, err := puller.Pull(ctx, ref, requireKeys(key))
	if err != nil {
		t.Fatalf("pull with a pull token: %v", err)
	}
	if !bytes.Equal(p.Wasm, a.Layer) || !p.Verified.Signed {
		t.Fatalf("pulled %d bytes, verified %+v", len(p.Wasm), p.Verified)
	}
	if _, err := puller.Push(ctx, parseRef(t, reg.host+"/acme/hello:2.0.0"), a); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("push with a pull token: %v", err)
	}
	anonymous := &oci.Client{HTTPClient: &http.Client{Timeout: 30 * time.Second}}
	if _, err := anonymous.Pull(ctx, ref, artifact.TrustPolicy{}); err == nil || !strings.Contains(err.Error(), "the registry requires a token") {
		t.Fatalf("anonymous pull: %v", err)
	}
}

// TestLoopbackTLS: a registry on a loopback address that speaks TLS is found to, and
// reached with the client's CA; without the CA the error says why; SetTLS overrides
// what the address suggests.
func TestLoopbackTLS(t *testing.T) {
	plain := startRegistry(t)
	srv := httptest.NewTLSServer(plain.reg)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "https://")
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	a := helloArtifact(t, artifact.Meta{})

	c := &oci.Client{Token: pushToken, RootCAs: roots}
	ref := parseRef(t, host+"/acme/hello:0.1.0")
	if _, err := c.Push(context.Background(), ref, a); err != nil {
		t.Fatalf("push to a loopback TLS registry: %v", err)
	}
	if _, err := c.Pull(context.Background(), ref, artifact.TrustPolicy{}); err != nil {
		t.Fatalf("pull from a loopback TLS registry: %v", err)
	}
	// The plain one beside it is still reached over plain HTTP by the same client.
	if _, err := c.Push(context.Background(), parseRef(t, plain.host+"/acme/hello:0.1.0"), a); err != nil {
		t.Fatalf("push to the plain loopback registry: %v", err)
	}

	untrusting := &oci.Client{HTTPClient: &http.Client{Timeout: 30 * time.Second}}
	_, err := untrusting.Resolve(context.Background(), ref)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("resolve without the CA: %v, want a certificate error", err)
	}

	told := &oci.Client{HTTPClient: &http.Client{Timeout: 30 * time.Second}}
	told.SetTLS(plain.host, true)
	if _, err := told.Resolve(context.Background(), parseRef(t, plain.host+"/acme/hello:0.1.0")); err == nil {
		t.Fatal("told TLS, the client reached a plain registry anyway")
	}
}
