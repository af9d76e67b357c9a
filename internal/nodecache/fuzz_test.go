package nodecache

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzParseIndex: index.json is read back from disk, where anything can happen to it.
// Whatever it holds, parsing must not panic and every entry kept must name a file inside
// the blobs directory.
func FuzzParseIndex(f *testing.F) {
	good, _ := json.Marshal(indexFile{Version: indexVersion, Entries: []*record{{
		ManifestDigest: sha256Digest([]byte("m")),
		Layer:          Descriptor{Digest: sha256Digest([]byte("l")), Size: 1},
		Repos:          map[string]*repoRecord{"acme/hello": {Signer: "s", Tags: map[string]time.Time{"v1": {}}}},
	}}, Pins: []string{"sha256:x"}})
	f.Add(good)
	f.Add([]byte(`{"version":1,"entries":[null,{"manifestDigest":"sha256:ab","layer":{"digest":"sha256:../../x","size":-1}}]}`))
	f.Add([]byte(`{"version":1,"entries":[{"manifestDigest":"sha256:ab","layer":{"digest":"sha256:ab","size":1},"config":{"digest":"sha256:../x","size":1}}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, b []byte) {
		idx, _, err := parseIndex(b)
		if err != nil {
			return
		}
		c := &Cache{dir: "/cache"}
		blobs := filepath.Join("/cache", blobsSubdir) + "/"
		for _, r := range idx.Entries {
			for _, b := range r.blobs() {
				if p := c.blobPath(b.Digest); !strings.HasPrefix(p, blobs) || filepath.Clean(p) != p {
					t.Fatalf("entry names %q, outside %s", p, blobs)
				}
			}
			if r.Layer.Size < 0 || len(r.Repos) == 0 {
				t.Fatalf("entry %+v kept", r)
			}
		}
	})
}
