package nodecache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
)

const repo = "acme/hello"

func TestGetHitMiss(t *testing.T) {
	type step struct {
		ref       func(a artifact) Ref
		fromCache bool
	}
	byTag := func(a artifact) Ref { return Ref{Repo: repo, Tag: "v1"} }
	byDigest := func(a artifact) Ref { return Ref{Repo: repo, Digest: a.manifest} }
	tests := []struct {
		name                      string
		steps                     []step
		resolves, fetches, checks int // registry and Verifier calls
		hits, misses              float64
	}{
		{"digest ref is downloaded once, then served without the registry",
			[]step{{byDigest, false}, {byDigest, true}, {byDigest, true}}, 1, 1, 1, 2, 1},
		{"tag ref is resolved every time, downloaded once",
			[]step{{byTag, false}, {byTag, true}}, 2, 1, 1, 1, 1},
		{"digest ref after tag ref needs no registry",
			[]step{{byTag, false}, {byDigest, true}}, 1, 1, 1, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, 1<<20)
			a := h.reg.push(repo, "v1", module("hello", 1000))
			for i, s := range tt.steps {
				e := h.mustGet(s.ref(a))
				if e.FromCache != s.fromCache || e.Stale {
					t.Errorf("step %d: FromCache=%v Stale=%v, want FromCache=%v", i, e.FromCache, e.Stale, s.fromCache)
				}
				if !bytes.Equal(e.Wasm, a.wasm) || e.ManifestDigest != a.manifest || e.Layer != a.layer || e.Signer != testSigner || e.Ref != s.ref(a) {
					t.Errorf("step %d: entry %+v does not describe the pushed artifact", i, e)
				}
			}
			resolves, fetches := h.reg.counts()
			if resolves != tt.resolves || fetches != tt.fetches || h.ver.count() != tt.checks {
				t.Errorf("resolves, fetches, verifies = %d, %d, %d; want %d, %d, %d",
					resolves, fetches, h.ver.count(), tt.resolves, tt.fetches, tt.checks)
			}
			if hits, misses := h.metric("fermion_artifact_cache_hits_total"), h.metric("fermion_artifact_cache_misses_total"); hits != tt.hits || misses != tt.misses {
				t.Errorf("hits, misses = %v, %v; want %v, %v", hits, misses, tt.hits, tt.misses)
			}
			if got := h.metric("fermion_artifact_cache_bytes"); got != 1000 {
				t.Errorf("cache bytes gauge = %v, want 1000", got)
			}
		})
	}
}

func TestGetInvalidRef(t *testing.T) {
	h := newHarness(t, 1<<20)
	for _, ref := range []Ref{
		{Tag: "v1"},
		{Repo: repo},
		{Repo: repo, Digest: "sha256:../../etc/passwd"},
		{Repo: repo, Digest: "sha256:ABC"},
	} {
		_, err := h.get(ref)
		wantCode(t, err, CodeInvalid)
	}
}

func TestRestart(t *testing.T) {
	h := newHarness(t, 1<<20)
	a := h.reg.push(repo, "v1", module("a", 100))
	b := h.reg.push(repo, "v2", module("b", 200))
	h.mustGet(Ref{Repo: repo, Tag: "v1"})
	h.mustGet(Ref{Repo: repo, Tag: "v2"})
	h.c.Pin(a.manifest, true)
	before := h.c.Stats()

	h.reg.set(func(r *fakeRegistry) { r.down = ErrUnavailable })
	h.reopen()
	if got := h.c.Stats(); got != before {
		t.Fatalf("stats after restart %+v, want %+v", got, before)
	}
	e := h.mustGet(Ref{Repo: repo, Digest: a.manifest})
	if !e.FromCache || e.Stale || e.Signer != testSigner || !bytes.Equal(e.Wasm, a.wasm) {
		t.Errorf("digest ref after restart: %+v", e)
	}
	e = h.mustGet(Ref{Repo: repo, Tag: "v2"})
	if !e.Stale || e.ManifestDigest != b.manifest {
		t.Errorf("tag ref after restart with the registry down: Stale=%v manifest=%s, want stale %s", e.Stale, e.ManifestDigest, b.manifest)
	}
	if h.ver.count() != 2 {
		t.Errorf("Verify called %d times, want 2: the recorded verification survives restarts", h.ver.count())
	}

	// A lost blob, an interrupted download and a blob the index never named.
	if err := os.Remove(h.c.blobPath(b.layer.Digest)); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{tmpPrefix + "blob-123", tmpPrefix + "index.json-456", "blobs/sha256/" + strings.Repeat("ab", 32)} {
		if err := os.WriteFile(filepath.Join(h.dir, f), []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h.reopen()
	if got := h.cached(); !slices.Equal(got, []string{a.manifest}) {
		t.Errorf("cached after losing b's blob: %v, want only a", got)
	}
	want := []string{"blobs/sha256/" + strings.TrimPrefix(a.layer.Digest, "sha256:"), indexName}
	if got := files(t, h.dir); !slices.Equal(got, want) {
		t.Errorf("files after reopen: %v, want %v", got, want)
	}
	if s := h.c.Stats(); s.Pinned != 1 || s.Bytes != 100 {
		t.Errorf("stats after reopen %+v, want a alone, pinned", s)
	}
}

func TestOpenUnreadableIndex(t *testing.T) {
	h := newHarness(t, 1<<20)
	h.reg.push(repo, "v1", module("a", 100))
	h.mustGet(Ref{Repo: repo, Tag: "v1"})
	if err := os.WriteFile(filepath.Join(h.dir, indexName), []byte(`{"version":1,"entries":[`), 0o600); err != nil {
		t.Fatal(err)
	}
	h.reopen()
	if s := h.c.Stats(); s.Entries != 0 || s.Bytes != 0 {
		t.Errorf("stats %+v, want empty", s)
	}
	if got := files(t, h.dir); !slices.Equal(got, []string{indexName + corruptSuffix}) {
		t.Errorf("files %v, want only the set-aside index", got)
	}
	if e := h.mustGet(Ref{Repo: repo, Tag: "v1"}); e.FromCache {
		t.Error("served from a cache whose index was unreadable")
	}
}

func TestCorruptCacheFile(t *testing.T) {
	tests := []struct {
		name    string
		damage  func(path string) error
		counted float64 // corrupt_cache failures
	}{
		{"flipped byte", func(p string) error {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b[len(b)/2] ^= 0x01
			return os.WriteFile(p, b, 0o600)
		}, 1},
		{"truncated", func(p string) error { return os.Truncate(p, 10) }, 1},
		{"grown", func(p string) error {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.Write([]byte{0})
			return err
		}, 1},
		{"deleted", os.Remove, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, 1<<20)
			a := h.reg.push(repo, "v1", module("a", 1000))
			ref := Ref{Repo: repo, Digest: a.manifest}
			h.mustGet(ref)
			if err := tt.damage(h.c.blobPath(a.layer.Digest)); err != nil {
				t.Fatal(err)
			}
			e := h.mustGet(ref)
			if e.FromCache || !bytes.Equal(e.Wasm, a.wasm) {
				t.Errorf("FromCache=%v, good bytes=%v; want a fresh download of the right bytes", e.FromCache, bytes.Equal(e.Wasm, a.wasm))
			}
			if _, fetches := h.reg.counts(); fetches != 2 {
				t.Errorf("fetches = %d, want 2", fetches)
			}
			if got := h.verifyFailures(ReasonCorruptCache); got != tt.counted {
				t.Errorf("corrupt_cache failures = %v, want %v", got, tt.counted)
			}
			if e := h.mustGet(ref); !e.FromCache || !bytes.Equal(e.Wasm, a.wasm) {
				t.Errorf("the re-downloaded copy is not served from the cache")
			}
		})
	}
}

// A corrupt file must not be served even when the registry is down and it is all there is.
func TestCorruptCacheFileRegistryDown(t *testing.T) {
	h := newHarness(t, 1<<20)
	a := h.reg.push(repo, "v1", module("a", 1000))
	h.mustGet(Ref{Repo: repo, Tag: "v1"})
	if err := os.Truncate(h.c.blobPath(a.layer.Digest), 999); err != nil {
		t.Fatal(err)
	}
	h.reg.set(func(r *fakeRegistry) { r.down = ErrUnavailable })
	_, err := h.get(Ref{Repo: repo, Tag: "v1"})
	wantCode(t, err, CodeUnavailable)
	if got := h.verifyFailures(ReasonCorruptCache); got != 1 {
		t.Errorf("corrupt_cache failures = %v, want 1", got)
	}
	if got := blobFiles(t, h.dir); len(got) != 0 {
		t.Errorf("corrupt blob left behind: %v", got)
	}
	if got := h.metric("fermion_artifact_cache_bytes"); got != 0 {
		t.Errorf("cache bytes gauge = %v, want 0", got)
	}
}

func TestTamperedDownload(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(r *fakeRegistry, a artifact)
		reason string
	}{
		{"different bytes of the same size", func(r *fakeRegistry, a artifact) {
			r.tamper = func(b []byte) []byte { b[500] ^= 0xff; return b }
		}, ReasonDigestMismatch},
		{"more bytes than the descriptor", func(r *fakeRegistry, a artifact) {
			r.tamper = func(b []byte) []byte { return append(b, "evil"...) }
		}, ReasonTamperedLayer},
		{"fewer bytes than the descriptor", func(r *fakeRegistry, a artifact) {
			r.tamper = func(b []byte) []byte { return b[:len(b)-1] }
		}, ReasonTamperedLayer},
		{"digest ref resolved to another manifest", func(r *fakeRegistry, a artifact) {
			r.resolveTo = sha256Digest([]byte("another manifest"))
		}, ReasonDigestMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, 1<<20)
			a := h.reg.push(repo, "v1", module("a", 1000))
			ref := Ref{Repo: repo, Digest: a.manifest}
			h.reg.set(func(r *fakeRegistry) { tt.tamper(r, a) })
			_, err := h.get(ref)
			if e := wantCode(t, err, CodeRejected); e.Reason != tt.reason {
				t.Errorf("reason %q, want %q (%v)", e.Reason, tt.reason, err)
			}
			if tt.reason == ReasonTamperedLayer && !strings.Contains(err.Error(), "tampered") {
				t.Errorf("error %q does not say tampered", err)
			}
			if got := h.verifyFailures(tt.reason); got != 1 {
				t.Errorf("%s failures = %v, want 1", tt.reason, got)
			}
			if s := h.c.Stats(); s.Entries != 0 || s.Bytes != 0 {
				t.Errorf("stats %+v: something was stored", s)
			}
			if got := blobFiles(t, h.dir); len(got) != 0 {
				t.Errorf("files left behind: %v", got)
			}
			// Nothing was poisoned: the honest registry's bytes are taken.
			h.reg.set(func(r *fakeRegistry) { r.tamper, r.resolveTo = nil, "" })
			if e := h.mustGet(ref); e.FromCache || !bytes.Equal(e.Wasm, a.wasm) {
				t.Errorf("after the registry is fixed: FromCache=%v", e.FromCache)
			}
		})
	}
}

func TestSignatureFailure(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		reason string
	}{
		{"plain error", errors.New("no valid signature"), ReasonSignature},
		{"verifier's own reason", fmt.Errorf("check: %w", reasonError{"untrusted_signer"}), "untrusted_signer"},
		{"malformed reason falls back", reasonError{"Not A Label!"}, ReasonSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, 1<<20)
			a := h.reg.push(repo, "v1", module("a", 1000))
			h.ver.rejectManifest(a.manifest, tt.err)
			_, err := h.get(Ref{Repo: repo, Tag: "v1"})
			if e := wantCode(t, err, CodeRejected); e.Reason != tt.reason || !errors.Is(err, tt.err) {
				t.Errorf("error %v: reason %q, want %q wrapping the verifier's error", err, e.Reason, tt.reason)
			}
			if got := h.verifyFailures(tt.reason); got != 1 {
				t.Errorf("%s failures = %v, want 1", tt.reason, got)
			}
			if _, fetches := h.reg.counts(); fetches != 0 {
				t.Errorf("fetches = %d: an unverified manifest's layer was downloaded", fetches)
			}
			if s := h.c.Stats(); s.Entries != 0 || len(blobFiles(t, h.dir)) != 0 {
				t.Errorf("stats %+v: something was stored", s)
			}
		})
	}
}

// Verification is per repository: a manifest cached through one repository is verified
// again before it is served for another, and refused there if the policy says so.
func TestVerifyPerRepository(t *testing.T) {
	h := newHarness(t, 1<<20)
	wasm := module("shared", 1000)
	a := h.reg.push("acme/one", "v1", wasm)
	h.reg.push("acme/two", "v1", wasm)
	h.mustGet(Ref{Repo: "acme/one", Digest: a.manifest})

	e := h.mustGet(Ref{Repo: "acme/two", Digest: a.manifest})
	if !e.FromCache || h.ver.count() != 2 {
		t.Errorf("FromCache=%v after %d Verify calls; want a cache hit verified for the second repository", e.FromCache, h.ver.count())
	}
	h.mustGet(Ref{Repo: "acme/two", Digest: a.manifest})
	if h.ver.count() != 2 {
		t.Errorf("Verify called %d times, want the second repository's verdict recorded", h.ver.count())
	}

	h.ver.rejectManifest(a.manifest, errors.New("not signed for acme/three"))
	_, err := h.get(Ref{Repo: "acme/three", Digest: a.manifest})
	wantCode(t, err, CodeRejected)
	if e := h.mustGet(Ref{Repo: "acme/one", Digest: a.manifest}); !e.FromCache {
		t.Error("a refusal for one repository dropped the entry of another")
	}
}

func TestRegistryUnreachable(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		stale bool // served from the cache; otherwise the error is returned
	}{
		{"fetcher says unavailable", fmt.Errorf("GET /v2/: %w", ErrUnavailable), true},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"deadline", fmt.Errorf("resolve: %w", context.DeadlineExceeded), true},
		{"registry answers no", errors.New("manifest unknown"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, 1<<20)
			h.reg.push(repo, "v1", module("old", 100))
			h.mustGet(Ref{Repo: repo, Tag: "v1"})
			newer := h.reg.push(repo, "v1", module("new", 100)) // the tag moves
			h.mustGet(Ref{Repo: repo, Tag: "v1"})
			h.reg.push(repo, "v1", module("newest", 100)) // and moves again, unseen
			h.reg.push(repo, "v2", module("uncached", 100))
			h.reg.set(func(r *fakeRegistry) { r.down = tt.err })

			e, err := h.get(Ref{Repo: repo, Tag: "v1"})
			if !tt.stale {
				if err == nil || CodeOf(err) == CodeUnavailable {
					t.Fatalf("error %v, want the registry's refusal", err)
				}
				if got := h.metric("fermion_artifact_cache_stale_served_total"); got != 0 {
					t.Errorf("stale served = %v, want 0", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !e.Stale || !e.FromCache || e.ManifestDigest != newer.manifest || !bytes.Equal(e.Wasm, newer.wasm) {
				t.Errorf("Stale=%v FromCache=%v manifest=%s; want the newest cached version %s, stale",
					e.Stale, e.FromCache, e.ManifestDigest, newer.manifest)
			}
			if got := h.metric("fermion_artifact_cache_stale_served_total"); got != 1 {
				t.Errorf("stale served = %v, want 1", got)
			}
			_, err = h.get(Ref{Repo: repo, Tag: "v2"})
			wantCode(t, err, CodeUnavailable)
			if !strings.Contains(err.Error(), "registry is unreachable and nothing is cached") || !errors.Is(err, tt.err) {
				t.Errorf("error %q does not say the registry is unreachable and nothing is cached", err)
			}
			e = h.mustGet(Ref{Repo: repo, Digest: newer.manifest})
			if e.Stale || !e.FromCache {
				t.Errorf("digest ref: Stale=%v FromCache=%v; a digest is never stale", e.Stale, e.FromCache)
			}
		})
	}
}

// The registry answers Resolve, then goes away before the new version comes down: the
// previous version of the tag is served, and nothing of the new one is kept.
func TestRegistryLostAfterResolve(t *testing.T) {
	tests := []struct {
		name string
		lose func(r *fakeRegistry)
	}{
		{"Fetch fails", func(r *fakeRegistry) { r.fetchErr = ErrUnavailable }},
		{"stream cut halfway", func(r *fakeRegistry) { r.cut = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, 1<<20)
			old := h.reg.push(repo, "v1", module("old", 1000))
			h.mustGet(Ref{Repo: repo, Tag: "v1"})
			h.reg.push(repo, "v1", module("new", 1000))
			h.reg.set(tt.lose)
			e := h.mustGet(Ref{Repo: repo, Tag: "v1"})
			if !e.Stale || e.ManifestDigest != old.manifest {
				t.Errorf("Stale=%v manifest=%s; want the old version %s, stale", e.Stale, e.ManifestDigest, old.manifest)
			}
			if got := blobFiles(t, h.dir); len(got) != 1 {
				t.Errorf("blob files %v, want the old version's alone", got)
			}
		})
	}
}

func TestEvictionLRUOrder(t *testing.T) {
	h := newHarness(t, 300)
	var arts []artifact
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		arts = append(arts, h.reg.push(repo, name, module(name, 100)))
	}
	get := func(i int) { h.mustGet(Ref{Repo: repo, Digest: arts[i].manifest}) }
	mds := func(is ...int) []string {
		var out []string
		for _, i := range is {
			out = append(out, arts[i].manifest)
		}
		slices.Sort(out)
		return out
	}
	get(0)
	get(1)
	get(2)
	get(0) // a is now more recent than b and c
	get(3)
	if got := h.cached(); !slices.Equal(got, mds(0, 2, 3)) {
		t.Fatalf("after d: %v, want a, c, d (b least recently used)", got)
	}
	get(4)
	if got := h.cached(); !slices.Equal(got, mds(0, 3, 4)) {
		t.Fatalf("after e: %v, want a, d, e", got)
	}
	if got := h.metric("fermion_artifact_cache_evictions_total"); got != 2 {
		t.Errorf("evictions = %v, want 2", got)
	}
	if s := h.c.Stats(); s.Bytes != 300 || len(blobFiles(t, h.dir)) != 3 {
		t.Errorf("stats %+v with %d blob files; want 300 bytes in 3", s, len(blobFiles(t, h.dir)))
	}
	// LRU order, hits included, survives a restart.
	get(0)
	if err := h.c.Close(); err != nil {
		t.Fatal(err)
	}
	h.reopen()
	get(2)
	if got := h.cached(); !slices.Equal(got, mds(0, 2, 4)) {
		t.Errorf("after a, restart and c: %v, want a, c, e (d least recently used)", got)
	}
}

func TestPinnedNeverEvicted(t *testing.T) {
	h := newHarness(t, 300)
	var arts []artifact
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		arts = append(arts, h.reg.push(repo, name, module(name, 100)))
	}
	get := func(i int) { h.mustGet(Ref{Repo: repo, Digest: arts[i].manifest}) }
	get(0)
	h.c.Pin(arts[0].manifest, true)
	h.c.Pin(arts[3].manifest, true) // assigned before it is cached
	get(1)
	get(2)
	get(3)
	get(4)
	got := h.cached()
	for _, i := range []int{0, 3} {
		if !slices.Contains(got, arts[i].manifest) {
			t.Errorf("pinned %s evicted; cached: %v", arts[i].manifest, got)
		}
	}
	if s := h.c.Stats(); s.Pinned != 2 || s.PinnedBytes != 200 || s.Entries != 3 {
		t.Errorf("stats %+v, want 3 entries, 2 pinned", s)
	}
}

func TestCacheFull(t *testing.T) {
	h := newHarness(t, 300)
	var arts []artifact
	for _, name := range []string{"a", "b", "c", "d"} {
		arts = append(arts, h.reg.push(repo, name, module(name, 100)))
	}
	for _, a := range arts[:3] {
		h.mustGet(Ref{Repo: repo, Digest: a.manifest})
		h.c.Pin(a.manifest, true)
	}
	_, err := h.get(Ref{Repo: repo, Digest: arts[3].manifest})
	wantCode(t, err, CodeCacheFull)
	if !strings.Contains(err.Error(), "cache full: 300 bytes pinned of 300; unpin versions or raise the cache size") {
		t.Errorf("error %q", err)
	}
	if _, fetches := h.reg.counts(); fetches != 3 {
		t.Errorf("fetches = %d: downloaded what could not be kept", fetches)
	}
	if s := h.c.Stats(); s.Entries != 3 || h.metric("fermion_artifact_cache_evictions_total") != 0 {
		t.Errorf("stats %+v: a pinned entry was evicted", s)
	}

	h.c.Pin(arts[0].manifest, false)
	h.mustGet(Ref{Repo: repo, Digest: arts[3].manifest})
	if got := h.cached(); slices.Contains(got, arts[0].manifest) || len(got) != 3 {
		t.Errorf("after unpinning a: %v, want b, c, d", got)
	}
}

func TestArtifactLargerThanCache(t *testing.T) {
	h := newHarness(t, 300)
	h.reg.push(repo, "big", module("big", 301))
	_, err := h.get(Ref{Repo: repo, Tag: "big"})
	wantCode(t, err, CodeTooLarge)
	if !strings.Contains(err.Error(), "artifact of 301 bytes exceeds the cache size 300; raise the cache size") {
		t.Errorf("error %q", err)
	}
	if _, fetches := h.reg.counts(); fetches != 0 {
		t.Errorf("fetches = %d, want 0", fetches)
	}
}

func TestRemove(t *testing.T) {
	h := newHarness(t, 1<<20)
	a := h.reg.push(repo, "v1", module("a", 100))
	h.mustGet(Ref{Repo: repo, Tag: "v1"})
	h.c.Pin(a.manifest, true)
	if err := h.c.Remove(a.manifest); err != nil {
		t.Fatal(err)
	}
	if s := h.c.Stats(); s.Entries != 0 || s.Bytes != 0 || len(blobFiles(t, h.dir)) != 0 {
		t.Errorf("stats %+v after Remove", s)
	}
	if err := h.c.Remove(a.manifest); err != nil {
		t.Errorf("removing what is not cached: %v", err)
	}
	h.mustGet(Ref{Repo: repo, Tag: "v1"})
	if s := h.c.Stats(); s.Pinned != 1 {
		t.Errorf("stats %+v: the pin did not outlive Remove", s)
	}
}

// waiters returns how many Gets wait on the flight for repo and md.
func waiters(c *Cache, repo, md string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := c.flights[flightKey{repo, md}]; f != nil {
		return f.waiters
	}
	return 0
}

func TestConcurrentGetsShareDownload(t *testing.T) {
	h := newHarness(t, 1<<20)
	a := h.reg.push(repo, "v1", module("a", 64<<10))
	gate := make(chan struct{})
	h.reg.set(func(r *fakeRegistry) { r.gate = gate })

	const n = 8
	var wg sync.WaitGroup
	entries := make([]*Entry, n)
	errs := make([]error, n)
	for i := range n {
		ref := Ref{Repo: repo, Digest: a.manifest}
		if i%2 == 1 {
			ref = Ref{Repo: repo, Tag: "v1"}
		}
		wg.Go(func() { entries[i], errs[i] = h.c.Get(t.Context(), ref) })
	}
	fermiontest.WaitFor(t, 5*time.Second, func() error {
		if w := waiters(h.c, repo, a.manifest); w != n {
			return fmt.Errorf("%d of %d Gets waiting on the download", w, n)
		}
		return nil
	})
	close(gate)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Get %d: %v", i, errs[i])
		}
		if !bytes.Equal(entries[i].Wasm, a.wasm) {
			t.Errorf("Get %d: wrong bytes", i)
		}
	}
	if &entries[0].Wasm[0] == &entries[1].Wasm[0] {
		t.Error("callers share one byte slice")
	}
	if _, fetches := h.reg.counts(); fetches != 1 || h.ver.count() != 1 {
		t.Errorf("fetches = %d, verifies = %d; want one download, verified once", fetches, h.ver.count())
	}
}

func TestConcurrentGetCallerGivesUp(t *testing.T) {
	h := newHarness(t, 1<<20)
	a := h.reg.push(repo, "v1", module("a", 1000))
	ref := Ref{Repo: repo, Digest: a.manifest}
	gate := make(chan struct{})
	h.reg.set(func(r *fakeRegistry) { r.gate = gate })

	// The caller that started the download leaves; the one still waiting gets it.
	ctx1, cancel1 := context.WithCancel(t.Context())
	done1 := make(chan error, 1)
	go func() { _, err := h.c.Get(ctx1, ref); done1 <- err }()
	fermiontest.WaitFor(t, 5*time.Second, func() error {
		if waiters(h.c, repo, a.manifest) != 1 {
			return errors.New("first Get not waiting yet")
		}
		return nil
	})
	done2 := make(chan error, 1)
	go func() { _, err := h.c.Get(t.Context(), ref); done2 <- err }()
	fermiontest.WaitFor(t, 5*time.Second, func() error {
		if waiters(h.c, repo, a.manifest) != 2 {
			return errors.New("second Get not waiting yet")
		}
		return nil
	})
	cancel1()
	if err := <-done1; !errors.Is(err, context.Canceled) {
		t.Errorf("first Get: %v, want context.Canceled", err)
	}
	close(gate)
	if err := <-done2; err != nil {
		t.Errorf("second Get: %v", err)
	}

	// When every caller leaves, the download is cancelled and the next Get starts anew.
	b := h.reg.push(repo, "v2", module("b", 1000))
	gate = make(chan struct{})
	h.reg.set(func(r *fakeRegistry) { r.gate = gate })
	ctx3, cancel3 := context.WithCancel(t.Context())
	done3 := make(chan error, 1)
	go func() { _, err := h.c.Get(ctx3, Ref{Repo: repo, Tag: "v2"}); done3 <- err }()
	fermiontest.WaitFor(t, 5*time.Second, func() error {
		if waiters(h.c, repo, b.manifest) != 1 {
			return errors.New("Get not waiting yet")
		}
		return nil
	})
	cancel3()
	if err := <-done3; !errors.Is(err, context.Canceled) {
		t.Errorf("Get: %v, want context.Canceled", err)
	}
	close(gate)
	if e := h.mustGet(Ref{Repo: repo, Tag: "v2"}); !bytes.Equal(e.Wasm, b.wasm) {
		t.Error("wrong bytes after a cancelled download")
	}
}

// Hammer one small cache from many goroutines: downloads, hits, evictions, corruption
// checks and removals interleave; every Get either fails cleanly or returns the right
// bytes. Run with -race.
func TestConcurrentHammer(t *testing.T) {
	h := newHarness(t, 500)
	var arts []artifact
	for i := range 10 {
		arts = append(arts, h.reg.push(repo, fmt.Sprint("t", i), module(fmt.Sprint("m", i), 100)))
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				a := arts[(g*7+i*3)%len(arts)]
				ref := Ref{Repo: repo, Digest: a.manifest}
				if i%3 == 0 {
					ref = Ref{Repo: repo, Tag: fmt.Sprint("t", (g*7+i*3)%len(arts))}
				}
				if i%11 == 0 {
					h.c.Remove(a.manifest)
				}
				e, err := h.c.Get(t.Context(), ref)
				if err != nil {
					t.Errorf("Get(%s): %v", ref, err)
					return
				}
				if !bytes.Equal(e.Wasm, a.wasm) {
					t.Errorf("Get(%s): wrong bytes", ref)
					return
				}
			}
		})
	}
	wg.Wait()
	if s := h.c.Stats(); s.Bytes > 500 {
		t.Errorf("stats %+v: over the bound", s)
	}
}
