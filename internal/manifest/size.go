package manifest

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strings"
)

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30

	// wasmPageSize is the WebAssembly linear-memory page size; memory limits
	// are enforced in whole pages, so sizes are rounded up to it.
	wasmPageSize = 64 * kib
)

// sizeUnits are matched case-insensitively. Decimal units are SI (KB = 1000)
// and binary units are IEC (KiB = 1024) so that "64MB" and "64MiB" mean what
// they say instead of silently aliasing.
var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kb":  1000,
	"mb":  1000 * 1000,
	"gb":  1000 * 1000 * 1000,
	"kib": kib,
	"mib": mib,
	"gib": gib,
}

var sizeNumberRE = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)

// errNotSize means the text does not look like a size at all, as opposed to
// being a well-formed size with an unusable value.
var errNotSize = errors.New("not a size")

// parseSize parses "64MiB", "1.5 GB", "512kib" or a bare byte count such as
// "1048576". Fractions are allowed as long as they come out to whole bytes.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "-") {
		return 0, errors.New("must not be negative")
	}
	n := 0
	for n < len(t) && (t[n] >= '0' && t[n] <= '9' || t[n] == '.') {
		n++
	}
	num, unit := t[:n], strings.ToLower(strings.TrimSpace(t[n:]))
	mult, ok := sizeUnits[unit]
	if !ok || !sizeNumberRE.MatchString(num) || len(num) > 40 {
		return 0, errNotSize
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, errNotSize
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		return 0, errors.New("is not a whole number of bytes")
	}
	v := r.Num()
	if !v.IsInt64() {
		return 0, fmt.Errorf("is larger than %d bytes", int64(math.MaxInt64))
	}
	return v.Int64(), nil
}

// formatSize renders bytes with the largest binary unit that divides them
// exactly, so messages echo sizes the way users write them.
func formatSize(n int64) string {
	switch {
	case n != 0 && n%gib == 0:
		return fmt.Sprintf("%dGiB", n/gib)
	case n != 0 && n%mib == 0:
		return fmt.Sprintf("%dMiB", n/mib)
	case n != 0 && n%kib == 0:
		return fmt.Sprintf("%dKiB", n/kib)
	default:
		return fmt.Sprintf("%dB", n)
	}
}

// roundUpToPage rounds n up to a whole number of wasm pages. Callers bound n
// first so this cannot overflow.
func roundUpToPage(n uint64) uint64 {
	return (n + wasmPageSize - 1) / wasmPageSize * wasmPageSize
}

// ParseSize parses a size as manifests write it ("64MiB", "1.5 GB", "1048576") for
// flags and other inputs outside a manifest.
func ParseSize(s string) (int64, error) {
	n, err := parseSize(s)
	if errors.Is(err, errNotSize) {
		return 0, fmt.Errorf("%q is not a size; use a number with a unit such as \"512MiB\" or \"4GiB\"", s)
	}
	return n, err
}

// FormatSize renders a byte count as a manifest would write it ("64MiB", "1500B").
func FormatSize(n int64) string { return formatSize(n) }
