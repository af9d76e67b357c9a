package slo

import (
	"errors"
	"math/big"
	"testing"
)

// FuzzDecode feeds arbitrary files to Decode: it must never panic, must return either
// specs or an *Error, and every spec it returns must pass Validate.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(twoSLOs))
	f.Add([]byte("name: a\napp: hello\nsli: availability\nobjective: 99.9\n"))
	f.Add([]byte("name: a\napp: hello\nsli: {kind: latency, threshold: 1s}\nobjective: 99\nscope: {per: node}\n---\n"))
	f.Add([]byte("name: a\napp: b\nsli: availability\nobjective: 1\nalerting: {tiers: [{severity: page, factor: 1, long: 2h, short: 1h, for: 1m}]}\n"))
	f.Add([]byte("{[{[{[\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		specs, err := Decode("f.yaml", data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || len(e.Problems) == 0 || specs != nil {
				t.Fatalf("bad error shape: %v, %v", specs, err)
			}
			return
		}
		for i := range specs {
			if err := specs[i].Validate(); err != nil {
				t.Fatalf("Decode accepted a spec Validate refuses: %v", err)
			}
		}
	})
}

// FuzzAtLeast checks the 192-bit cross-multiplication against math/big on arbitrary
// counts, objectives and factors.
func FuzzAtLeast(f *testing.F) {
	f.Add(int64(144), int64(10000), uint64(999), uint64(1000), uint64(144), uint64(10))
	f.Add(int64(1<<62), int64(1<<62), uint64(999999999), uint64(1000000000), uint64(999999999999999999), uint64(1))
	f.Fuzz(func(t *testing.T, bad, total int64, on, od, fn, fd uint64) {
		if total <= 0 || bad < 0 || bad > total || od == 0 || on == 0 || on >= od || fd == 0 || fn == 0 ||
			od > 1e9 || fd > 1e9 || fn > 1e18 {
			return
		}
		c := Counts{Good: total - bad, Total: total}
		got := AtLeast(c, Ratio{on, od}, Ratio{fn, fd})
		l := new(big.Int).Mul(big.NewInt(bad), new(big.Int).SetUint64(od))
		l.Mul(l, new(big.Int).SetUint64(fd))
		r := new(big.Int).Mul(new(big.Int).SetUint64(fn), new(big.Int).SetUint64(od-on))
		r.Mul(r, big.NewInt(total))
		if want := bad > 0 && l.Cmp(r) >= 0; got != want {
			t.Fatalf("AtLeast(%d/%d, %d/%d, %d/%d) = %v, want %v", bad, total, on, od, fn, fd, got, want)
		}
	})
}
