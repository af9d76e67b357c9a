package fermiontest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Why keep built guests on disk across test binaries? `go test ./...` runs one binary per
// package, and each used to build the same example and fault guests again: a wasm link
// of a 3–10 MB module costs about a CPU second, and internal/sandbox alone builds 17 of
// them (a third of its CPU time under -short), internal/gateway, agent, cli and
// controlplane the same ones again. The go command caches compiled packages but not
// `go build -o` links. guestCacheKey names a built module by everything that decides its
// bytes, so a cached module is exactly what a fresh build would give.

// guestCacheKeep is how long a cached guest that no test binary has used stays.
const guestCacheKeep = 7 * 24 * time.Hour

// cacheBase is the directory under which the tests keep what they share between test
// binaries and runs: FERMION_TEST_CACHE, or fermion-test in the user's cache directory.
func cacheBase() string {
	if base := os.Getenv("FERMION_TEST_CACHE"); base != "" {
		return base
	}
	uc, err := os.UserCacheDir()
	if err != nil {
		uc = os.TempDir()
	}
	return filepath.Join(uc, "fermion-test")
}

var guestCache = sync.OnceValue(func() string {
	dir := filepath.Join(cacheBase(), "guests")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "" // no cache: every guest is built
	}
	pruneGuests(dir, time.Now())
	return dir
})

// cachedBuildGuest is BuildGuest through the on-disk guest cache. A module is looked up
// by guestCacheKey and, when missing, built and stored with an atomic rename, so
// parallel test binaries may build the same guest at once and each reads a whole file.
// Failing to key or store only costs a build.
func cachedBuildGuest(root, dir string, reactor bool) ([]byte, error) {
	cache := guestCache()
	if cache == "" {
		return BuildGuest(root, dir, reactor)
	}
	key, err := guestCacheKey(root, dir, reactor)
	if err != nil {
		return BuildGuest(root, dir, reactor)
	}
	p := filepath.Join(cache, key+".wasm")
	if b, err := os.ReadFile(p); err == nil && wholeModule(b) {
		now := time.Now()
		os.Chtimes(p, now, now) // in use: pruneGuests keeps it
		return b, nil
	}
	wasm, err := BuildGuest(root, dir, reactor)
	if err != nil {
		return nil, err
	}
	if !wholeModule(wasm) {
		return wasm, nil // the test reports what is wrong with it; the cache keeps none
	}
	if f, err := os.CreateTemp(cache, key+".*.tmp"); err == nil {
		_, werr := f.Write(wasm)
		if cerr := f.Close(); werr == nil && cerr == nil {
			werr = os.Rename(f.Name(), p)
		}
		if werr != nil {
			os.Remove(f.Name())
		}
	}
	return wasm, nil
}

// wholeModule reports whether b holds a whole module as the Go toolchain writes one: the
// magic and version, then sections whose sizes end exactly at b's end, one of them the
// code. A module cut short (on a full disk, a build's output and cached files were
// seen cut at 0 bytes and at exactly 4 MiB, magic intact) is neither stored nor taken
// from the cache, so one bad moment does not fail later runs. (A structural walk, not
// internal/wasmbin: the layer rules keep this package below it.)
func wholeModule(b []byte) bool {
	if len(b) < 8 || string(b[:8]) != "\x00asm\x01\x00\x00\x00" {
		return false
	}
	code := false
	for i := 8; i < len(b); {
		id := b[i]
		size, n := uvarint32(b[i+1:])
		if n == 0 || size > uint64(len(b)-i-1-n) {
			return false
		}
		code = code || id == 10
		i += 1 + n + int(size)
	}
	return code
}

// uvarint32 decodes an unsigned LEB128 of at most 5 bytes; n is 0 when b holds none.
func uvarint32(b []byte) (v uint64, n int) {
	for shift := 0; n < len(b) && n < 5; shift += 7 {
		c := b[n]
		n++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, n
		}
	}
	return 0, 0
}

// guestListFormat prints, for each non-standard package the guest is built from, what
// its bytes depend on: a module version (whose files cannot change) or, for this module
// and modules replaced by a local directory (no version), the files themselves.
const guestListFormat = `{{if not .Standard}}{{.ImportPath}}	{{.Dir}}	{{with .Module}}{{with .Replace}}{{.Path}}@{{.Version}}{{else}}{{.Path}}@{{.Version}}{{end}}{{end}}	` +
	`{{join .GoFiles ","}}	{{join .SFiles ","}}	{{join .EmbedFiles ","}}{{end}}`

// guestCacheKey hashes what decides a guest's bytes: the toolchain (the test binary's,
// which is the go command's), the build mode and environment, go.mod and go.sum, and
// every Go, assembly and embedded file of every package the guest imports from this
// module (go list -deps, for wasip1/wasm); packages of other modules by version.
func guestCacheKey(root, dir string, reactor bool) (string, error) {
	cmd := exec.Command("go", "list", "-deps", "-f", guestListFormat, "./"+filepath.ToSlash(dir))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("list the packages of guest %s: %v: %s", dir, err, stderr.Bytes())
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\nreactor=%v\nflags=%q\nGOFLAGS=%s\nGOEXPERIMENT=%s\nGOWASM=%s\n", runtime.Version(), dir, reactor, guestBuildFlags,
		os.Getenv("GOFLAGS"), os.Getenv("GOEXPERIMENT"), os.Getenv("GOWASM"))
	for _, f := range []string{"go.mod", "go.sum"} {
		if err := hashFile(h, filepath.Join(root, f)); err != nil && !os.IsNotExist(err) {
			return "", err
		}
	}
	for _, line := range strings.Split(string(out), "\n") {
		if line == "" {
			continue
		}
		fields := strings.Split(line, "\t")
		if len(fields) != 6 {
			return "", fmt.Errorf("list the packages of guest %s: unexpected line %q", dir, line)
		}
		fmt.Fprintf(h, "package %s %s\n", fields[0], fields[2])
		if mod := fields[2]; mod != "" && !strings.HasSuffix(mod, "@") {
			continue // a module version: its files are fixed by go.sum
		}
		for _, list := range fields[3:] {
			for _, name := range strings.Split(list, ",") {
				if name == "" {
					continue
				}
				if err := hashFile(h, filepath.Join(fields[1], name)); err != nil {
					return "", err
				}
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:24], nil
}

// hashFile writes a file's name, length and contents to h.
func hashFile(h hash.Hash, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(h, "file %s %d\n", filepath.ToSlash(path), len(b))
	h.Write(b)
	return nil
}

// pruneGuests removes cached guests, and temporary files a killed binary left, that no
// test binary has used for guestCacheKeep. Errors are ignored: a file left behind costs
// disk, not correctness.
func pruneGuests(dir string, now time.Time) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, de := range des {
		if fi, err := de.Info(); err == nil && !de.IsDir() && now.Sub(fi.ModTime()) > guestCacheKeep {
			os.Remove(filepath.Join(dir, de.Name()))
		}
	}
}
