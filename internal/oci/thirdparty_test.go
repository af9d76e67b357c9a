package oci_test

import (
	"context"
	"crypto/ecdsa"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	ggcr "github.com/google/go-containerregistry/pkg/registry"

	"fermion.dev/fermion/internal/artifact"
)

// TestAnyOCIRegistry pushes, signs and pulls against another OCI registry
// implementation (go-containerregistry's reference registry): Fermion artifacts and
// signatures need nothing registry-specific.
func TestAnyOCIRegistry(t *testing.T) {
	srv := httptest.NewServer(ggcr.New(ggcr.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	c := newClient()
	a := helloArtifact(t, artifact.Meta{})
	ref := parseRef(t, host+"/other/hello:1.0.0")
	desc, err := c.Push(context.Background(), ref, a)
	if err != nil {
		t.Fatal(err)
	}
	k := generateKey(t)
	if err := c.Sign(context.Background(), ref, desc.Digest, k); err != nil {
		t.Fatal(err)
	}
	policy := artifact.TrustPolicy{Keys: []*ecdsa.PublicKey{&k.PublicKey}, RequireSignature: true}
	p, err := c.Pull(context.Background(), ref, policy)
	if err != nil {
		t.Fatal(err)
	}
	if p.ManifestDigest != a.ManifestDigest || string(p.Wasm) != string(a.Layer) || !p.Verified.Signed {
		t.Fatalf("pulled %s signed=%v, want %s", p.ManifestDigest, p.Verified.Signed, a.ManifestDigest)
	}
}
