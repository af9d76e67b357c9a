package nodecache

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"
)

var testConfig = []byte(`{"manifest":{"app":{"name":"hello"}}}`)

// The config comes with the module: stored, counted, served from the cache and after a
// restart, with the registry down.
func TestConfigKept(t *testing.T) {
	h := newHarness(t, 1<<20)
	a := h.reg.pushConfig(repo, "v1", module("a", 1000), testConfig)
	for i, ref := range []Ref{{Repo: repo, Tag: "v1"}, {Repo: repo, Digest: a.manifest}} {
		e := h.mustGet(ref)
		if e.ConfigDescriptor != a.config || !bytes.Equal(e.Config, testConfig) || !bytes.Equal(e.Wasm, a.wasm) {
			t.Fatalf("get %d: config %+v %q, want %+v %q", i, e.ConfigDescriptor, e.Config, a.config, testConfig)
		}
	}
	want := int64(1000 + len(testConfig))
	if s := h.c.Stats(); s.Bytes != want || s.Entries != 1 {
		t.Errorf("stats %+v, want %d bytes in one entry", s, want)
	}
	if got := blobFiles(t, h.dir); len(got) != 2 {
		t.Errorf("blob files %v, want the layer and the config", got)
	}

	h.reg.set(func(r *fakeRegistry) { r.down = ErrUnavailable })
	h.reopen()
	for _, ref := range []Ref{{Repo: repo, Tag: "v1"}, {Repo: repo, Digest: a.manifest}} {
		e := h.mustGet(ref)
		if !e.FromCache || !bytes.Equal(e.Config, testConfig) {
			t.Errorf("get %s after restart: FromCache=%v config %q", ref, e.FromCache, e.Config)
		}
	}

	// Removing the entry removes both blobs.
	if err := h.c.Remove(a.manifest); err != nil {
		t.Fatal(err)
	}
	if got := blobFiles(t, h.dir); len(got) != 0 {
		t.Errorf("blob files left after Remove: %v", got)
	}
}

// A config that does not match its descriptor is refused like a tampered layer, and the
// module is not even downloaded.
func TestConfigTampered(t *testing.T) {
	tests := []struct {
		name   string
		tamper func([]byte) []byte
		reason string
	}{
		{"different bytes of the same size", func(b []byte) []byte { b[3] ^= 0xff; return b }, ReasonDigestMismatch},
		{"more bytes than the descriptor", func(b []byte) []byte { return append(b, ' ') }, ReasonTamperedLayer},
		{"fewer bytes than the descriptor", func(b []byte) []byte { return b[:len(b)-1] }, ReasonTamperedLayer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, 1<<20)
			a := h.reg.pushConfig(repo, "v1", module("a", 1000), testConfig)
			h.reg.set(func(r *fakeRegistry) { r.tamperCfg = tt.tamper })
			ref := Ref{Repo: repo, Digest: a.manifest}
			_, err := h.get(ref)
			if e := wantCode(t, err, CodeRejected); e.Reason != tt.reason || !strings.Contains(err.Error(), "config") {
				t.Errorf("error %v: reason %q, want %q naming the config", err, e.Reason, tt.reason)
			}
			if got := h.verifyFailures(tt.reason); got != 1 {
				t.Errorf("%s failures = %v, want 1", tt.reason, got)
			}
			if _, fetches := h.reg.counts(); fetches != 0 {
				t.Errorf("layer fetches = %d, want none after the config was refused", fetches)
			}
			if s := h.c.Stats(); s.Entries != 0 || s.Bytes != 0 || len(blobFiles(t, h.dir)) != 0 {
				t.Errorf("stats %+v, files %v: something was stored", s, blobFiles(t, h.dir))
			}
			h.reg.set(func(r *fakeRegistry) { r.tamperCfg = nil })
			if e := h.mustGet(ref); !bytes.Equal(e.Config, testConfig) {
				t.Errorf("after the registry is fixed: config %q", e.Config)
			}
		})
	}
}

// A config damaged on disk is never served: the entry is dropped and downloaded again,
// or refused when the registry is down.
func TestConfigCorruptOnDisk(t *testing.T) {
	h := newHarness(t, 1<<20)
	a := h.reg.pushConfig(repo, "v1", module("a", 1000), testConfig)
	ref := Ref{Repo: repo, Digest: a.manifest}
	h.mustGet(ref)
	if err := os.WriteFile(h.c.blobPath(a.config.Digest), bytes.ToUpper(testConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	e := h.mustGet(ref)
	if e.FromCache || !bytes.Equal(e.Config, testConfig) {
		t.Errorf("FromCache=%v config %q; want a fresh download", e.FromCache, e.Config)
	}
	if got := h.verifyFailures(ReasonCorruptCache); got != 1 {
		t.Errorf("corrupt_cache failures = %v, want 1", got)
	}

	h.mustGet(Ref{Repo: repo, Tag: "v1"}) // the tag is known, for the fallback below
	if err := os.Truncate(h.c.blobPath(a.config.Digest), 3); err != nil {
		t.Fatal(err)
	}
	h.reg.set(func(r *fakeRegistry) { r.down = ErrUnavailable })
	_, err := h.get(Ref{Repo: repo, Tag: "v1"})
	wantCode(t, err, CodeUnavailable)
	if got := blobFiles(t, h.dir); len(got) != 0 {
		t.Errorf("blobs left behind: %v", got)
	}
}

// A config missing on disk at Open drops its entry.
func TestConfigMissingAtOpen(t *testing.T) {
	h := newHarness(t, 1<<20)
	a := h.reg.pushConfig(repo, "v1", module("a", 100), testConfig)
	b := h.reg.push(repo, "v2", module("b", 100))
	h.mustGet(Ref{Repo: repo, Digest: a.manifest})
	h.mustGet(Ref{Repo: repo, Digest: b.manifest})
	if err := os.Remove(h.c.blobPath(a.config.Digest)); err != nil {
		t.Fatal(err)
	}
	h.reopen()
	if got := h.cached(); !slices.Equal(got, []string{b.manifest}) {
		t.Errorf("cached %v, want only b", got)
	}
	if s := h.c.Stats(); s.Bytes != 100 {
		t.Errorf("stats %+v, want b's 100 bytes", s)
	}
}

// Pinned reports the pins, cached or not.
func TestPinned(t *testing.T) {
	h := newHarness(t, 1<<20)
	a := h.reg.push(repo, "v1", module("a", 100))
	other := sha256Digest([]byte("not cached"))
	h.c.Pin(a.manifest, true)
	h.c.Pin(other, true)
	want := []string{a.manifest, other}
	slices.Sort(want)
	if got := h.c.Pinned(); !slices.Equal(got, want) {
		t.Errorf("Pinned() = %v, want %v", got, want)
	}
	h.c.Pin(other, false)
	h.reopen()
	if got := h.c.Pinned(); !slices.Equal(got, []string{a.manifest}) {
		t.Errorf("Pinned() after unpin and restart = %v", got)
	}
}
