// Package nodecache is the edge node's artifact cache, between the registry and the wasm
// sandbox. It hands out module bytes, and the artifact's config blob with them, only
// once they are verified: the manifest against the node's trust policy (a Verifier), the
// layer and config bytes against their descriptors' size and sha256 when downloaded and
// again on every read from disk. It keeps at most Config.MaxBytes of blobs, evicting the
// least recently used artifacts that are not pinned to this node, survives restarts, and
// when the registry is unreachable serves the newest cached version of a tag, marked
// stale.
package nodecache

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Ref identifies an artifact: a repository plus a tag and/or manifest digest. With a
// Digest, the Tag is ignored: the digest is looked up as is and the registry is asked
// only if it is not cached.
type Ref struct {
	Repo   string
	Tag    string
	Digest string // manifest digest, "sha256:<hex>"
}

func (r Ref) String() string {
	s := r.Repo
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

func (r Ref) validate() error {
	if r.Repo == "" {
		return &Error{Code: CodeInvalid, Msg: "ref has no repository"}
	}
	if r.Tag == "" && r.Digest == "" {
		return &Error{Code: CodeInvalid, Msg: "ref has neither a tag nor a digest; give one"}
	}
	if r.Digest != "" {
		if err := checkManifestDigest(r.Digest); err != nil {
			return &Error{Code: CodeInvalid, Msg: "ref has a malformed digest", Err: err}
		}
	}
	return nil
}

// Descriptor is a content descriptor: the sha256 digest and size of a blob.
type Descriptor struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// Resolved is what a Fetcher resolves a Ref to: a manifest and the blobs it names.
type Resolved struct {
	ManifestDigest string
	Layer          Descriptor // the wasm module
	// Config is the artifact's config blob (for a Fermion artifact, the app manifest and
	// scan results). The zero Descriptor means the cache keeps no config for it.
	Config Descriptor
}

// Fetcher is the registry client the cache pulls through.
type Fetcher interface {
	// Resolve returns the manifest digest and the descriptors of the layer and config
	// for ref. The digest must be computed from the manifest bytes the descriptors were
	// read from (never taken from a response header): the cache trusts the
	// manifest-to-blob links that the Verifier's verdict on the digest covers only
	// through it. Return an error wrapping ErrUnavailable (or a net.Error) when the
	// registry cannot be reached.
	Resolve(ctx context.Context, ref Ref) (Resolved, error)
	// Fetch streams a blob Resolve named: the layer or the config. The cache bounds and
	// hashes what it reads.
	Fetch(ctx context.Context, ref Ref, blob Descriptor) (io.ReadCloser, error)
}

// Verifier checks a resolved artifact against the node's trust policy (signatures). It is
// called before anything is downloaded or handed out, once per repository and manifest:
// the signer it returns is recorded and trusted on later reads. An error whose type has a
// Reason() string method (a short snake_case word from a fixed set) is counted under that
// reason instead of "signature".
type Verifier interface {
	Verify(ctx context.Context, ref Ref, manifestDigest string) (signer string, err error)
}

// Config configures a Cache.
type Config struct {
	Dir      string // cache root; one Cache per Dir at a time
	MaxBytes int64  // bound on blob bytes; least recently used unpinned entries are evicted to fit
	Fetcher  Fetcher
	Verifier Verifier
	Metrics  prometheus.Registerer // nil: not exported
	Logger   *slog.Logger          // nil: discard
	Now      func() time.Time      // clock for LRU and tag recency; nil: time.Now
}

// Entry is a verified module and its config.
type Entry struct {
	Ref            Ref
	ManifestDigest string
	Layer          Descriptor
	Signer         string
	Wasm           []byte // this caller's copy
	// ConfigDescriptor and Config are the artifact's config blob, checked against the
	// descriptor like the layer (zero and nil when the Fetcher resolved none).
	ConfigDescriptor Descriptor
	Config           []byte // this caller's copy
	FromCache        bool
	// Stale: served from the cache because the registry was unreachable; the tag may
	// have moved since.
	Stale bool
}

// Stats is a snapshot of the cache's contents.
type Stats struct {
	Entries     int
	Bytes       int64 // blob bytes on disk, layers and configs (a blob shared by manifests counts once)
	MaxBytes    int64
	Pinned      int // cached entries that are pinned
	PinnedBytes int64
}

// Cache is the node's artifact cache. Its methods are safe for concurrent use.
//
// Lock order: mu is the only lock; nothing else is acquired while it is held except the
// Prometheus collectors' internal locks (leaves). mu is held while index.json is written
// and evicted blobs are unlinked (small, and they must be ordered with the state they
// record), never while calling the Fetcher or Verifier or reading, hashing or downloading
// a blob. Methods named ...Locked need mu held.
type Cache struct {
	dir      string
	max      int64
	fetcher  Fetcher
	verifier Verifier
	log      *slog.Logger
	now      func() time.Time
	m        *metrics

	mu      sync.Mutex
	entries map[string]*record // manifest digest → entry
	pins    map[string]bool    // manifest digests assigned to this node, cached or not
	blobs   map[string]int     // blob digest (layer or config) → entries naming it
	bytes   int64              // sum of the sizes of the distinct blobs in blobs
	flights map[flightKey]*flight
	dirty   bool // last-used times newer than index.json: written with the next change or Close
}

// flightKey is per repository as well as manifest: verification is per repository.
type flightKey struct{ repo, manifest string }

// flight is one download shared by every Get of the same repository and manifest that
// arrives while it runs. Its goroutine is owned by the Cache and stops when the download
// ends or when the last waiting caller gives up (cancel).
type flight struct {
	done    chan struct{}
	cancel  context.CancelFunc
	waiters int    // guarded by Cache.mu
	entry   *Entry // written before done is closed
	err     error
}

// Open opens or creates the cache in cfg.Dir and loads its index. Entries whose blob is
// missing or has the wrong size are dropped, leftovers of interrupted writes and blobs no
// entry names are deleted. Contents are not hashed here: every read re-checks them.
func Open(cfg Config) (*Cache, error) {
	switch {
	case cfg.Dir == "":
		return nil, errors.New("open artifact cache: Config.Dir is empty; set the cache directory")
	case cfg.MaxBytes <= 0:
		return nil, fmt.Errorf("open artifact cache %s: Config.MaxBytes is %d; set a positive size", cfg.Dir, cfg.MaxBytes)
	case cfg.Fetcher == nil:
		return nil, fmt.Errorf("open artifact cache %s: Config.Fetcher is nil", cfg.Dir)
	case cfg.Verifier == nil:
		return nil, fmt.Errorf("open artifact cache %s: Config.Verifier is nil; artifacts are never served unverified", cfg.Dir)
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, fmt.Errorf("open artifact cache %s: %w", cfg.Dir, err)
	}
	c := &Cache{
		dir:      cfg.Dir,
		max:      cfg.MaxBytes,
		fetcher:  cfg.Fetcher,
		verifier: cfg.Verifier,
		log:      cfg.Logger,
		now:      cfg.Now,
		m:        m,
		entries:  map[string]*record{},
		pins:     map[string]bool{},
		blobs:    map[string]int{},
		flights:  map[flightKey]*flight{},
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if err := c.load(); err != nil {
		return nil, fmt.Errorf("open artifact cache %s: %w", cfg.Dir, err)
	}
	return c, nil
}

func (c *Cache) load() error {
	if err := os.MkdirAll(filepath.Join(c.dir, blobsSubdir), 0o700); err != nil {
		return err
	}
	top, err := os.ReadDir(c.dir)
	if err != nil {
		return err
	}
	for _, de := range top {
		if strings.HasPrefix(de.Name(), tmpPrefix) {
			if err := os.Remove(filepath.Join(c.dir, de.Name())); err != nil {
				return fmt.Errorf("remove interrupted write: %w", err)
			}
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	changed := false
	b, err := os.ReadFile(filepath.Join(c.dir, indexName))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("read index: %w", err)
	default:
		idx, dropped, err := parseIndex(b)
		if err != nil {
			// Atomic writes make this disk damage. Starting empty re-downloads (and
			// re-verifies) everything; keep the file for a post-mortem.
			c.log.Error("artifact cache index unreadable; starting empty", "dir", c.dir, "err", err)
			if err := os.Rename(filepath.Join(c.dir, indexName), filepath.Join(c.dir, indexName+corruptSuffix)); err != nil {
				return fmt.Errorf("set aside unreadable index: %w", err)
			}
			break
		}
		if len(dropped) > 0 {
			c.log.Warn("artifact cache dropped malformed index entries", "dir", c.dir, "manifests", dropped)
			changed = true
		}
		for _, p := range idx.Pins {
			c.pins[p] = true
		}
	entries:
		for _, r := range idx.Entries {
			for _, b := range r.blobs() {
				st, err := os.Stat(c.blobPath(b.Digest))
				if err != nil || st.Size() != b.Size {
					c.log.Warn("artifact cache dropped entry whose blob is missing", "manifest", r.ManifestDigest, "blob", b.Digest)
					changed = true
					continue entries
				}
			}
			c.addLocked(r)
		}
	}

	blobs, err := os.ReadDir(filepath.Join(c.dir, blobsSubdir))
	if err != nil {
		return err
	}
	for _, de := range blobs {
		if c.blobs["sha256:"+de.Name()] > 0 {
			continue
		}
		if err := os.RemoveAll(filepath.Join(c.dir, blobsSubdir, de.Name())); err != nil {
			return fmt.Errorf("remove unindexed blob: %w", err)
		}
	}

	if c.bytes > c.max {
		// The cache was made smaller since the last run.
		evicted, err := c.makeRoomLocked("")
		if err != nil {
			c.log.Warn("artifact cache is over its size with pinned entries alone", "dir", c.dir, "err", err)
		}
		if len(evicted) > 0 {
			changed = true
			defer c.unlinkBlobs(evicted)
		}
	}
	if changed {
		if err := c.writeIndexLocked(); err != nil {
			return err
		}
	}
	c.m.bytes.Set(float64(c.bytes))
	return nil
}

// Get returns the verified module for ref.
//
// A digest ref is served from the cache when present, without asking the registry. A tag
// ref is resolved first (tags move); if the registry is unreachable, the newest cached
// version of the tag is served with Stale set. Cached bytes are re-hashed on every read;
// a corrupt file is deleted and downloaded again. Concurrent Gets of one manifest share
// one download. Failures are *Error values carrying a Code.
func (c *Cache) Get(ctx context.Context, ref Ref) (*Entry, error) {
	e, err := c.get(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("get artifact %s: %w", ref, err)
	}
	return e, nil
}

func (c *Cache) get(ctx context.Context, ref Ref) (*Entry, error) {
	if err := ref.validate(); err != nil {
		return nil, err
	}
	if ref.Digest != "" {
		return c.getManifest(ctx, ref, ref.Digest, nil)
	}
	res, err := c.fetcher.Resolve(ctx, ref)
	if err != nil {
		err = registryErr("resolve", err)
		if CodeOf(err) == CodeUnavailable {
			return c.serveStale(ref, err)
		}
		return nil, err
	}
	md := res.ManifestDigest
	if err := checkManifestDigest(md); err != nil {
		return nil, fmt.Errorf("resolve: registry answered a malformed %w", err)
	}
	e, err := c.getManifest(ctx, ref, md, &res)
	if CodeOf(err) == CodeUnavailable {
		// Resolved, but the registry went away before the module came down.
		return c.serveStale(ref, err)
	}
	return e, err
}

// getManifest serves manifest md for ref from the cache or downloads it. res is what a
// tag ref resolved to, nil for a digest ref (resolved only if not cached).
func (c *Cache) getManifest(ctx context.Context, ref Ref, md string, res *Resolved) (*Entry, error) {
	tag := ""
	if ref.Digest == "" {
		tag = ref.Tag // the registry just said the tag names md
	}
	e, err := c.fromCache(ctx, ref, md)
	if err != nil || e != nil {
		if e != nil {
			c.m.hits.Inc()
			c.noteUse(md, ref.Repo, tag)
		}
		return e, err
	}
	c.m.misses.Inc()
	e, err = c.download(ctx, ref, md, res)
	if err != nil {
		return nil, err
	}
	c.noteUse(md, ref.Repo, tag)
	return e, nil
}

// fromCache returns md from the cache, or nil, nil if it is not there (any more: a
// missing or corrupt blob drops the entry).
func (c *Cache) fromCache(ctx context.Context, ref Ref, md string) (*Entry, error) {
	c.mu.Lock()
	r := c.entries[md]
	if r == nil {
		c.mu.Unlock()
		return nil, nil
	}
	layer, config := r.Layer, r.Config
	rr := r.Repos[ref.Repo]
	verified, signer := rr != nil, ""
	if verified {
		signer = rr.Signer
	}
	c.mu.Unlock()

	wasm, cfg, err := c.readBlobs(layer, config)
	if err != nil {
		if errors.Is(err, errGone) {
			return nil, nil
		}
		return nil, err
	}
	if !verified {
		// Cached for another repository: this one's policy has not seen it.
		if signer, err = c.verify(ctx, ref, md); err != nil {
			return nil, err
		}
		c.mu.Lock()
		if r := c.entries[md]; r != nil && r.Repos[ref.Repo] == nil {
			r.Repos[ref.Repo] = &repoRecord{Signer: signer}
			c.writeIndexOrWarnLocked()
		}
		c.mu.Unlock()
	}
	return &Entry{Ref: ref, ManifestDigest: md, Layer: layer, Signer: signer, Wasm: wasm,
		ConfigDescriptor: config, Config: cfg, FromCache: true}, nil
}

// errGone reports that a cached blob was missing or corrupt and has been dropped with
// the entries naming it: download again.
var errGone = errors.New("cached blob dropped")

// readBlobs reads an entry's layer and config (if any) from disk, checking both. A
// missing or corrupt blob is dropped (dropBadBlob) and errGone returned.
func (c *Cache) readBlobs(layer, config Descriptor) (wasm, cfg []byte, err error) {
	for _, b := range []struct {
		desc Descriptor
		out  *[]byte
	}{{layer, &wasm}, {config, &cfg}} {
		if b.desc == (Descriptor{}) {
			continue
		}
		data, err := c.readBlob(b.desc)
		if err != nil {
			if c.dropBadBlob(b.desc, err) {
				return nil, nil, errGone
			}
			return nil, nil, err
		}
		*b.out = data
	}
	return wasm, cfg, nil
}

// dropBadBlob handles a failed readBlob: a missing or corrupt blob and the entries naming
// it (as layer or config) are removed and true is returned (download again); other
// errors return false.
func (c *Cache) dropBadBlob(blob Descriptor, err error) bool {
	corrupt := errors.Is(err, errCorrupt)
	if !corrupt && !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if corrupt {
		c.m.verifyFailures.WithLabelValues(ReasonCorruptCache).Inc()
		c.log.Error("artifact cache file is corrupt; deleting it", "blob", blob.Digest, "err", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var unlink []string
	for md, r := range c.entries {
		if r.Layer.Digest == blob.Digest || r.Config.Digest == blob.Digest {
			unlink = append(unlink, c.removeLocked(md)...)
		}
	}
	c.writeIndexOrWarnLocked()
	// Unlinked even if a concurrent download just renamed a good copy into place: the
	// worst outcome is that it is downloaded again.
	if !slices.Contains(unlink, blob.Digest) {
		unlink = append(unlink, blob.Digest)
	}
	c.unlinkBlobs(unlink)
	c.m.bytes.Set(float64(c.bytes))
	return true
}

// serveStale serves the newest cached version of ref's tag after the registry could not
// be reached (cause). Only entries verified for ref.Repo carry its tags.
func (c *Cache) serveStale(ref Ref, cause error) (*Entry, error) {
	for {
		c.mu.Lock()
		r := c.newestForTagLocked(ref.Repo, ref.Tag)
		if r == nil {
			c.mu.Unlock()
			if CodeOf(cause) == CodeUnavailable {
				return nil, cause
			}
			return nil, &Error{Code: CodeUnavailable, Msg: "registry is unreachable and nothing is cached", Err: cause}
		}
		md, layer, config, signer := r.ManifestDigest, r.Layer, r.Config, r.Repos[ref.Repo].Signer
		c.mu.Unlock()

		wasm, cfg, err := c.readBlobs(layer, config)
		if err != nil {
			if errors.Is(err, errGone) {
				continue // the next newest, if any
			}
			return nil, err
		}
		c.m.hits.Inc()
		c.m.staleServed.Inc()
		c.log.Warn("registry unreachable; serving cached artifact, the tag may have moved",
			"ref", ref.String(), "manifest", md, "err", cause)
		c.noteUse(md, ref.Repo, "")
		return &Entry{Ref: ref, ManifestDigest: md, Layer: layer, Signer: signer, Wasm: wasm,
			ConfigDescriptor: config, Config: cfg, FromCache: true, Stale: true}, nil
	}
}

func (c *Cache) newestForTagLocked(repo, tag string) *record {
	var newest *record
	var at time.Time
	for _, r := range c.entries {
		rr := r.Repos[repo]
		if rr == nil {
			continue
		}
		seen, ok := rr.Tags[tag]
		if !ok {
			continue
		}
		if newest == nil || seen.After(at) || (seen.Equal(at) && r.LastUsed.After(newest.LastUsed)) {
			newest, at = r, seen
		}
	}
	return newest
}

// noteUse records that md was served for repo (LRU) and, if tag is set, that the tag
// resolved to it. Last-used times are written with the next index change; a tag that is
// new or moved is written now, so stale fallback after a restart picks the right version.
func (c *Cache) noteUse(md, repo, tag string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.entries[md]
	if r == nil {
		return
	}
	now := c.now()
	r.LastUsed = now
	c.dirty = true
	rr := r.Repos[repo]
	if tag == "" || rr == nil {
		return
	}
	_, had := rr.Tags[tag]
	moved := c.newestForTagLocked(repo, tag) != r
	if rr.Tags == nil {
		rr.Tags = map[string]time.Time{}
	}
	rr.Tags[tag] = now
	if !had || moved {
		c.writeIndexOrWarnLocked()
	}
}

// download joins or starts the flight for ref.Repo and md and waits for it or for ctx.
func (c *Cache) download(ctx context.Context, ref Ref, md string, res *Resolved) (*Entry, error) {
	key := flightKey{ref.Repo, md}
	c.mu.Lock()
	f := c.flights[key]
	if f == nil {
		// Detached from ctx so one caller giving up does not fail the others; cancelled
		// when the last one gives up.
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), cancel: cancel}
		c.flights[key] = f
		go c.runFlight(fctx, key, f, ref, md, res)
	}
	f.waiters++
	c.mu.Unlock()

	select {
	case <-f.done:
	case <-ctx.Done():
		c.mu.Lock()
		f.waiters--
		if f.waiters == 0 {
			f.cancel()
			if c.flights[key] == f {
				delete(c.flights, key) // later callers start afresh rather than join a cancelled flight
			}
		}
		c.mu.Unlock()
		return nil, ctx.Err()
	}
	if f.err != nil {
		return nil, f.err
	}
	e := *f.entry
	e.Ref = ref
	e.Wasm = slices.Clone(e.Wasm)
	e.Config = slices.Clone(e.Config)
	return &e, nil
}

func (c *Cache) runFlight(ctx context.Context, key flightKey, f *flight, ref Ref, md string, res *Resolved) {
	defer f.cancel()
	e, err := c.fetchVerified(ctx, ref, md, res)
	c.mu.Lock()
	// The entry, if any, is in the index already: no caller can see neither it nor
	// this flight.
	f.entry, f.err = e, err
	if c.flights[key] == f {
		delete(c.flights, key)
	}
	c.mu.Unlock()
	close(f.done)
}

// fetchVerified resolves (if res is nil), verifies, downloads, checks and stores md.
func (c *Cache) fetchVerified(ctx context.Context, ref Ref, md string, res *Resolved) (*Entry, error) {
	if res == nil {
		got, err := c.fetcher.Resolve(ctx, ref)
		if err != nil {
			return nil, registryErr("resolve", err)
		}
		if got.ManifestDigest != md {
			c.m.verifyFailures.WithLabelValues(ReasonDigestMismatch).Inc()
			return nil, rejected(ReasonDigestMismatch, "registry resolved %s to manifest %s", md, got.ManifestDigest)
		}
		res = &got
	}
	if err := checkBlob("layer", res.Layer); err != nil {
		return nil, fmt.Errorf("resolve: registry answered a malformed %w", err)
	}
	if res.Config != (Descriptor{}) {
		if err := checkBlob("config", res.Config); err != nil {
			return nil, fmt.Errorf("resolve: registry answered a malformed %w", err)
		}
	}
	r := &record{ManifestDigest: md, Layer: res.Layer, Config: res.Config}
	if size := r.size(); size > c.max {
		return nil, &Error{Code: CodeTooLarge,
			Msg: fmt.Sprintf("artifact of %d bytes exceeds the cache size %d; raise the cache size", size, c.max)}
	}
	c.mu.Lock()
	err := c.checkRoomLocked(r)
	c.mu.Unlock()
	if err != nil {
		return nil, err // before downloading what could not be kept
	}
	signer, err := c.verify(ctx, ref, md)
	if err != nil {
		return nil, err
	}
	// The config first: it is small, and a module is not worth downloading if its
	// config is refused.
	var config []byte
	if res.Config != (Descriptor{}) {
		if config, err = c.fetchBlob(ctx, ref, "config", res.Config); err != nil {
			return nil, err
		}
	}
	wasm, err := c.fetchBlob(ctx, ref, "layer", res.Layer)
	if err != nil {
		if config != nil {
			c.unlinkUnindexed(res.Config.Digest)
		}
		return nil, err
	}
	if err := c.insert(ref.Repo, r, signer); err != nil {
		return nil, err
	}
	return &Entry{Ref: ref, ManifestDigest: md, Layer: res.Layer, Signer: signer, Wasm: wasm,
		ConfigDescriptor: res.Config, Config: config}, nil
}

// fetchBlob downloads, checks and stores one blob of ref, counting a refusal.
func (c *Cache) fetchBlob(ctx context.Context, ref Ref, kind string, desc Descriptor) ([]byte, error) {
	rc, err := c.fetcher.Fetch(ctx, ref, desc)
	if err != nil {
		return nil, registryErr("fetch "+kind, err)
	}
	b, err := c.storeBlob(rc, kind, desc)
	rc.Close()
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Code == CodeRejected {
			c.m.verifyFailures.WithLabelValues(e.Reason).Inc()
		}
		return nil, err
	}
	return b, nil
}

// unlinkUnindexed deletes a stored blob that no entry names (a config whose module
// then failed to download).
func (c *Cache) unlinkUnindexed(digest string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.blobs[digest] == 0 {
		c.unlinkBlobs([]string{digest})
	}
}

// verify runs the Verifier and counts its refusals.
func (c *Cache) verify(ctx context.Context, ref Ref, md string) (string, error) {
	signer, err := c.verifier.Verify(ctx, ref, md)
	if err == nil {
		return signer, nil
	}
	if ctx.Err() != nil {
		return "", fmt.Errorf("verify manifest %s: %w", md, ctx.Err())
	}
	reason := verifyReason(err)
	c.m.verifyFailures.WithLabelValues(reason).Inc()
	return "", &Error{Code: CodeRejected, Reason: reason, Msg: fmt.Sprintf("manifest %s failed verification", md), Err: err}
}

// insert indexes the stored, verified blobs of nr (its digests and descriptors set) and
// evicts to fit. The blobs are already in place: if the entry cannot be kept, they are
// unlinked unless another entry names them.
func (c *Cache) insert(repo string, nr *record, signer string) error {
	md := nr.ManifestDigest
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.entries[md]; r != nil {
		// Stored meanwhile through another repository.
		if r.Layer != nr.Layer || r.Config != nr.Config {
			c.m.verifyFailures.WithLabelValues(ReasonDigestMismatch).Inc()
			return rejected(ReasonDigestMismatch, "manifest %s is cached with layer %s and config %s, the registry now says %s and %s",
				md, r.Layer.Digest, r.Config.Digest, nr.Layer.Digest, nr.Config.Digest)
		}
		if r.Repos[repo] == nil {
			r.Repos[repo] = &repoRecord{Signer: signer}
		}
		c.writeIndexOrWarnLocked()
		return nil
	}
	c.addLocked(&record{
		ManifestDigest: md,
		Layer:          nr.Layer,
		Config:         nr.Config,
		Repos:          map[string]*repoRecord{repo: {Signer: signer}},
		LastUsed:       c.now(),
	})
	evicted, err := c.makeRoomLocked(md)
	if err != nil {
		c.unlinkBlobs(c.removeLocked(md))
		return err
	}
	c.writeIndexOrWarnLocked()
	c.unlinkBlobs(evicted)
	c.m.bytes.Set(float64(c.bytes))
	return nil
}

// checkRoomLocked fails if r could not be kept even after evicting everything unpinned.
func (c *Cache) checkRoomLocked(r *record) error {
	pinned, pinnedBlobs := c.pinnedBytesLocked()
	need := pinned
	for _, b := range r.blobs() {
		if !pinnedBlobs[b.Digest] {
			need += b.Size
		}
	}
	if need > c.max {
		return c.fullErrorLocked(pinned, r.ManifestDigest, r.size())
	}
	return nil
}

func (c *Cache) fullErrorLocked(pinned int64, md string, size int64) *Error {
	msg := fmt.Sprintf("cache full: %d bytes pinned of %d; unpin versions or raise the cache size", pinned, c.max)
	if md != "" {
		msg += fmt.Sprintf(" (manifest %s needs %d)", md, size)
	}
	return &Error{Code: CodeCacheFull, Msg: msg}
}

// pinnedBytesLocked returns the bytes of the distinct blobs of pinned entries.
func (c *Cache) pinnedBytesLocked() (int64, map[string]bool) {
	var n int64
	blobs := map[string]bool{}
	for md, r := range c.entries {
		if !c.pins[md] {
			continue
		}
		for _, b := range r.blobs() {
			if !blobs[b.Digest] {
				blobs[b.Digest] = true
				n += b.Size
			}
		}
	}
	return n, blobs
}

// makeRoomLocked evicts least recently used unpinned entries other than keep until the
// cache fits, and returns the digests whose blobs must be unlinked. If pinned entries and
// keep cannot fit together, it evicts nothing.
func (c *Cache) makeRoomLocked(keep string) ([]string, error) {
	if c.bytes <= c.max {
		return nil, nil
	}
	pinned, pinnedBlobs := c.pinnedBytesLocked()
	need, size := pinned, int64(0)
	if r := c.entries[keep]; r != nil {
		size = r.size()
		for _, b := range r.blobs() {
			if !pinnedBlobs[b.Digest] {
				need += b.Size
			}
		}
	}
	if need > c.max {
		return nil, c.fullErrorLocked(pinned, keep, size)
	}
	var victims []*record
	for md, r := range c.entries {
		if md != keep && !c.pins[md] {
			victims = append(victims, r)
		}
	}
	slices.SortFunc(victims, func(a, b *record) int {
		if d := a.LastUsed.Compare(b.LastUsed); d != 0 {
			return d
		}
		return cmp.Compare(a.ManifestDigest, b.ManifestDigest)
	})
	var unlink []string
	for _, r := range victims {
		if c.bytes <= c.max {
			break
		}
		unlink = append(unlink, c.removeLocked(r.ManifestDigest)...)
		c.m.evictions.Inc()
		c.log.Info("artifact evicted from the node cache", "manifest", r.ManifestDigest, "bytes", r.size())
	}
	return unlink, nil
}

func (c *Cache) addLocked(r *record) {
	c.entries[r.ManifestDigest] = r
	for _, b := range r.blobs() {
		if c.blobs[b.Digest] == 0 {
			c.bytes += b.Size
		}
		c.blobs[b.Digest]++
	}
}

// removeLocked drops md from the index and returns the digests of its blobs that no
// entry names any more (the caller unlinks them after writing the index).
func (c *Cache) removeLocked(md string) []string {
	r := c.entries[md]
	if r == nil {
		return nil
	}
	delete(c.entries, md)
	var unlink []string
	for _, b := range r.blobs() {
		c.blobs[b.Digest]--
		if c.blobs[b.Digest] > 0 {
			continue
		}
		delete(c.blobs, b.Digest)
		c.bytes -= b.Size
		unlink = append(unlink, b.Digest)
	}
	return unlink
}

// unlinkBlobs deletes blob files; a failure leaves an unindexed file that the next Open
// deletes.
func (c *Cache) unlinkBlobs(digests []string) {
	for _, d := range digests {
		if err := os.Remove(c.blobPath(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			c.log.Warn("artifact cache could not delete a blob", "blob", d, "err", err)
		}
	}
}

func (c *Cache) writeIndexLocked() error {
	idx := indexFile{Version: indexVersion, Entries: make([]*record, 0, len(c.entries))}
	for _, r := range c.entries {
		idx.Entries = append(idx.Entries, r)
	}
	slices.SortFunc(idx.Entries, func(a, b *record) int { return cmp.Compare(a.ManifestDigest, b.ManifestDigest) })
	for md := range c.pins {
		idx.Pins = append(idx.Pins, md)
	}
	slices.Sort(idx.Pins)
	b, err := json.MarshalIndent(idx, "", "\t")
	if err != nil {
		return fmt.Errorf("encode index: %w", err)
	}
	if err := writeFileAtomic(c.dir, indexName, b); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	c.dirty = false
	return nil
}

// writeIndexOrWarnLocked writes the index where a failure costs only durability: the
// in-memory index stays authoritative, the next change rewrites it, and whatever the
// file on disk says is re-checked when read.
func (c *Cache) writeIndexOrWarnLocked() {
	if err := c.writeIndexLocked(); err != nil {
		c.log.Warn("artifact cache index not saved; retrying with the next change", "dir", c.dir, "err", err)
	}
}

// Close writes the last-used times that hits keep in memory (every other change is
// written when it happens), so that LRU order survives a clean restart. After a crash it
// is only approximate. Gets in flight are unaffected; do not use the Cache afterwards.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dirty {
		return nil
	}
	if err := c.writeIndexLocked(); err != nil {
		return fmt.Errorf("close artifact cache %s: %w", c.dir, err)
	}
	return nil
}

// Pin marks manifestDigest as assigned to this node (pinned) or not. Pinned entries are
// never evicted. A digest may be pinned before it is cached; pins persist across
// restarts and outlive Remove.
func (c *Cache) Pin(manifestDigest string, pinned bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pins[manifestDigest] == pinned {
		return
	}
	if pinned {
		c.pins[manifestDigest] = true
	} else {
		delete(c.pins, manifestDigest)
	}
	c.writeIndexOrWarnLocked()
}

// Pinned returns the pinned manifest digests, cached or not, sorted.
func (c *Cache) Pinned() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.pins))
	for md := range c.pins {
		out = append(out, md)
	}
	slices.Sort(out)
	return out
}

// Stats returns the cache's current size and contents.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Stats{Entries: len(c.entries), Bytes: c.bytes, MaxBytes: c.max}
	for md := range c.entries {
		if c.pins[md] {
			s.Pinned++
		}
	}
	s.PinnedBytes, _ = c.pinnedBytesLocked()
	return s
}

// Remove deletes a cached manifest (pinned or not) and its blobs if no other entry uses
// them. Removing what is not cached is not an error. The pin, if any, stays.
func (c *Cache) Remove(manifestDigest string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries[manifestDigest] == nil {
		return nil
	}
	unlink := c.removeLocked(manifestDigest)
	err := c.writeIndexLocked()
	c.unlinkBlobs(unlink)
	c.m.bytes.Set(float64(c.bytes))
	if err != nil {
		return fmt.Errorf("remove artifact %s: %w", manifestDigest, err)
	}
	return nil
}
