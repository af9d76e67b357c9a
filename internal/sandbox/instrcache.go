package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"fermion.dev/fermion/internal/atomicfile"
)

// rewriteVersion names the output format of instrumentInterrupt. Change it whenever the
// rewrite changes, so modules rewritten by an older Fermion are not reused.
const rewriteVersion = "interrupt-v6" // v6: one countdown on the fast path, $stop read on its slow path; checks at the entry of functions that call twice or tail-call

// rewriteCache keeps instrumented modules on disk beside the compilation cache. The
// rewrite walks every function body, which costs about as much as wazero's whole load
// from its compilation cache; with this cache, a second process start reads the
// rewritten module instead (one file read). Like wazero's cache of compiled machine
// code, it trusts its directory, which only the node's own user writes.
type rewriteCache struct {
	dir string // "" keeps nothing
}

// instrument returns the module wasm returns rewritten by instrumentInterrupt, from the
// cache when it has it (cached reports that; wasm is then not called). sum identifies
// wasm's bytes.
func (c rewriteCache) instrument(sum [32]byte, wasm func() []byte) (code []byte, cached bool, err error) {
	if c.dir == "" {
		code, err = instrumentInterrupt(wasm())
		return code, false, err
	}
	path := c.path(sum)
	if b, err := os.ReadFile(path); err == nil && len(b) > 8 && string(b[:4]) == "\x00asm" {
		return b, true, nil
	}
	code, err = instrumentInterrupt(wasm())
	if err != nil {
		return nil, false, err
	}
	// A cache that cannot be written costs the next start the rewrite, nothing else.
	if err := os.MkdirAll(c.dir, 0o700); err == nil {
		atomicfile.Write(path, code, 0o600)
	}
	return code, false, nil
}

// forget removes a cached rewrite that wazero refused, so the next load rewrites again.
func (c rewriteCache) forget(sum [32]byte) {
	if c.dir != "" {
		os.Remove(c.path(sum))
	}
}

func (c rewriteCache) path(sum [32]byte) string {
	return filepath.Join(c.dir, hex.EncodeToString(sum[:])+".wasm")
}

// newRewriteCache returns the rewrite cache under a compilation cache directory and
// removes what an interrupted write left there.
func newRewriteCache(cacheDir string) (rewriteCache, error) {
	if cacheDir == "" {
		return rewriteCache{}, nil
	}
	dir := filepath.Join(cacheDir, "fermion-"+rewriteVersion)
	if err := atomicfile.RemoveTemps(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return rewriteCache{}, fmt.Errorf("clean rewrite cache: %w", err)
	}
	return rewriteCache{dir: dir}, nil
}

// digestOf returns a module's sha256 in OCI form.
func digestOf(sum [32]byte) string { return "sha256:" + hex.EncodeToString(sum[:]) }

// sumOf hashes a module once for the rewrite cache and the logs.
func sumOf(wasm []byte) [32]byte { return sha256.Sum256(wasm) }
