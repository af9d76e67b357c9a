package oci_test

import (
	"testing"

	"fermion.dev/fermion/internal/oci"
)

// FuzzParseRef: references come from the command line and from node assignments.
// ParseRef never panics, and what it accepts prints as a reference that parses back to
// the same Ref.
func FuzzParseRef(f *testing.F) {
	for _, s := range []string{
		"127.0.0.1:5000/acme/hello:1.0.0",
		"127.0.0.1:5000/acme/hello",
		"localhost/acme/hello@sha256:9c435e422c6733129c722cd3a20d810dbcdfe5b14c5cec6824b1108f80694409",
		"[::1]:5000/a/b:v1@sha256:9c435e422c6733129c722cd3a20d810dbcdfe5b14c5cec6824b1108f80694409",
		"host/repo:tag@sha256:short", "host", "/repo", "host/Repo", "host/repo:", "host/repo@", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := oci.ParseRef(s)
		if err != nil {
			return
		}
		if r.Registry == "" || r.Repo == "" || (r.Tag == "" && r.Digest == "") {
			t.Fatalf("ParseRef(%q) = %+v: missing parts", s, r)
		}
		again, err := oci.ParseRef(r.String())
		if err != nil {
			t.Fatalf("ParseRef(%q) = %+v, whose String %q does not parse: %v", s, r, r.String(), err)
		}
		if again != r {
			t.Fatalf("ParseRef(%q) = %+v, but its String %q parses as %+v", s, r, r.String(), again)
		}
	})
}
