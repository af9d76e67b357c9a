package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
)

// TestBodyTimeoutCountsBytes: the 408's message names the minimum body rate in the
// number it calls for.
func TestBodyTimeoutCountsBytes(t *testing.T) {
	for _, tt := range []struct {
		rate int64
		want string
	}{
		{1, "at least 1 byte/s"},
		{1024, "at least 1024 bytes/s"},
	} {
		t.Run(strings.TrimPrefix(tt.want, "at least "), func(t *testing.T) {
			g := New(Config{Limits: Limits{MinBodyRate: tt.rate}})
			w := httptest.NewRecorder()
			g.bodyTimeout(w, http.NewResponseController(w), "id")
			if w.Code != http.StatusRequestTimeout || !strings.Contains(w.Body.String(), tt.want) {
				t.Errorf("%d %q, want 408 saying %q", w.Code, w.Body.String(), tt.want)
			}
		})
	}
}

// TestTooLargeCountsBytes: the 413's message names the limit in the number it calls
// for, so a one-byte limit does not read "1 bytes".
func TestTooLargeCountsBytes(t *testing.T) {
	for _, tt := range []struct {
		limit int64
		want  string
	}{
		{0, "limit of 0 bytes "},
		{1, "limit of 1 byte "},
		{2, "limit of 2 bytes "},
	} {
		t.Run(strings.TrimSpace(strings.TrimPrefix(tt.want, "limit of ")), func(t *testing.T) {
			g := New(Config{})
			spec := sandbox.Spec{Name: "fixed", Version: "1", Limits: manifest.Limits{MaxRequestBody: tt.limit}}
			if err := g.SetRoutes([]Route{{Prefix: "/hello", Target: &fixedTarget{spec: spec}}}); err != nil {
				t.Fatal(err)
			}
			w := httptest.NewRecorder()
			g.ServeHTTP(w, httptest.NewRequest("POST", "http://gw/hello", strings.NewReader("abc")))
			if w.Code != http.StatusRequestEntityTooLarge || !strings.Contains(w.Body.String(), tt.want) {
				t.Errorf("%d %q, want 413 saying %q", w.Code, w.Body.String(), tt.want)
			}
		})
	}
}
