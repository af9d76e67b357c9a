package registry

import (
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
