package sandbox

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"fermion.dev/fermion/internal/atomicfile"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/wasmbin"
)

// outlineVersion names the encoding of a cached wasmbin.Module. Change it whenever
// wasmbin.Module or what wasmbin.Inspect measures changes, so outlines read by an older
// Fermion are not reused (TestOutlineCacheRoundTrip fails when a field does not survive
// the encoding).
const outlineVersion = "outline-v1"

// Why cache a module's outline? vet reads the whole module (wasmbin.Inspect walks every
// function body to count its locals and branches) and then copies it to clamp its
// tables: about 8 ms of a cached load of examples/hello, whose other costs are wazero's.
// The outline is a function of the module's bytes alone, so it is kept on disk by the
// module's sha256, which Load computes anyway; the bounds and the host's imports are
// checked against it on every load, so changing a node's bounds or the host's functions
// needs no invalidation. Like the rewrite cache beside it, it trusts its directory,
// which only the node's own user writes; an entry that does not fit the module it is
// read for (size, section offsets) is ignored and written again.
type outlineCache struct {
	dir string // "" keeps nothing
}

// newOutlineCache returns the outline cache under a compilation cache directory and
// removes what an interrupted write left there.
func newOutlineCache(cacheDir string) (outlineCache, error) {
	if cacheDir == "" {
		return outlineCache{}, nil
	}
	dir := filepath.Join(cacheDir, "fermion-"+outlineVersion)
	if err := atomicfile.RemoveTemps(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return outlineCache{}, fmt.Errorf("clean outline cache: %w", err)
	}
	return outlineCache{dir: dir}, nil
}

func (c outlineCache) path(sum [32]byte) string {
	return filepath.Join(c.dir, hex.EncodeToString(sum[:])+".json")
}

// inspect returns wasm's outline, from the cache when it holds one that fits wasm
// (cached reports that). sum is the sha256 of wasm.
func (c outlineCache) inspect(wasm []byte, sum [32]byte) (m *wasmbin.Module, cached bool, err error) {
	if c.dir != "" {
		if b, err := os.ReadFile(c.path(sum)); err == nil {
			m := new(wasmbin.Module)
			if json.NewDecoder(bytes.NewReader(b)).Decode(m) == nil && outlineFits(m, len(wasm)) {
				return m, true, nil
			}
		}
	}
	if m, err = wasmbin.Inspect(wasm); err != nil {
		return nil, false, err
	}
	if c.dir != "" {
		// A cache that cannot be written costs the next start the walk, nothing else.
		if b, err := json.Marshal(m); err == nil && os.MkdirAll(c.dir, 0o700) == nil {
			atomicfile.Write(c.path(sum), b, 0o600)
		}
	}
	return m, false, nil
}

// outlineFits reports whether m can be the outline of a module of n bytes: its size is
// n and every offset clampTables uses lies inside it, in order, each defined table's
// limits inside the table section. It keeps a damaged entry from slicing past the
// module (FuzzOutlineCacheEntry).
func outlineFits(m *wasmbin.Module, n int) bool {
	if m.Size != n {
		return false
	}
	var tables *wasmbin.Section // the last table section, as clampTables takes it
	for i, s := range m.Sections {
		if s.Start < 8 || s.Start > s.Body || s.Body > s.End || s.End > n {
			return false
		}
		if s.ID == 4 {
			tables = &m.Sections[i]
		}
	}
	if tables == nil {
		return true // clampTables leaves such a module as it is
	}
	at := tables.Body
	for _, t := range m.Tables {
		if t.Imported {
			continue
		}
		if t.LimitsStart < at || t.LimitsStart > t.LimitsEnd || t.LimitsEnd > tables.End {
			return false
		}
		at = t.LimitsEnd
	}
	return true
}

// vetted is a module vet passed. Its bytes with the tables clamped are built only when
// a load needs them (a rewrite or a compile without the rewrite cache): a load whose
// rewrite is cached never copies the module.
type vetted struct {
	orig  []byte
	m     *wasmbin.Module
	limit uint64
	sum   [32]byte // identifies the vetted bytes: the rewrite cache's and the compile marker's key
	code  []byte   // orig with its tables clamped, once built
}

// bytes returns the module with its tables clamped (orig itself when none needs it).
func (v *vetted) bytes() []byte {
	if v.code == nil {
		v.code = clampTables(v.orig, v.m, v.limit)
	}
	return v.code
}

// vetModule reads a module's outline (from oc when it has it), holds it to the load
// bounds and the host's imports, and returns it vetted. sum is the sha256 of wasm.
func vetModule(wasm []byte, sum [32]byte, lim manifest.LoadLimits, oc outlineCache) (*vetted, error) {
	if n := int64(len(wasm)); n > lim.ModuleSize {
		// Refused before reading it: its size is all that is needed.
		return nil, &BoundError{Over: []OverBound{{Bound: boundByKey("max_module_size"), Value: n, Limit: lim.ModuleSize}}}
	}
	m, _, err := oc.inspect(wasm, sum)
	if err != nil {
		return nil, fmt.Errorf("read module: %w", err)
	}
	if err := checkBounds(m, lim); err != nil {
		return nil, err
	}
	if err := checkImports(m); err != nil {
		return nil, err
	}
	v := &vetted{orig: wasm, m: m, limit: uint64(lim.TableElements), sum: sum}
	if !tablesNeedClamp(m, v.limit) {
		v.code = wasm
	} else {
		// Hashing the clamped copy would cost as much again as hashing the module; the
		// table bound is all clampTables changes.
		v.sum = sha256.Sum256(fmt.Appendf(sum[:], "tables<=%d", lim.TableElements))
	}
	return v, nil
}
