package gateway

import (
	"net/http"
	"testing"
)

func TestCanonicalName(t *testing.T) {
	for _, name := range []string{
		"", "Content-Type", "content-type", "CONTENT-TYPE", "Content-type", "X-A", "x", "X",
		"-", "--x", "X--Y", "X-1a", "X-1A", "1a-b", "Www-Authenticate", "WWW-Authenticate",
		"X_Y", "x_y", "X Y", "x y", "X:Y", "é", "Content-Typé", "X-Ab\x00", "Set-Cookie",
	} {
		if got, want := canonicalName(name), http.CanonicalHeaderKey(name); got != want {
			t.Errorf("canonicalName(%q) = %q, want http.CanonicalHeaderKey's %q", name, got, want)
		}
	}
}

// FuzzCanonicalName: canonicalName is http.CanonicalHeaderKey for any name.
func FuzzCanonicalName(f *testing.F) {
	for _, s := range []string{"Content-Type", "content-type", "X-1a", "X Y", "-a", "Ä"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if got, want := canonicalName(name), http.CanonicalHeaderKey(name); got != want {
			t.Fatalf("canonicalName(%q) = %q, want http.CanonicalHeaderKey's %q", name, got, want)
		}
	})
}

// BenchmarkCanonicalName: a guest's usual, canonical names, through canonicalName and
// through http.CanonicalHeaderKey.
func BenchmarkCanonicalName(b *testing.B) {
	names := []string{"Content-Type", "X-Served-By"}
	for _, tc := range []struct {
		name string
		f    func(string) string
	}{{"gateway", canonicalName}, {"net-http", http.CanonicalHeaderKey}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				for _, n := range names {
					uriSink = tc.f(n)
				}
			}
		})
	}
}
