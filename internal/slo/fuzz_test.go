package slo

import (
	"errors"
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
