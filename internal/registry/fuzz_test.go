package registry

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// FuzzParseManifest feeds manifest bodies and content types from clients to the parser:
// it must not panic, and what it accepts must be a manifest the registry can check.
func FuzzParseManifest(f *testing.F) {
	cfg := `{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}`
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":`+cfg+`,"layers":[`+cfg+`]}`), v1.MediaTypeImageManifest)
	f.Add([]byte(`{"schemaVersion":2,"manifests":[`+cfg+`],"subject":`+cfg+`}`), v1.MediaTypeImageIndex)
	f.Add([]byte(`{"schemaVersion":2,"config":`+cfg+`}`), "application/vnd.docker.distribution.manifest.v2+json; charset=utf-8")
	f.Add([]byte(`null`), "")
	f.Add([]byte(`{"schemaVersion":2,"layers":[{"digest":"sha512:00"}]}`), v1.MediaTypeImageManifest)
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		m, mt, e := parseManifest(body, contentType)
		if e != nil {
			if e.Code != codeManifestInvalid || e.Message == "" {
				t.Fatalf("error %+v", e)
			}
			return
		}
		switch {
		case isImageManifest(mt):
			if m.Config == nil || m.Config.Digest.Validate() != nil {
				t.Fatalf("accepted an image manifest without a valid config: %s", body)
			}
			for _, l := range m.Layers {
				if l.Digest.Validate() != nil {
					t.Fatalf("accepted layer digest %q", l.Digest)
				}
			}
		case isIndex(mt):
			for _, c := range m.Manifests {
				if c.Digest.Validate() != nil {
					t.Fatalf("accepted child digest %q", c.Digest)
				}
			}
		default:
			t.Fatalf("accepted media type %q", mt)
		}
		if m.Subject != nil && m.Subject.Digest.Validate() != nil {
			t.Fatalf("accepted subject digest %q", m.Subject.Digest)
		}
	})
}

// FuzzParsePath feeds request paths: parsing must not panic, and a path it accepts
// names a route and, for a repository route, the repository the path spells.
func FuzzParsePath(f *testing.F) {
	for _, p := range []string{"/v2/", "/v2/_catalog", "/v2/a/b/blobs/sha256:00", "/v2/r/blobs/uploads/",
		"/v2/r/blobs/uploads/0123", "/v2/r/tags/list", "/v2/r/manifests/v1", "/v2/r/referrers/sha256:1",
		"/v2//blobs/x", "/v3/r/tags/list", "/v2/_catalog/tags/list"} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, path string) {
		req, ok := parsePath(path)
		if !ok {
			if req.route != routeUnknown {
				t.Fatalf("refused %q with route %q", path, req.route)
			}
			return
		}
		switch req.route {
		case routeBase, routeCatalog:
			if req.repo != "" {
				t.Fatalf("%q: route %s with repository %q", path, req.route, req.repo)
			}
		case routeBlobs, routeUploads, routeManifests, routeTags, routeReferrers:
			if !strings.HasPrefix(path, "/v2/"+req.repo+"/") {
				t.Fatalf("%q: repository %q is not the path's", path, req.repo)
			}
		default:
			t.Fatalf("%q: route %q", path, req.route)
		}
	})
}

// FuzzCatalogQuery feeds /v2/_catalog query strings: parsing must not panic, n stays
// within a page, last is a valid name, and an error quotes at most a clipped input.
func FuzzCatalogQuery(f *testing.F) {
	for _, q := range []string{"", "n=2", "n=0&last=a/b", "n=-1", "n=99999999999999999999", "last=UPPER", "n=x&last="} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		n, last, e := parseCatalogQuery(q)
		if e != nil {
			if e.Status != http.StatusBadRequest || len(e.Message) > 1024 {
				t.Fatalf("error %d %q", e.Status, e.Message)
			}
			return
		}
		if n < 0 || n > catalogPage || (last != "" && !validRepo(last)) {
			t.Fatalf("n=%d last=%q from %q", n, last, raw)
		}
		page, more := catalogSlice([]string{"a", "b", "c"}, last, n)
		if len(page) > n || (more && len(page) == 0) {
			t.Fatalf("page %v more %v for n=%d", page, more, n)
		}
	})
}

// FuzzRanges feeds the Range and Content-Range headers clients send: parsing must not
// panic, and what it accepts lies inside the blob or continues an upload.
func FuzzRanges(f *testing.F) {
	for _, h := range []string{"bytes=0-9", "bytes=-5", "bytes=5-", "bytes=9-0", "bytes=0-1,3-4", "0-99", "bytes 0-99/100", "x"} {
		f.Add(h, int64(100))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -size
		}
		if size < 0 { // math.MinInt64
			return
		}
		start, length, partial, ok := parseRange(h, size)
		if ok && (start < 0 || length < 0 || start+length > size || (!partial && (start != 0 || length != size))) {
			t.Fatalf("Range %q of %d: start %d length %d partial %v", h, size, start, length, partial)
		}
		s, e, present, err := parseContentRange(h)
		if err == nil && present && (s < 0 || e < s) {
			t.Fatalf("Content-Range %q: %d-%d", h, s, e)
		}
		if err != nil && len(err.Error()) > 1024 {
			t.Fatalf("a %d-byte error for Content-Range", len(err.Error()))
		}
	})
}
