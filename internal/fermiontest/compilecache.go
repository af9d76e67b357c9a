package fermiontest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// compileCacheKeep is how long a compilation cache directory that no test binary has
// opened stays before CompileCacheDir removes it.
const compileCacheKeep = 7 * 24 * time.Hour

var compileCache = sync.OnceValues(func() (string, error) {
	root, err := rootDir()
	if err != nil {
		return "", err
	}
	key, err := compileCacheKey(root)
	if err != nil {
		return "", err
	}
	base := cacheBase()
	dir := filepath.Join(base, "compile-"+key)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("make the tests' compilation cache: %w", err)
	}
	now := time.Now()
	os.Chtimes(dir, now, now) // in use: pruneCompileCaches keeps it
	pruneCompileCaches(base, dir, now)
	return dir, nil
})

// CompileCacheDir returns a wazero compilation cache directory (sandbox.EngineConfig's
// CacheDir) that every test binary shares, in one `go test` run and across runs: a
// guest compiled by one package's tests is loaded from the cache by the next, and a
// second run compiles nothing. The directory is named by a hash of go.sum (the wazero
// version) and of internal/sandbox's sources, so a change to how the sandbox rewrites or
// compiles modules starts from an empty cache, and a module that once loaded is never
// served from a stale one. Writes to it are atomic (wazero's and the sandbox's own), so
// parallel test binaries may share it. FERMION_TEST_CACHE moves it (default: the user's
// cache directory); directories unused for a week are removed.
//
// Tests that measure or assert a first compile must use a directory of their own.
func CompileCacheDir() (string, error) { return compileCache() }

// compileCacheKey hashes go.sum and the non-test Go files of internal/sandbox.
func compileCacheKey(root string) (string, error) {
	files, err := filepath.Glob(filepath.Join(root, "internal", "sandbox", "*.go"))
	if err != nil {
		return "", err
	}
	files = append(files, filepath.Join(root, "go.sum"))
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("key the tests' compilation cache: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", filepath.Base(f), len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// pruneCompileCaches removes the compilation caches under base, other than keep, that
// no test binary has opened for compileCacheKeep. Errors are ignored: a cache left
// behind costs disk, not correctness.
func pruneCompileCaches(base, keep string, now time.Time) {
	des, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, de := range des {
		p := filepath.Join(base, de.Name())
		if p == keep || !de.IsDir() || !strings.HasPrefix(de.Name(), "compile-") {
			continue
		}
		if fi, err := de.Info(); err == nil && now.Sub(fi.ModTime()) > compileCacheKeep {
			os.RemoveAll(p)
		}
	}
}

// rootDir is Root without a test: the repository root above the working directory.
func rootDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.mod not found above %s", dir)
		}
		dir = parent
	}
}
