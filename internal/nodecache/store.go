package nodecache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"fermion.dev/fermion/internal/atomicfile"
)

// On-disk layout:
//
//	Dir/index.json            the index (indexFile), replaced atomically
//	Dir/blobs/sha256/<hex>    module and config bytes, named by their sha256
//	Dir/.tmp-*                downloads and index writes in progress; removed by Open
//
// Every file appears under its final name only by rename after fsync, so a crash leaves
// either the old or the new version, or a .tmp- file nobody trusts. The index is written
// after the blobs it names and before blobs it no longer names are deleted; Open drops
// entries whose blob is missing and deletes blobs no entry names. Nothing read from disk
// is trusted without its sha256 being checked on every read.

const (
	indexName      = "index.json"
	indexVersion   = 1
	tmpPrefix      = atomicfile.TempPrefix
	blobsSubdir    = "blobs/sha256"
	corruptSuffix  = ".corrupt"
	maxIndexLength = 64 << 20 // an index this big is damage, not data
)

// indexFile is the JSON form of index.json.
type indexFile struct {
	Version int       `json:"version"`
	Entries []*record `json:"entries"`
	// Pins are the manifest digests assigned to this node, cached or not yet.
	Pins []string `json:"pins,omitempty"`
}

// record is one cached manifest.
type record struct {
	ManifestDigest string     `json:"manifestDigest"`
	Layer          Descriptor `json:"layer"`
	Config         Descriptor `json:"config,omitzero"` // zero: none kept
	// Repos holds, per repository the manifest was requested from, the signer the
	// Verifier returned (the record exists only once Verify succeeded) and the tags seen
	// resolving to this manifest, with when they last did.
	Repos    map[string]*repoRecord `json:"repos"`
	LastUsed time.Time              `json:"lastUsed"`
}

// blobs returns the descriptors of the blobs r names: the layer, then the config if any.
func (r *record) blobs() []Descriptor {
	if r.Config == (Descriptor{}) {
		return []Descriptor{r.Layer}
	}
	return []Descriptor{r.Layer, r.Config}
}

// size is the bytes of r's blobs (a config that is also the layer counts twice: such an
// artifact is nonsense, and counting more is the safe side).
func (r *record) size() int64 {
	var n int64
	for _, b := range r.blobs() {
		n += b.Size
	}
	return n
}

type repoRecord struct {
	Signer string               `json:"signer"`
	Tags   map[string]time.Time `json:"tags,omitempty"`
}

// parseIndex decodes index.json. It rejects what it cannot trust to name a file: entries
// with malformed digests or sizes are dropped (and reported in dropped).
func parseIndex(b []byte) (idx indexFile, dropped []string, err error) {
	if err := json.Unmarshal(b, &idx); err != nil {
		return indexFile{}, nil, fmt.Errorf("decode index: %w", err)
	}
	if idx.Version != indexVersion {
		return indexFile{}, nil, fmt.Errorf("decode index: version %d, want %d", idx.Version, indexVersion)
	}
	seen := map[string]bool{}
	kept := idx.Entries[:0]
	for _, r := range idx.Entries {
		switch {
		case r == nil:
			continue
		case checkManifestDigest(r.ManifestDigest) != nil, checkBlob("layer", r.Layer) != nil, seen[r.ManifestDigest],
			r.Config != (Descriptor{}) && checkBlob("config", r.Config) != nil:
			dropped = append(dropped, r.ManifestDigest)
			continue
		}
		seen[r.ManifestDigest] = true
		for repo, rr := range r.Repos {
			if rr == nil || repo == "" {
				delete(r.Repos, repo)
			}
		}
		if len(r.Repos) == 0 {
			// Never verified for any repository: nothing to serve it for.
			dropped = append(dropped, r.ManifestDigest)
			continue
		}
		kept = append(kept, r)
	}
	idx.Entries = kept
	return idx, dropped, nil
}

func checkManifestDigest(s string) error {
	if _, err := digest.Parse(s); err != nil {
		return fmt.Errorf("manifest digest %q: %w", s, err)
	}
	return nil
}

// checkBlob accepts only sha256 blobs (the blob layout is blobs/sha256) with a
// well-formed hex part, so a digest can never name a path outside the blobs directory.
// kind ("layer", "config") names the blob in the error.
func checkBlob(kind string, b Descriptor) error {
	d, err := digest.Parse(b.Digest)
	if err != nil {
		return fmt.Errorf("%s digest %q: %w", kind, b.Digest, err)
	}
	if d.Algorithm() != digest.SHA256 {
		return fmt.Errorf("%s digest %q: algorithm %s, want sha256", kind, b.Digest, d.Algorithm())
	}
	if b.Size < 0 {
		return fmt.Errorf("%s %s: negative size %d", kind, b.Digest, b.Size)
	}
	return nil
}

func (c *Cache) blobPath(blobDigest string) string {
	return filepath.Join(c.dir, blobsSubdir, strings.TrimPrefix(blobDigest, "sha256:"))
}

// errCorrupt marks a cached blob that failed its re-check.
var errCorrupt = errors.New("cached blob does not match its digest")

// readBlob reads a cached blob and checks its size and sha256 against its descriptor. A
// missing file is fs.ErrNotExist; a mismatch is errCorrupt.
func (c *Cache) readBlob(layer Descriptor) ([]byte, error) {
	f, err := os.Open(c.blobPath(layer.Digest))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat blob %s: %w", layer.Digest, err)
	}
	if st.Size() != layer.Size {
		return nil, fmt.Errorf("%w: %s is %d bytes, want %d", errCorrupt, layer.Digest, st.Size(), layer.Size)
	}
	b := make([]byte, layer.Size)
	if _, err := io.ReadFull(f, b); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: %s shrank while reading", errCorrupt, layer.Digest)
		}
		return nil, fmt.Errorf("read blob %s: %w", layer.Digest, err)
	}
	if got := sha256Digest(b); got != layer.Digest {
		return nil, fmt.Errorf("%w: %s hashes to %s", errCorrupt, layer.Digest, got)
	}
	return b, nil
}

func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// readCounter remembers the error of the reader side of an io.Copy, to tell a failed
// transfer from a failed disk write.
type readCounter struct {
	r   io.Reader
	err error
}

func (rc *readCounter) Read(p []byte) (int, error) {
	n, err := rc.r.Read(p)
	if err != nil && err != io.EOF {
		rc.err = err
	}
	return n, err
}

// storeBlob copies at most layer.Size+1 bytes of r into a temp file while hashing them,
// and renames the file into place only if size and digest match the descriptor. It
// returns the bytes. On any failure the temp file is removed and nothing is stored. kind
// ("layer", "config") names the blob in errors; a mismatch counts under the same
// reasons whichever it is.
func (c *Cache) storeBlob(r io.Reader, kind string, layer Descriptor) (_ []byte, err error) {
	tmp, err := os.CreateTemp(c.dir, tmpPrefix+"blob-*")
	if err != nil {
		return nil, fmt.Errorf("create temp file: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	var buf bytes.Buffer
	buf.Grow(int(min(layer.Size, 16<<20)))
	src := &readCounter{r: io.LimitReader(r, layer.Size+1)}
	n, err := io.Copy(io.MultiWriter(tmp, h, &buf), src)
	if src.err != nil {
		return nil, registryErr("fetch "+kind, src.err)
	}
	if err != nil {
		return nil, fmt.Errorf("write temp file: %w", err)
	}
	switch {
	case n > layer.Size:
		return nil, rejected(ReasonTamperedLayer, "tampered: %s %s is longer than the %d bytes of its descriptor", kind, layer.Digest, layer.Size)
	case n < layer.Size:
		return nil, rejected(ReasonTamperedLayer, "tampered: %s %s ended after %d of the %d bytes of its descriptor", kind, layer.Digest, n, layer.Size)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != layer.Digest {
		return nil, rejected(ReasonDigestMismatch, "tampered: %s bytes hash to %s, the descriptor says %s", kind, got, layer.Digest)
	}
	if err := tmp.Sync(); err != nil {
		return nil, fmt.Errorf("sync temp file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("close temp file: %w", err)
	}
	if err := os.Rename(tmp.Name(), c.blobPath(layer.Digest)); err != nil {
		return nil, fmt.Errorf("store blob %s: %w", layer.Digest, err)
	}
	if err := syncDir(filepath.Join(c.dir, blobsSubdir)); err != nil {
		return nil, fmt.Errorf("store blob %s: %w", layer.Digest, err)
	}
	return buf.Bytes(), nil
}

// writeFileAtomic replaces dir/name with data.
func writeFileAtomic(dir, name string, data []byte) error {
	return atomicfile.Write(filepath.Join(dir, name), data, 0o600)
}

func syncDir(dir string) error { return atomicfile.SyncDir(dir) }
