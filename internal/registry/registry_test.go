package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBase(t *testing.T) {
	tr := startRegistry(t, "", Config{})
	resp := tr.do(t, "GET", "/v2/", nil).want(t, http.StatusOK)
	if v := resp.header.Get("Docker-Distribution-API-Version"); v != "registry/2.0" {
		t.Errorf("Docker-Distribution-API-Version %q", v)
	}
	tr.do(t, "GET", "/v3/", nil).wantError(t, http.StatusNotFound, codeUnsupported)
}

func TestBlobs(t *testing.T) {
	tr := startRegistry(t, "", Config{})
	for _, tc := range []struct {
		name string
		data []byte
		push func(t *testing.T, repo string, data []byte) digest.Digest
	}{
		{"monolithic", randomBytes(t, 100_000), func(t *testing.T, repo string, data []byte) digest.Digest { return tr.pushBlob(t, repo, data) }},
		{"chunked", randomBytes(t, 300_001), func(t *testing.T, repo string, data []byte) digest.Digest { return tr.pushChunked(t, repo, data, 3) }},
		{"chunked small", []byte("abc"), func(t *testing.T, repo string, data []byte) digest.Digest { return tr.pushChunked(t, repo, data, 3) }},
		{"empty", []byte{}, func(t *testing.T, repo string, data []byte) digest.Digest { return tr.pushBlob(t, repo, data) }},
		{"monolithic put", randomBytes(t, 5000), func(t *testing.T, repo string, data []byte) digest.Digest {
			d := digest.FromBytes(data)
			loc := tr.do(t, "POST", "/v2/"+repo+"/blobs/uploads/", nil).want(t, http.StatusAccepted).header.Get("Location")
			tr.do(t, "PUT", loc+"?digest="+d.String(), data).want(t, http.StatusCreated)
			return d
		}},
		{"sha512", randomBytes(t, 70_000), func(t *testing.T, repo string, data []byte) digest.Digest {
			d := digest.SHA512.FromBytes(data)
			loc := tr.do(t, "POST", "/v2/"+repo+"/blobs/uploads/", nil).want(t, http.StatusAccepted).header.Get("Location")
			loc = tr.do(t, "PATCH", loc, data[:1000]).want(t, http.StatusAccepted).header.Get("Location")
			tr.do(t, "PUT", loc+"?digest="+d.String(), data[1000:]).want(t, http.StatusCreated)
			return d
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := "blobs/" + strings.ReplaceAll(tc.name, " ", "-")
			d := tc.push(t, repo, tc.data)
			get := tr.do(t, "GET", "/v2/"+repo+"/blobs/"+d.String(), nil).want(t, http.StatusOK)
			if !bytes.Equal(get.body, tc.data) {
				t.Fatalf("pulled %d bytes, pushed %d", len(get.body), len(tc.data))
			}
			if get.header.Get("Docker-Content-Digest") != d.String() {
				t.Errorf("Docker-Content-Digest %q", get.header.Get("Docker-Content-Digest"))
			}
			head := tr.do(t, "HEAD", "/v2/"+repo+"/blobs/"+d.String(), nil).want(t, http.StatusOK)
			if head.header.Get("Content-Length") != fmt.Sprint(len(tc.data)) {
				t.Errorf("HEAD Content-Length %q", head.header.Get("Content-Length"))
			}
			// Content-addressed storage is shared, visibility is not.
			tr.do(t, "GET", "/v2/other/blobs/"+d.String(), nil).wantError(t, http.StatusNotFound, codeBlobUnknown)

			tr.do(t, "DELETE", "/v2/"+repo+"/blobs/"+d.String(), nil).want(t, http.StatusAccepted)
			tr.do(t, "GET", "/v2/"+repo+"/blobs/"+d.String(), nil).wantError(t, http.StatusNotFound, codeBlobUnknown)
			tr.do(t, "DELETE", "/v2/"+repo+"/blobs/"+d.String(), nil).wantError(t, http.StatusNotFound, codeBlobUnknown)
		})
	}
}

func TestBlobRange(t *testing.T) {
	tr := startRegistry(t, "", Config{})
	data := randomBytes(t, 2048)
	d := tr.pushBlob(t, "r", data)
	for _, tc := range []struct {
		rng    string
		status int
		body   []byte
	}{
		{"bytes=500-1499", http.StatusPartialContent, data[500:1500]},
		{"bytes=500-", http.StatusPartialContent, data[500:]},
		{"bytes=-500", http.StatusPartialContent, data[1548:]},
		{"bytes=2000-5000", http.StatusPartialContent, data[2000:]},
		{"bytes=500-0", http.StatusRequestedRangeNotSatisfiable, nil},
		{"bytes=5000-10000", http.StatusRequestedRangeNotSatisfiable, nil},
		{"items=1-2", http.StatusOK, data},
	} {
		t.Run(tc.rng, func(t *testing.T) {
			resp := tr.do(t, "GET", "/v2/r/blobs/"+d.String(), nil, "Range", tc.rng).want(t, tc.status)
			if tc.body != nil && !bytes.Equal(resp.body, tc.body) {
				t.Fatalf("got %d bytes, want %d", len(resp.body), len(tc.body))
			}
		})
	}
}

func TestMount(t *testing.T) {
	tr := startRegistry(t, "", Config{})
	d := tr.pushBlob(t, "src", []byte("shared layer"))
	for _, tc := range []struct {
		name, query string
		status      int
	}{
		{"from source", "mount=" + d.String() + "&from=src", http.StatusCreated},
		{"anonymous", "mount=" + d.String(), http.StatusCreated},
		{"source lacks it", "mount=" + digest.FromString("nope").String() + "&from=src", http.StatusAccepted},
		{"bad source name", "mount=" + d.String() + "&from=BAD", http.StatusAccepted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := "dst/" + strings.ReplaceAll(tc.name, " ", "-")
			resp := tr.do(t, "POST", "/v2/"+repo+"/blobs/uploads/?"+tc.query, nil).want(t, tc.status)
			if tc.status == http.StatusCreated {
				tr.do(t, "HEAD", "/v2/"+repo+"/blobs/"+d.String(), nil).want(t, http.StatusOK)
			} else if !strings.Contains(resp.header.Get("Location"), "/blobs/uploads/") {
				t.Fatalf("fallback Location %q", resp.header.Get("Location"))
			}
		})
	}
}

func TestManifests(t *testing.T) {
	tr := startRegistry(t, "", Config{})
	const repo = "app/hello"
	img := tr.newImage(t, repo, "1", nil)

	put := tr.putManifest(t, repo, "latest", img.body).want(t, http.StatusCreated)
	if put.header.Get("Docker-Content-Digest") != img.digest.String() ||
		put.header.Get("Location") != "/v2/"+repo+"/manifests/"+img.digest.String() {
		t.Fatalf("PUT headers %v", put.header)
	}
	for _, ref := range []string{"latest", img.digest.String()} {
		t.Run("get "+ref, func(t *testing.T) {
			get := tr.do(t, "GET", "/v2/"+repo+"/manifests/"+ref, nil).want(t, http.StatusOK)
			if !bytes.Equal(get.body, img.body) || get.header.Get("Content-Type") != v1.MediaTypeImageManifest ||
				get.header.Get("Docker-Content-Digest") != img.digest.String() {
				t.Fatalf("GET %s: %v %s", ref, get.header, get.body)
			}
			head := tr.do(t, "HEAD", "/v2/"+repo+"/manifests/"+ref, nil).want(t, http.StatusOK)
			if head.header.Get("Content-Length") != fmt.Sprint(len(img.body)) || len(head.body) != 0 {
				t.Fatalf("HEAD %s: %v", ref, head.header)
			}
		})
	}
	// By digest, and a second tag on the same manifest.
	tr.putManifest(t, repo, img.digest.String(), img.body).want(t, http.StatusCreated)
	tr.putManifest(t, repo, "stable", img.body).want(t, http.StatusCreated)

	// Delete by tag removes only the tag.
	tr.do(t, "DELETE", "/v2/"+repo+"/manifests/stable", nil).want(t, http.StatusAccepted)
	tr.do(t, "GET", "/v2/"+repo+"/manifests/stable", nil).wantError(t, http.StatusNotFound, codeManifestUnknown)
	tr.do(t, "GET", "/v2/"+repo+"/manifests/"+img.digest.String(), nil).want(t, http.StatusOK)

	// Delete by digest removes the manifest and the tags pointing to it.
	tr.do(t, "DELETE", "/v2/"+repo+"/manifests/"+img.digest.String(), nil).want(t, http.StatusAccepted)
	tr.do(t, "GET", "/v2/"+repo+"/manifests/"+img.digest.String(), nil).wantError(t, http.StatusNotFound, codeManifestUnknown)
	tr.do(t, "GET", "/v2/"+repo+"/manifests/latest", nil).wantError(t, http.StatusNotFound, codeManifestUnknown)
	tr.do(t, "DELETE", "/v2/"+repo+"/manifests/"+img.digest.String(), nil).wantError(t, http.StatusNotFound, codeManifestUnknown)

	// The blobs stay until deleted themselves.
	tr.do(t, "GET", "/v2/"+repo+"/blobs/"+img.layer.String(), nil).want(t, http.StatusOK)
}

func TestIndex(t *testing.T) {
	tr := startRegistry(t, "", Config{})
	const repo = "multi"
	img := tr.newImage(t, repo, "amd64", nil)
	idx, _ := json.Marshal(v1.Index{
		Versioned: specsVersioned(),
		MediaType: v1.MediaTypeImageIndex,
		Manifests: []v1.Descriptor{{MediaType: v1.MediaTypeImageManifest, Digest: img.digest, Size: int64(len(img.body))}},
	})
	put := func() response {
		return tr.do(t, "PUT", "/v2/"+repo+"/manifests/all", idx, "Content-Type", v1.MediaTypeImageIndex)
	}
	put().wantError(t, http.StatusBadRequest, codeManifestBlobUnknown)
	tr.putManifest(t, repo, img.digest.String(), img.body).want(t, http.StatusCreated)
	put().want(t, http.StatusCreated)
	get := tr.do(t, "GET", "/v2/"+repo+"/manifests/all", nil).want(t, http.StatusOK)
	if get.header.Get("Content-Type") != v1.MediaTypeImageIndex || !bytes.Equal(get.body, idx) {
		t.Fatalf("index GET %v %s", get.header, get.body)
	}
}

func TestTagsList(t *testing.T) {
	tr := startRegistry(t, "", Config{})
	const repo = "tags/list"
	img := tr.newImage(t, repo, "x", nil)
	want := []string{"a", "b.1", "c_2", "d-3", "e", "latest"}
	for _, tag := range want {
		tr.putManifest(t, repo, tag, img.body).want(t, http.StatusCreated)
	}
	list := func(query string) ([]string, string) {
		resp := tr.do(t, "GET", "/v2/"+repo+"/tags/list"+query, nil).want(t, http.StatusOK)
		var body struct {
			Name string   `json:"name"`
			Tags []string `json:"tags"`
		}
		if err := json.Unmarshal(resp.body, &body); err != nil || body.Name != repo {
			t.Fatalf("tags list body %s: %v", resp.body, err)
		}
		return body.Tags, resp.header.Get("Link")
	}
	all, link := list("")
	if strings.Join(all, ",") != strings.Join(want, ",") || link != "" {
		t.Fatalf("all tags %v (Link %q), want %v", all, link, want)
	}
	// Follow the Link header two at a time.
	var paged []string
	next := "?n=2"
	for pages := 0; next != ""; pages++ {
		if pages > len(want) {
			t.Fatal("pagination does not end")
		}
		tags, link := list(next)
		paged = append(paged, tags...)
		next = ""
		if link != "" {
			u := strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
			next = u[strings.Index(u, "?"):]
		}
	}
	if strings.Join(paged, ",") != strings.Join(want, ",") {
		t.Fatalf("paged tags %v, want %v", paged, want)
	}
	if tags, _ := list("?last=c_2"); strings.Join(tags, ",") != "d-3,e,latest" {
		t.Fatalf("last=c_2: %v", tags)
	}
	if tags, _ := list("?n=0"); len(tags) != 0 {
		t.Fatalf("n=0: %v", tags)
	}
	tr.do(t, "GET", "/v2/unknown/repo/tags/list", nil).wantError(t, http.StatusNotFound, codeNameUnknown)
}

func TestReferrers(t *testing.T) {
	tr := startRegistry(t, "", Config{})
	const repo = "signed"
	subject := tr.newImage(t, repo, "subject", nil)
	tr.putManifest(t, repo, "v1", subject.body).want(t, http.StatusCreated)
	subjDesc := &v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: subject.digest, Size: int64(len(subject.body))}

	sig := tr.newImage(t, repo, "sig", func(m *v1.Manifest) {
		m.ArtifactType = "application/vnd.example.signature"
		m.Subject = subjDesc
		m.Annotations = map[string]string{"org.example": "signature"}
	})
	sbom := tr.newImage(t, repo, "sbom", func(m *v1.Manifest) {
		m.Config.MediaType = "application/vnd.example.sbom"
		m.Subject = subjDesc
	})
	for _, a := range []image{sig, sbom} {
		put := tr.putManifest(t, repo, a.digest.String(), a.body).want(t, http.StatusCreated)
		if put.header.Get("OCI-Subject") != subject.digest.String() {
			t.Fatalf("OCI-Subject %q", put.header.Get("OCI-Subject"))
		}
	}
	referrers := func(query string) ([]v1.Descriptor, string) {
		resp := tr.do(t, "GET", "/v2/"+repo+"/referrers/"+subject.digest.String()+query, nil).want(t, http.StatusOK)
		if resp.header.Get("Content-Type") != v1.MediaTypeImageIndex {
			t.Fatalf("Content-Type %q", resp.header.Get("Content-Type"))
		}
		var idx v1.Index
		if err := json.Unmarshal(resp.body, &idx); err != nil || idx.SchemaVersion != 2 || idx.MediaType != v1.MediaTypeImageIndex {
			t.Fatalf("referrers body %s: %v", resp.body, err)
		}
		return idx.Manifests, resp.header.Get("OCI-Filters-Applied")
	}
	all, filters := referrers("")
	if len(all) != 2 || filters != "" {
		t.Fatalf("referrers %+v, filters %q", all, filters)
	}
	byDigest := map[digest.Digest]v1.Descriptor{}
	for _, d := range all {
		byDigest[d.Digest] = d
	}
	if d := byDigest[sig.digest]; d.ArtifactType != "application/vnd.example.signature" ||
		d.Annotations["org.example"] != "signature" || d.Size != int64(len(sig.body)) || d.MediaType != v1.MediaTypeImageManifest {
		t.Errorf("signature descriptor %+v", d)
	}
	if d := byDigest[sbom.digest]; d.ArtifactType != "application/vnd.example.sbom" {
		t.Errorf("sbom descriptor %+v (artifactType falls back to the config media type)", d)
	}
	only, filters := referrers("?artifactType=application/vnd.example.sbom")
	if len(only) != 1 || only[0].Digest != sbom.digest || filters != "artifactType" {
		t.Fatalf("filtered referrers %+v, filters %q", only, filters)
	}
	// A deleted referrer leaves the list.
	tr.do(t, "DELETE", "/v2/"+repo+"/manifests/"+sig.digest.String(), nil).want(t, http.StatusAccepted)
	if left, _ := referrers(""); len(left) != 1 || left[0].Digest != sbom.digest {
		t.Fatalf("after delete %+v", left)
	}
	// No referrers: an empty index, not an error.
	tr.do(t, "GET", "/v2/"+repo+"/referrers/"+digest.FromString("none").String(), nil).want(t, http.StatusOK)
}

func TestLargeManifest(t *testing.T) {
	tr := startRegistry(t, "", Config{})
	const repo = "large"
	img := tr.newImage(t, repo, "big", func(m *v1.Manifest) {
		m.Annotations = map[string]string{}
		for i := range 300 {
			m.Annotations[fmt.Sprintf("a%d", i)] = strings.Repeat("A", 10000)
		}
	})
	if len(img.body) <= inlineManifestMax || len(img.body) > defaultMaxManifestBytes {
		t.Fatalf("manifest of %d bytes does not test the object store path", len(img.body))
	}
	tr.putManifest(t, repo, "big", img.body).want(t, http.StatusCreated)
	get := tr.do(t, "GET", "/v2/"+repo+"/manifests/big", nil).want(t, http.StatusOK)
	if !bytes.Equal(get.body, img.body) {
		t.Fatalf("got %d bytes back, pushed %d", len(get.body), len(img.body))
	}
}

func TestMetrics(t *testing.T) {
	tr := startRegistry(t, "", Config{})
	data := []byte("counted")
	d := tr.pushBlob(t, "m", data)
	tr.do(t, "GET", "/v2/m/blobs/"+d.String(), nil).want(t, http.StatusOK)
	tr.do(t, "GET", "/v2/m/blobs/"+digest.FromString("x").String(), nil).want(t, http.StatusNotFound)
	if n := tr.counter(t, "fermion_registry_requests_total", "method", "GET", "route", "blobs", "code", "200"); n != 1 {
		t.Errorf("GET blobs 200 counted %v times", n)
	}
	if n := tr.counter(t, "fermion_registry_requests_total", "method", "GET", "route", "blobs", "code", "404"); n != 1 {
		t.Errorf("GET blobs 404 counted %v times", n)
	}
	if n := tr.counter(t, "fermion_registry_bytes_total", "direction", "in"); n != float64(len(data)) {
		t.Errorf("bytes in %v", n)
	}
	if n := tr.counter(t, "fermion_registry_bytes_total", "direction", "out"); n < float64(len(data)) {
		t.Errorf("bytes out %v", n)
	}
	tr.do(t, "POST", "/v2/m/blobs/uploads/?digest="+digest.FromString("y").String(), []byte("z")).want(t, http.StatusBadRequest)
	if n := tr.counter(t, "fermion_registry_upload_failures_total", "reason", failDigest); n != 1 {
		t.Errorf("digest failures %v", n)
	}
}

// TestSharedBuckets serves one JetStream through two Registries, as the servers of a
// cluster do: New finds the buckets the first made, and each sees the other's writes.
func TestSharedBuckets(t *testing.T) {
	a := startRegistry(t, "", Config{})
	b2, err := New(context.Background(), a.eng.JetStream(), Config{PushTokens: []string{testPushToken}})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	b := &testRegistry{t: t, reg: b2, srv: httptest.NewServer(b2), token: testPushToken}
	defer b.srv.Close()

	img := a.newImage(t, "shared", "x", nil)
	a.putManifest(t, "shared", "latest", img.body).want(t, http.StatusCreated)
	b.do(t, "GET", "/v2/shared/manifests/latest", nil).want(t, http.StatusOK)
	loc := b.do(t, "POST", "/v2/shared/blobs/uploads/", nil).want(t, http.StatusAccepted).header.Get("Location")
	loc = b.do(t, "PATCH", loc, []byte("half")).want(t, http.StatusAccepted).header.Get("Location")
	// The session lives in JetStream, so the other server can finish it.
	a.do(t, "PUT", loc+"?digest="+digestOf([]byte("half and half")), []byte(" and half")).want(t, http.StatusCreated)

	if _, err := New(context.Background(), a.eng.JetStream(), Config{Replicas: 3}); err == nil ||
		!strings.Contains(err.Error(), "replicas") {
		t.Fatalf("R3 buckets on a single server: %v", err)
	}
	if _, err := New(context.Background(), a.eng.JetStream(), Config{Replicas: 2}); err == nil {
		t.Fatal("replicas 2 accepted")
	}
}
