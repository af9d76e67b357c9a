package oci_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"oras.land/oras-go/v2"

	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/nodecache"
	"fermion.dev/fermion/internal/oci"
)

// nodeCache is a node cache pulling through the client, with its own metrics.
type nodeCache struct {
	*nodecache.Cache
	metrics *prometheus.Registry
}

func openCache(t *testing.T, policy artifact.TrustPolicy) *nodeCache {
	t.Helper()
	src := &oci.CacheSource{Client: newClient(), Policy: policy}
	m := prometheus.NewRegistry()
	c, err := nodecache.Open(nodecache.Config{Dir: t.TempDir(), MaxBytes: 64 << 20, Fetcher: src, Verifier: src, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &nodeCache{c, m}
}

// boundedReasons are the reason label values nodecache and artifact.Reason can produce.
var boundedReasons = map[string]bool{
	"digest_mismatch": true, "tampered_layer": true, "signature": true, "corrupt_cache": true, // nodecache
	"unsigned": true, "untrusted_key": true, "identity_mismatch": true, "bad_manifest": true, "other": true, // artifact.Reason
}

// verifyFailures returns fermion_artifact_verify_failures_total by reason, leaving out
// zeros. It fails the test on a reason outside boundedReasons.
func (c *nodeCache) verifyFailures(t *testing.T) map[string]float64 {
	t.Helper()
	mfs, err := c.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "fermion_artifact_verify_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && !boundedReasons[l.GetValue()] {
					t.Errorf("verify failures counted under an unbounded reason %q", l.GetValue())
				}
				if l.GetName() == "reason" && m.GetCounter().GetValue() != 0 {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// getFails checks that Get refuses ref with code (and reason, when code is rejected),
// returns no entry and caches nothing.
func (c *nodeCache) getFails(t *testing.T, ref nodecache.Ref, code nodecache.Code, reason string) {
	t.Helper()
	before := c.Stats().Entries
	e, err := c.Get(context.Background(), ref)
	if e != nil {
		t.Fatalf("get %s returned an entry (signer %q, %d bytes) with err %v", ref, e.Signer, len(e.Wasm), err)
	}
	if nodecache.CodeOf(err) != code {
		t.Fatalf("get %s: %v (code %q); want code %q", ref, err, nodecache.CodeOf(err), code)
	}
	var ne *nodecache.Error
	if errors.As(err, &ne) && code == nodecache.CodeRejected && ne.Reason != reason {
		t.Fatalf("get %s: refused with reason %q, want %q: %v", ref, ne.Reason, reason, err)
	}
	if s := c.Stats(); s.Entries != before {
		t.Fatalf("%d entries cached after a refusal, %d before", s.Entries, before)
	}
	t.Logf("refused: %v", err)
}

func cacheRef(host, repo, tag string) nodecache.Ref {
	return nodecache.Ref{Repo: host + "/" + repo, Tag: tag}
}

func TestCacheGetSigned(t *testing.T) {
	reg := startRegistry(t)
	cl := newClient()
	key := generateKey(t)
	a := helloArtifact(t, artifact.Meta{})
	byTag, _ := pushed(t, cl, reg.host, "acme/hello", "1.0.0", a)
	sign(t, cl, byTag, a.ManifestDigest, key)
	c := openCache(t, requireKeys(key))
	ctx := context.Background()

	ref := cacheRef(reg.host, "acme/hello", "1.0.0")
	for i, want := range []bool{false, true} {
		e, err := c.Get(ctx, ref)
		if err != nil {
			t.Fatalf("get %d: %v", i+1, err)
		}
		if e.FromCache != want || e.Stale || e.Signer != artifact.KeyID(&key.PublicKey) ||
			e.ManifestDigest != a.ManifestDigest.String() || e.Layer.Digest != a.LayerDigest.String() || !bytes.Equal(e.Wasm, a.Layer) ||
			e.ConfigDescriptor.Digest != a.ConfigDigest.String() || !bytes.Equal(e.Config, a.Config) {
			t.Fatalf("get %d: fromCache=%v stale=%v signer=%q manifest=%s layer=%s (%d bytes); want fromCache=%v signer %s manifest %s",
				i+1, e.FromCache, e.Stale, e.Signer, e.ManifestDigest, e.Layer.Digest, len(e.Wasm), want, artifact.KeyID(&key.PublicKey), a.ManifestDigest)
		}
	}
	e, err := c.Get(ctx, nodecache.Ref{Repo: ref.Repo, Digest: a.ManifestDigest.String()})
	if err != nil || !e.FromCache {
		t.Fatalf("get by digest: %v, %+v", err, e)
	}
	if f := c.verifyFailures(t); len(f) != 0 {
		t.Fatalf("verify failures counted: %v", f)
	}
}

// Refusals through the cache: each is counted under its reason and nothing is served.
func TestCacheRefusesAndCounts(t *testing.T) {
	p := newTamperProxy(t, startRegistry(t))
	cl := newClient()
	trusted, other := generateKey(t), generateKey(t)
	a := helloArtifact(t, artifact.Meta{})
	signedRef, _ := pushed(t, cl, p.host, "acme/signed", "1.0.0", a)
	sign(t, cl, signedRef, a.ManifestDigest, trusted)
	otherRef, _ := pushed(t, cl, p.host, "acme/other", "1.0.0", a)
	sign(t, cl, otherRef, a.ManifestDigest, other)
	pushed(t, cl, p.host, "acme/unsigned", "1.0.0", a)
	// acme/copied carries acme/other's signature manifest: other's signature verifies
	// but names acme/other.
	copiedRef, _ := pushed(t, cl, p.host, "acme/copied", "1.0.0", a)
	sigTag := artifact.SignatureTag(a.ManifestDigest)
	if _, err := oras.Copy(context.Background(), orasRepo(t, otherRef), sigTag, orasRepo(t, copiedRef), sigTag, oras.DefaultCopyOptions); err != nil {
		t.Fatal(err)
	}
	b := helloArtifact(t, artifact.Meta{Revision: "b"})
	pushed(t, cl, p.host, "acme/signed", "2.0.0", b)

	tamperBlob := func(digest string, f func([]byte) []byte) func(*http.Response) error {
		return func(resp *http.Response) error {
			if !isGet(resp, "blobs", digest) {
				return nil
			}
			body, err := readBody(resp)
			if err != nil {
				return err
			}
			setBody(resp, f(body))
			return nil
		}
	}
	tamperLayer := func(f func([]byte) []byte) func(*http.Response) error { return tamperBlob(a.LayerDigest.String(), f) }
	tamperConfig := func(f func([]byte) []byte) func(*http.Response) error { return tamperBlob(a.ConfigDigest.String(), f) }
	tests := []struct {
		name   string
		ref    nodecache.Ref
		tamper func(*http.Response) error
		policy artifact.TrustPolicy
		reason string
	}{
		{name: "layer with a flipped byte", ref: cacheRef(p.host, "acme/signed", "1.0.0"), tamper: tamperLayer(flipByte), reason: "digest_mismatch"},
		{name: "truncated layer", ref: cacheRef(p.host, "acme/signed", "1.0.0"),
			tamper: tamperLayer(func(b []byte) []byte { return b[:len(b)/2] }), reason: "tampered_layer"},
		{name: "extended layer", ref: cacheRef(p.host, "acme/signed", "1.0.0"),
			tamper: tamperLayer(func(b []byte) []byte { return append(b, 0) }), reason: "tampered_layer"},
		{name: "config with a flipped byte", ref: cacheRef(p.host, "acme/signed", "1.0.0"), tamper: tamperConfig(flipByte), reason: "digest_mismatch"},
		{name: "truncated config", ref: cacheRef(p.host, "acme/signed", "1.0.0"),
			tamper: tamperConfig(func(b []byte) []byte { return b[:len(b)/2] }), reason: "tampered_layer"},
		{name: "config granting more", ref: cacheRef(p.host, "acme/signed", "1.0.0"),
			tamper: tamperConfig(func(b []byte) []byte {
				return bytes.Replace(b, []byte(`"allowed_outbound_hosts":[]`), []byte(`"allowed_outbound_hosts":["*"]`), 1)
			}), reason: "tampered_layer"},
		{name: "manifest other than the digest asked for",
			ref: nodecache.Ref{Repo: p.host + "/acme/signed", Digest: a.ManifestDigest.String()},
			tamper: func(resp *http.Response) error {
				if !isGet(resp, "manifests", a.ManifestDigest.String()) {
					return nil
				}
				if _, err := readBody(resp); err != nil {
					return err
				}
				setBody(resp, b.Manifest)
				return nil
			},
			reason: "digest_mismatch"},
		{name: "signed by an untrusted key", ref: cacheRef(p.host, "acme/other", "1.0.0"), reason: "untrusted_key"},
		{name: "unsigned", ref: cacheRef(p.host, "acme/unsigned", "1.0.0"), reason: "unsigned"},
		{name: "signature names another repository, repositories matched", ref: cacheRef(p.host, "acme/copied", "1.0.0"),
			policy: matching(requireKeys(other)), reason: "identity_mismatch"},
	}
	// Without matching repositories, the copy verifies: the signature binds the digest.
	t.Run("signature names another repository", func(t *testing.T) {
		c := openCache(t, requireKeys(other))
		e, err := c.Get(context.Background(), cacheRef(p.host, "acme/copied", "1.0.0"))
		if err != nil || e.Signer != artifact.KeyID(&other.PublicKey) {
			t.Fatalf("get of a copy with its signature: %v, %+v", err, e)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p.set(tt.tamper)
			t.Cleanup(func() { p.set(nil) })
			policy := tt.policy
			if policy.Keys == nil {
				policy = requireKeys(trusted)
			}
			c := openCache(t, policy)
			c.getFails(t, tt.ref, nodecache.CodeRejected, tt.reason)
			if got := c.verifyFailures(t); len(got) != 1 || got[tt.reason] != 1 {
				t.Fatalf("verify failures %v, want {%s: 1}", got, tt.reason)
			}
		})
	}
}

// With the registry gone, a tag already cached is served stale; a digest already cached
// is served as is; anything else is unavailable.
func TestCacheServesStaleWhenRegistryDown(t *testing.T) {
	reg := startRegistry(t)
	p := newTamperProxy(t, reg)
	cl := newClient()
	key := generateKey(t)
	a := helloArtifact(t, artifact.Meta{})
	ref, _ := pushed(t, cl, p.host, "acme/hello", "stable", a)
	sign(t, cl, ref, a.ManifestDigest, key)
	c := openCache(t, requireKeys(key))
	ctx := context.Background()
	stable := cacheRef(p.host, "acme/hello", "stable")
	if _, err := c.Get(ctx, stable); err != nil {
		t.Fatal(err)
	}
	signer := artifact.KeyID(&key.PublicKey)

	// check expects what the cache serves while the registry cannot answer (at all when
	// down, or not with a module).
	check := func(t *testing.T, down bool) {
		t.Helper()
		e, err := c.Get(ctx, stable)
		if err != nil {
			t.Fatalf("get %s: %v", stable, err)
		}
		if !e.Stale || !e.FromCache || e.ManifestDigest != a.ManifestDigest.String() || e.Signer != signer || !bytes.Equal(e.Wasm, a.Layer) {
			t.Fatalf("got stale=%v fromCache=%v manifest %s signer %q; want the cached %s, stale", e.Stale, e.FromCache, e.ManifestDigest, e.Signer, a.ManifestDigest)
		}
		e, err = c.Get(ctx, nodecache.Ref{Repo: stable.Repo, Digest: a.ManifestDigest.String()})
		if err != nil || e.Stale || !e.FromCache {
			t.Fatalf("get by cached digest: %v, %+v", err, e)
		}
		if !down {
			return
		}
		for _, ref := range []nodecache.Ref{cacheRef(p.host, "acme/hello", "other"), cacheRef(p.host, "acme/else", "stable")} {
			c.getFails(t, ref, nodecache.CodeUnavailable, "")
		}
	}

	t.Run("registry dies while sending a new version", func(t *testing.T) {
		b := helloArtifact(t, artifact.Meta{Revision: "b"})
		ref, _ := pushed(t, cl, p.host, "acme/hello", "stable", b)
		sign(t, cl, ref, b.ManifestDigest, key)
		p.set(func(resp *http.Response) error {
			if isGet(resp, "blobs", b.LayerDigest.String()) {
				return cutHalfway(resp)
			}
			return nil
		})
		defer p.set(nil)
		check(t, false)
		c.getFails(t, nodecache.Ref{Repo: stable.Repo, Digest: b.ManifestDigest.String()}, nodecache.CodeUnavailable, "")
	})
	t.Run("registry shutting down", func(t *testing.T) {
		reg.reg.Close() // answers 503 from now on
		check(t, true)
	})
	t.Run("registry unreachable", func(t *testing.T) {
		p.srv.Close()
		check(t, true)
	})
	if f := c.verifyFailures(t); len(f) != 0 {
		t.Fatalf("an unreachable registry counted verify failures: %v", f)
	}
}

func matching(p artifact.TrustPolicy) artifact.TrustPolicy {
	p.MatchRepository = true
	return p
}
