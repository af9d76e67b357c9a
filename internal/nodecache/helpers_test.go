package nodecache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fakeRegistry stands in for the OCI client another package builds. A manifest digest
// is derived from the layer digest, so the same module pushed to two repositories is
// one manifest, as it would be in a registry.
type fakeRegistry struct {
	mu        sync.Mutex
	arts      map[string]artifact // manifest digest → artifact
	tags      map[string]string   // repo:tag → manifest digest
	down      error               // Resolve and Fetch fail with it
	fetchErr  error               // Fetch alone fails with it (registry lost after Resolve)
	tamper    func([]byte) []byte // changes the layer bytes Fetch serves
	tamperCfg func([]byte) []byte // changes the config bytes Fetch serves
	cut       bool                // Fetch's stream fails halfway with io.ErrUnexpectedEOF
	resolveTo string              // Resolve answers this manifest digest instead
	gate      chan struct{}       // Fetch waits for it to close
	resolves  int
	fetches   int
}

type artifact struct {
	manifest string
	layer    Descriptor
	wasm     []byte
	config   Descriptor // zero: none
	cfg      []byte
}

func newFakeRegistry() *fakeRegistry {
	return &fakeRegistry{arts: map[string]artifact{}, tags: map[string]string{}}
}

// module returns distinct fake module bytes of the given size.
func module(name string, size int) []byte {
	b := bytes.Repeat([]byte{'.'}, size)
	copy(b, "\x00asm\x01\x00\x00\x00"+name)
	return b
}

// push publishes wasm as repo:tag (tag may be empty) and returns the artifact.
func (r *fakeRegistry) push(repo, tag string, wasm []byte) artifact {
	return r.pushConfig(repo, tag, wasm, nil)
}

// pushConfig is push of an artifact with a config blob (nil: none).
func (r *fakeRegistry) pushConfig(repo, tag string, wasm, cfg []byte) artifact {
	r.mu.Lock()
	defer r.mu.Unlock()
	layer := Descriptor{Digest: sha256Digest(wasm), Size: int64(len(wasm))}
	a := artifact{manifest: sha256Digest([]byte("manifest for " + layer.Digest)), layer: layer, wasm: wasm}
	if cfg != nil {
		a.config, a.cfg = Descriptor{Digest: sha256Digest(cfg), Size: int64(len(cfg))}, cfg
		a.manifest = sha256Digest([]byte("manifest for " + layer.Digest + " " + a.config.Digest))
	}
	r.arts[a.manifest] = a
	if tag != "" {
		r.tags[repo+":"+tag] = a.manifest
	}
	return a
}

func (r *fakeRegistry) set(f func(r *fakeRegistry)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

func (r *fakeRegistry) counts() (resolves, fetches int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resolves, r.fetches
}

func (r *fakeRegistry) Resolve(ctx context.Context, ref Ref) (Resolved, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resolves++
	if r.down != nil {
		return Resolved{}, r.down
	}
	md := ref.Digest
	if md == "" {
		md = r.tags[ref.Repo+":"+ref.Tag]
	}
	a, ok := r.arts[md]
	if !ok {
		return Resolved{}, fmt.Errorf("manifest unknown: %s", ref)
	}
	if r.resolveTo != "" {
		md = r.resolveTo
	}
	return Resolved{ManifestDigest: md, Layer: a.layer, Config: a.config}, nil
}

// Fetch serves layers and configs; fetches counts the layers alone.
func (r *fakeRegistry) Fetch(ctx context.Context, ref Ref, layer Descriptor) (io.ReadCloser, error) {
	r.mu.Lock()
	gate, down, fetchErr, tamper, cut := r.gate, r.down, r.fetchErr, r.tamper, r.cut
	var wasm []byte
	for _, a := range r.arts {
		if a.layer.Digest == layer.Digest {
			wasm = a.wasm
		}
	}
	if wasm == nil {
		for _, a := range r.arts {
			if a.config.Digest == layer.Digest {
				wasm, tamper, cut = a.cfg, r.tamperCfg, false
			}
		}
	} else {
		r.fetches++
	}
	r.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	switch {
	case down != nil:
		return nil, down
	case fetchErr != nil:
		return nil, fetchErr
	case wasm == nil:
		return nil, fmt.Errorf("blob unknown: %s", layer.Digest)
	case tamper != nil:
		wasm = tamper(slices.Clone(wasm))
	}
	if cut {
		return io.NopCloser(io.MultiReader(bytes.NewReader(wasm[:len(wasm)/2]), errReader{io.ErrUnexpectedEOF})), nil
	}
	return io.NopCloser(bytes.NewReader(wasm)), nil
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

const testSigner = "ci@fermion.dev"

type fakeVerifier struct {
	mu     sync.Mutex
	reject map[string]error // manifest digest → Verify's error
	calls  int
}

func (v *fakeVerifier) Verify(ctx context.Context, ref Ref, manifestDigest string) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.calls++
	if err := v.reject[manifestDigest]; err != nil {
		return "", err
	}
	return testSigner, nil
}

func (v *fakeVerifier) rejectManifest(md string, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.reject == nil {
		v.reject = map[string]error{}
	}
	v.reject[md] = err
}

func (v *fakeVerifier) count() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.calls
}

// reasonError is a Verifier error with its own metric reason.
type reasonError struct{ reason string }

func (e reasonError) Error() string  { return "signature rejected: " + e.reason }
func (e reasonError) Reason() string { return e.reason }

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// harness is a Cache on a temp dir with a fake registry, verifier and clock.
type harness struct {
	t     *testing.T
	dir   string
	max   int64
	reg   *fakeRegistry
	ver   *fakeVerifier
	clock *fakeClock
	prom  *prometheus.Registry
	c     *Cache
}

func newHarness(t *testing.T, maxBytes int64) *harness {
	t.Helper()
	h := &harness{
		t:     t,
		dir:   t.TempDir(),
		max:   maxBytes,
		reg:   newFakeRegistry(),
		ver:   &fakeVerifier{},
		clock: &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	h.reopen()
	return h
}

// reopen opens a new Cache on the same directory, as a restarted agent would.
func (h *harness) reopen() {
	h.t.Helper()
	h.prom = prometheus.NewRegistry()
	c, err := Open(Config{Dir: h.dir, MaxBytes: h.max, Fetcher: h.reg, Verifier: h.ver,
		Metrics: h.prom, Now: h.clock.Now})
	if err != nil {
		h.t.Fatal(err)
	}
	h.c = c
}

// get advances the clock by a second (so LRU order is the order of calls) and Gets ref.
func (h *harness) get(ref Ref) (*Entry, error) {
	h.t.Helper()
	h.clock.advance(time.Second)
	return h.c.Get(h.t.Context(), ref)
}

func (h *harness) mustGet(ref Ref) *Entry {
	h.t.Helper()
	e, err := h.get(ref)
	if err != nil {
		h.t.Fatalf("Get(%s): %v", ref, err)
	}
	return e
}

// cached returns the sorted manifest digests in the index.
func (h *harness) cached() []string {
	h.c.mu.Lock()
	defer h.c.mu.Unlock()
	var mds []string
	for md := range h.c.entries {
		mds = append(mds, md)
	}
	slices.Sort(mds)
	return mds
}

// metric reads a counter or gauge from the cache's Prometheus registry; labels are
// name, value pairs. A metric never recorded reads 0.
func (h *harness) metric(name string, labels ...string) float64 {
	h.t.Helper()
	mfs, err := h.prom.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	return 0
}

func (h *harness) verifyFailures(reason string) float64 {
	h.t.Helper()
	return h.metric("fermion_artifact_verify_failures_total", "reason", reason)
}

// files lists the regular files under dir, relative and slash-separated.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// blobFiles lists the blob files and any leftover temp files: what a failed download
// must not leave behind.
func blobFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, f := range files(t, dir) {
		if strings.HasPrefix(f, "blobs/") || strings.HasPrefix(f, tmpPrefix) {
			out = append(out, f)
		}
	}
	return out
}

func wantCode(t *testing.T, err error, code Code) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("error %v: want code %q, got %q", err, code, CodeOf(err))
	}
	return e
}
