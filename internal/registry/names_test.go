package registry

import (
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestOversizedInputsNotEchoed sends a 1 MB name (and tag, digest, upload id, path)
// on read and write paths: each is refused as invalid with a short error that
// quotes only the start of the input.
func TestOversizedInputsNotEchoed(t *testing.T) {
	tr := startRegistry(t, "", Config{})
	huge := strings.Repeat("a", 1<<20)
	for _, c := range []struct {
		name, method, path string
		status             int
		code               string
	}{
		{"blob GET", "GET", "/v2/" + huge + "/blobs/sha256:" + strings.Repeat("0", 64), http.StatusBadRequest, codeNameInvalid},
		{"blob HEAD", "HEAD", "/v2/" + huge + "/blobs/sha256:" + strings.Repeat("0", 64), http.StatusBadRequest, ""},
		{"manifest GET", "GET", "/v2/" + huge + "/manifests/latest", http.StatusBadRequest, codeNameInvalid},
		{"tags list", "GET", "/v2/" + huge + "/tags/list", http.StatusBadRequest, codeNameInvalid},
		{"referrers", "GET", "/v2/" + huge + "/referrers/sha256:" + strings.Repeat("0", 64), http.StatusBadRequest, codeNameInvalid},
		{"upload POST", "POST", "/v2/" + huge + "/blobs/uploads/", http.StatusBadRequest, codeNameInvalid},
		{"tag", "GET", "/v2/r/manifests/" + huge, http.StatusBadRequest, codeTagInvalid},
		{"digest", "GET", "/v2/r/blobs/sha256:" + huge, http.StatusBadRequest, codeDigestInvalid},
		{"upload id", "GET", "/v2/r/blobs/uploads/" + huge, http.StatusNotFound, codeBlobUploadUnknown},
		{"endpoint", "GET", "/" + huge, http.StatusNotFound, codeUnsupported},
		{"catalog last", "GET", "/v2/_catalog?last=" + huge, http.StatusBadRequest, codeNameInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp := tr.do(t, c.method, c.path, nil)
			if c.code == "" {
				resp.want(t, c.status)
			} else {
				resp.wantError(t, c.status, c.code)
			}
			if len(resp.body) > 1024 {
				t.Fatalf("a %d-byte error body for a 1 MB input", len(resp.body))
			}
		})
	}
}

func TestClip(t *testing.T) {
	for _, c := range []struct {
		name, in string
		whole    bool
	}{
		{"short", "acme/hello", true},
		{"at the limit", strings.Repeat("a", maxEcho+16), true},
		{"long", strings.Repeat("a", 1000), false},
		{"multibyte at the cut", strings.Repeat("a", maxEcho-1) + strings.Repeat("é", 100), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := clip(c.in)
			if c.whole != (got == c.in) {
				t.Fatalf("clip kept the input whole: %v, want %v (%q)", got == c.in, c.whole, got)
			}
			if !utf8.ValidString(got) || len(got) > maxEcho+32 {
				t.Fatalf("clip = %q", got)
			}
		})
	}
}
