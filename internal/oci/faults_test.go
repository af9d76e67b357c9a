package oci_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/opencontainers/go-digest"

	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/oci"
)

// faultSetup is a signed artifact in an honest registry, reached through a proxy that
// the test makes lie.
type faultSetup struct {
	proxy           *tamperProxy
	client          *oci.Client
	art             *artifact.Artifact
	policy          artifact.TrustPolicy
	byTag, byDigest oci.Ref // through the proxy
}

func setupFault(t *testing.T) *faultSetup {
	t.Helper()
	p := newTamperProxy(t, startRegistry(t))
	c := newClient()
	a := helloArtifact(t, artifact.Meta{})
	// Pushed and signed through the proxy: the signature names the repository by the
	// host the client reaches it at.
	byTag, byDigest := pushed(t, c, p.host, "acme/hello", "1.0.0", a)
	key := generateKey(t)
	sign(t, c, byTag, a.ManifestDigest, key)
	return &faultSetup{proxy: p, client: c, art: a, policy: requireKeys(key), byTag: byTag, byDigest: byDigest}
}

// pullFails pulls ref and checks that it fails with want (nil: any error) and returns
// nothing.
func (s *faultSetup) pullFails(t *testing.T, ref oci.Ref, want error) error {
	t.Helper()
	p, err := s.client.Pull(context.Background(), ref, s.policy)
	if p != nil {
		t.Fatalf("pull returned an artifact (%d module bytes) with err %v", len(p.Wasm), err)
	}
	if err == nil || (want != nil && !errors.Is(err, want)) {
		t.Fatalf("pull of %s: %v; want %v", ref, err, want)
	}
	t.Logf("pull refused: %v", err)
	return err
}

// The proxy changes the module blob on its way to the client.
func TestPullTamperedLayer(t *testing.T) {
	s := setupFault(t)
	if _, err := s.client.Pull(context.Background(), s.byTag, s.policy); err != nil {
		t.Fatalf("pull through the honest proxy: %v", err)
	}
	layer := s.art.LayerDigest.String()
	tests := []struct {
		name   string
		tamper func(b []byte, h http.Header) []byte
	}{
		{"flipped byte, registry's headers", func(b []byte, _ http.Header) []byte { return flipByte(b) }},
		{"flipped byte, digest header of the bytes sent", func(b []byte, h http.Header) []byte {
			b = flipByte(b)
			h.Set("Docker-Content-Digest", digest.FromBytes(b).String())
			return b
		}},
		{"flipped byte, no digest header", func(b []byte, h http.Header) []byte {
			h.Del("Docker-Content-Digest")
			return flipByte(b)
		}},
		{"truncated", func(b []byte, _ http.Header) []byte { return b[:len(b)-100] }},
		{"extended", func(b []byte, _ http.Header) []byte { return append(b, "more"...) }},
		{"replaced by another module", func(b []byte, h http.Header) []byte {
			h.Del("Docker-Content-Digest")
			return []byte("\x00asm\x01\x00\x00\x00")
		}},
	}
	for _, tt := range tests {
		for _, ref := range []oci.Ref{s.byTag, s.byDigest} {
			t.Run(tt.name+", "+refKind(ref), func(t *testing.T) {
				s.proxy.set(func(resp *http.Response) error {
					if !isGet(resp, "blobs", layer) {
						return nil
					}
					b, err := readBody(resp)
					if err != nil {
						return err
					}
					setBody(resp, tt.tamper(b, resp.Header))
					return nil
				})
				t.Cleanup(func() { s.proxy.set(nil) })
				s.pullFails(t, ref, artifact.ErrTamperedLayer)
			})
		}
	}
}

// The proxy answers a digest reference with a manifest that has another digest.
func TestPullManifestDigestMismatch(t *testing.T) {
	s := setupFault(t)
	other := helloArtifact(t, artifact.Meta{Revision: "other"})
	want := s.art.ManifestDigest.String()
	tests := []struct {
		name   string
		header func(h http.Header)
	}{
		{"registry's digest header", func(http.Header) {}},
		{"digest header of the bytes sent", func(h http.Header) { h.Set("Docker-Content-Digest", other.ManifestDigest.String()) }},
		{"no digest header", func(h http.Header) { h.Del("Docker-Content-Digest") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.proxy.set(func(resp *http.Response) error {
				if !isGet(resp, "manifests", want) {
					return nil
				}
				if _, err := readBody(resp); err != nil {
					return err
				}
				setBody(resp, other.Manifest)
				tt.header(resp.Header)
				return nil
			})
			t.Cleanup(func() { s.proxy.set(nil) })
			s.pullFails(t, s.byDigest, artifact.ErrDigestMismatch)
			if _, err := s.client.Resolve(context.Background(), s.byDigest); !errors.Is(err, artifact.ErrDigestMismatch) {
				t.Fatalf("resolve: %v", err)
			}
		})
	}
}

// The registry dies halfway through sending the module.
func TestPullRegistryKilledMidLayer(t *testing.T) {
	s := setupFault(t)
	layer := s.art.LayerDigest.String()
	s.proxy.set(func(resp *http.Response) error {
		if isGet(resp, "blobs", layer) {
			return cutHalfway(resp)
		}
		return nil
	})
	for _, ref := range []oci.Ref{s.byTag, s.byDigest} {
		t.Run(refKind(ref), func(t *testing.T) {
			err := s.pullFails(t, ref, nil)
			if errors.Is(err, artifact.ErrTamperedLayer) {
				t.Fatalf("a cut connection is reported as tampering: %v", err)
			}
		})
	}
}

// The proxy serves something that is not a manifest.
func TestPullGarbageManifest(t *testing.T) {
	s := setupFault(t)
	tests := []struct {
		name string
		body string
	}{
		{"not JSON", "{\"schemaVersion\": 2, garbage"},
		{"HTML", "<html><body>502 Bad Gateway</body></html>"},
		{"JSON array", "[1,2,3]"},
		{"empty object", "{}"},
		{"another kind of manifest", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.proxy.set(func(resp *http.Response) error {
				if !isGet(resp, "manifests", "1.0.0") {
					return nil
				}
				if _, err := readBody(resp); err != nil {
					return err
				}
				setBody(resp, []byte(tt.body))
				resp.Header.Set("Docker-Content-Digest", digest.FromString(tt.body).String())
				return nil
			})
			t.Cleanup(func() { s.proxy.set(nil) })
			s.pullFails(t, s.byTag, artifact.ErrBadManifest)
		})
	}
}

func refKind(r oci.Ref) string {
	if r.Digest != "" {
		return "by digest"
	}
	return "by tag"
}
