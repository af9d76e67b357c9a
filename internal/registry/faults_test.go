package registry

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestDigestMismatchStoresNothing(t *testing.T) {
	tr := startRegistry(t, "", Config{})
	data := randomBytes(t, 10_000)
	d := digest.FromBytes(data)
	for _, tc := range []struct {
		name   string
		upload func(t *testing.T) response
	}{
		{"chunks short of the digest", func(t *testing.T) response {
			loc := tr.do(t, "POST", "/v2/r/blobs/uploads/", nil).want(t, http.StatusAccepted).header.Get("Location")
			loc = tr.do(t, "PATCH", loc, data[:5000], "Content-Range", "0-4999").want(t, http.StatusAccepted).header.Get("Location")
			return tr.do(t, "PUT", loc+"?digest="+d.String(), nil)
		}},
		{"last chunk short", func(t *testing.T) response {
			loc := tr.do(t, "POST", "/v2/r/blobs/uploads/", nil).want(t, http.StatusAccepted).header.Get("Location")
			loc = tr.do(t, "PATCH", loc, data[:5000]).want(t, http.StatusAccepted).header.Get("Location")
			return tr.do(t, "PUT", loc+"?digest="+d.String(), data[5000:9000])
		}},
		{"monolithic wrong bytes", func(t *testing.T) response {
			return tr.do(t, "POST", "/v2/r/blobs/uploads/?digest="+d.String(), data[1:])
		}},
		{"sha512 mismatch", func(t *testing.T) response {
			loc := tr.do(t, "POST", "/v2/r/blobs/uploads/", nil).want(t, http.StatusAccepted).header.Get("Location")
			loc = tr.do(t, "PATCH", loc, data[:100]).want(t, http.StatusAccepted).header.Get("Location")
			return tr.do(t, "PUT", loc+"?digest="+digest.SHA512.FromBytes(data).String(), nil)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := tc.upload(t)
			resp.wantError(t, http.StatusBadRequest, codeDigestInvalid)
			tr.do(t, "HEAD", "/v2/r/blobs/"+d.String(), nil).want(t, http.StatusNotFound)
			if tr.stored(t, d) || tr.stored(t, digest.SHA512.FromBytes(data)) {
				t.Fatal("a blob was written despite the digest mismatch")
			}
			if left := tr.uploadObjects(t); len(left) != 0 {
				t.Fatalf("upload chunks left behind: %v", left)
			}
		})
	}
	// The session ends with a failed finalize.
	loc := tr.do(t, "POST", "/v2/r/blobs/uploads/", nil).want(t, http.StatusAccepted).header.Get("Location")
	tr.do(t, "PUT", loc+"?digest="+d.String(), []byte("nope")).wantError(t, http.StatusBadRequest, codeDigestInvalid)
	tr.do(t, "GET", loc, nil).wantError(t, http.StatusNotFound, codeBlobUploadUnknown)
	if n := tr.counter(t, "fermion_registry_upload_failures_total", "reason", failDigest); n != 5 {
		t.Errorf("digest_mismatch failures counted %v, want 5", n)
	}
}

// rawRequest sends head and body on a new connection, half-closes it (the body is then
// shorter than its Content-Length) and returns the status line.
func rawRequest(t *testing.T, tr *testRegistry, head string, body []byte) string {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(tr.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := fmt.Fprintf(conn, "%s\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", head, testPushToken); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	status, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("read status: %v", err)
	}
	return strings.TrimSpace(status)
}

func TestTruncatedBody(t *testing.T) {
	tr := startRegistry(t, "", Config{})
	data := randomBytes(t, 4000)
	d := digest.FromBytes(data)

	t.Run("monolithic", func(t *testing.T) {
		status := rawRequest(t, tr, fmt.Sprintf("POST /v2/r/blobs/uploads/?digest=%s HTTP/1.1\r\nContent-Length: %d", d, len(data)), data[:1000])
		if !strings.Contains(status, " 400 ") {
			t.Fatalf("status %q, want 400", status)
		}
		if tr.stored(t, d) {
			t.Fatal("a truncated monolithic upload stored a blob")
		}
	})
	t.Run("chunk", func(t *testing.T) {
		loc := tr.do(t, "POST", "/v2/r/blobs/uploads/", nil).want(t, http.StatusAccepted).header.Get("Location")
		// Big enough to be spooled to a chunk object before the body runs out.
		status := rawRequest(t, tr, fmt.Sprintf("PATCH %s HTTP/1.1\r\nContent-Length: %d", loc, 1<<20), data)
		if !strings.Contains(status, " 400 ") {
			t.Fatalf("status %q, want 400", status)
		}
		if r := tr.do(t, "GET", loc, nil).want(t, http.StatusNoContent).header.Get("Range"); r != "0-0" {
			t.Fatalf("the session holds %q after a truncated chunk, want nothing", r)
		}
		if left := tr.uploadObjects(t); len(left) != 0 {
			t.Fatalf("a truncated chunk left objects: %v", left)
		}
		// The session still works.
		tr.do(t, "PUT", loc+"?digest="+d.String(), data).want(t, http.StatusCreated)
	})
}

func TestOutOfOrderChunk(t *testing.T) {
	tr := startRegistry(t, "", Config{})
	data := randomBytes(t, 3000)
	loc := tr.do(t, "POST", "/v2/r/blobs/uploads/", nil).want(t, http.StatusAccepted).header.Get("Location")
	loc = tr.do(t, "PATCH", loc, data[:1000], "Content-Range", "0-999").want(t, http.StatusAccepted).header.Get("Location")
	for _, tc := range []struct{ name, rng string }{
		{"gap", "2000-2999"},
		{"overlap", "500-1499"},
		{"restart", "0-999"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var start, end int
			fmt.Sscanf(tc.rng, "%d-%d", &start, &end)
			resp := tr.do(t, "PATCH", loc, data[start:end+1], "Content-Range", tc.rng)
			resp.wantError(t, http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid)
			if resp.header.Get("Range") != "0-999" || resp.header.Get("Location") == "" {
				t.Fatalf("416 headers %v", resp.header)
			}
		})
	}
	tr.do(t, "PUT", loc+"?digest="+digest.FromBytes(data).String(), data[2000:], "Content-Range", "2000-2999").
		wantError(t, http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid)
	if status := rawRequest(t, tr, "PATCH "+loc+" HTTP/1.1\r\nContent-Range: 1000-1999\r\nContent-Length: 5", data[1000:1005]); !strings.Contains(status, " 400 ") {
		t.Fatalf("Content-Range longer than the body: %q, want 400", status)
	}
	tr.do(t, "PATCH", loc, data[1000:2000], "Content-Range", "bytes=oops").wantError(t, http.StatusBadRequest, codeBlobUploadInvalid)
	// The session is intact and continues where it was.
	loc = tr.do(t, "PATCH", loc, data[1000:2000], "Content-Range", "1000-1999").want(t, http.StatusAccepted).header.Get("Location")
	tr.do(t, "PUT", loc+"?digest="+digest.FromBytes(data).String(), data[2000:], "Content-Range", "2000-2999").want(t, http.StatusCreated)
}

func TestManifestBlobUnknown(t *testing.T) {
	tr := startRegistry(t, "", Config{})
	missing := digest.FromString("never pushed")
	for _, tc := range []struct {
		name   string
		mutate func(*v1.Manifest)
	}{
		{"layer", func(m *v1.Manifest) { m.Layers[0].Digest = missing }},
		{"config", func(m *v1.Manifest) { m.Config.Digest = missing }},
		{"layer in another repo", func(m *v1.Manifest) {
			m.Layers = append(m.Layers, v1.Descriptor{MediaType: v1.MediaTypeImageLayer, Digest: tr.pushBlob(t, "elsewhere", []byte("elsewhere")), Size: 9})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := tr.newImage(t, "r", tc.name, tc.mutate)
			msg := tr.putManifest(t, "r", "t", img.body).wantError(t, http.StatusBadRequest, codeManifestBlobUnknown)
			if !strings.Contains(msg, "push it before the manifest") {
				t.Errorf("message %q does not say how to fix it", msg)
			}
			tr.do(t, "GET", "/v2/r/manifests/t", nil).wantError(t, http.StatusNotFound, codeManifestUnknown)
			tr.do(t, "GET", "/v2/r/manifests/"+img.digest.String(), nil).wantError(t, http.StatusNotFound, codeManifestUnknown)
		})
	}
	// Non-distributable layers are never pushed and need not be.
	img := tr.newImage(t, "r", "nd", func(m *v1.Manifest) {
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: v1.MediaTypeImageLayerNonDistributableGzip, //nolint:staticcheck // testing the deprecated type
			Digest: missing, Size: 100, URLs: []string{"https://example.com/layer"}})
	})
	tr.putManifest(t, "r", "nd", img.body).want(t, http.StatusCreated)
}

func TestImmutableVersionTags(t *testing.T) {
	tr := startRegistry(t, "", Config{})
	a := tr.newImage(t, "app", "a", nil)
	b := tr.newImage(t, "app", "b", nil)
	for _, tc := range []struct {
		tag       string
		immutable bool
	}{
		{"1.2.0", true},
		{"v1.2.0", true},
		{"2.0.0-rc.1", true},
		{"latest", false},
		{"1.2", false},
		{"sha256-" + strings.Repeat("a", 64) + ".sig", false},
	} {
		t.Run(tc.tag, func(t *testing.T) {
			tr.putManifest(t, "app", tc.tag, a.body).want(t, http.StatusCreated)
			tr.putManifest(t, "app", tc.tag, a.body).want(t, http.StatusCreated) // identical re-push
			resp := tr.putManifest(t, "app", tc.tag, b.body)
			want := b.digest
			if tc.immutable {
				msg := resp.wantError(t, http.StatusForbidden, codeDenied)
				if wantMsg := fmt.Sprintf("tag %q is immutable (already %s); push a new version", tc.tag, a.digest); msg != wantMsg {
					t.Errorf("message %q, want %q", msg, wantMsg)
				}
				want = a.digest
			} else {
				resp.want(t, http.StatusCreated)
			}
			got := tr.do(t, "HEAD", "/v2/app/manifests/"+tc.tag, nil).want(t, http.StatusOK).header.Get("Docker-Content-Digest")
			if got != want.String() {
				t.Fatalf("tag %s points at %s, want %s", tc.tag, got, want)
			}
		})
	}
	// ?tag= obeys the same rule.
	tr.do(t, "PUT", "/v2/app/manifests/"+b.digest.String()+"?tag=1.2.0", b.body, "Content-Type", v1.MediaTypeImageManifest).
		wantError(t, http.StatusForbidden, codeDenied)

	// Deleting a version yanks it; the name stays bound to its content.
	t.Run("delete", func(t *testing.T) {
		tags := func() string {
			return string(tr.do(t, "GET", "/v2/app/tags/list", nil).want(t, http.StatusOK).body)
		}
		tr.do(t, "DELETE", "/v2/app/manifests/1.2.0", nil).want(t, http.StatusAccepted)
		tr.do(t, "GET", "/v2/app/manifests/1.2.0", nil).wantError(t, http.StatusNotFound, codeManifestUnknown)
		tr.do(t, "DELETE", "/v2/app/manifests/1.2.0", nil).wantError(t, http.StatusNotFound, codeManifestUnknown)
		if strings.Contains(tags(), `"1.2.0"`) {
			t.Fatalf("a deleted version is listed: %s", tags())
		}
		tr.putManifest(t, "app", "1.2.0", b.body).wantError(t, http.StatusForbidden, codeDenied)
		tr.putManifest(t, "app", "1.2.0", a.body).want(t, http.StatusCreated)
		tr.do(t, "GET", "/v2/app/manifests/1.2.0", nil).want(t, http.StatusOK)

		// Deleting the manifest yanks its version tags and deletes its other tags.
		tr.putManifest(t, "app", "moving", a.body).want(t, http.StatusCreated)
		tr.do(t, "DELETE", "/v2/app/manifests/"+a.digest.String(), nil).want(t, http.StatusAccepted)
		for _, tag := range []string{"1.2.0", "v1.2.0", "2.0.0-rc.1", "moving"} {
			tr.do(t, "GET", "/v2/app/manifests/"+tag, nil).wantError(t, http.StatusNotFound, codeManifestUnknown)
		}
		tr.putManifest(t, "app", "v1.2.0", b.body).wantError(t, http.StatusForbidden, codeDenied)
		tr.putManifest(t, "app", "moving", b.body).want(t, http.StatusCreated)
		if got := tags(); got != `{"name":"app","tags":["1.2","latest","moving","sha256-`+strings.Repeat("a", 64)+`.sig"]}` {
			t.Fatalf("tags %s", got)
		}
	})
}

func TestPushNeedsToken(t *testing.T) {
	tr := startRegistry(t, "", Config{PushTokens: []string{testPushToken}, PullTokens: []string{testPullToken}})
	data := []byte("unauthorized")
	d := digest.FromBytes(data)
	for _, tc := range []struct{ name, auth string }{
		{"none", ""},
		{"wrong bearer", "Bearer nope"},
		{"pull token", "Bearer " + testPullToken},
		{"basic wrong password", basicAuth("fermion", "nope")},
		{"garbage", "Basic !!!"},
		{"unknown scheme", "Digest x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := tr.do(t, "POST", "/v2/r/blobs/uploads/?digest="+d.String(), data, "Authorization", tc.auth)
			resp.wantError(t, http.StatusUnauthorized, codeUnauthorized)
			if h := resp.header.Get("WWW-Authenticate"); h != `Basic realm="fermion"` {
				t.Errorf("WWW-Authenticate %q", h)
			}
			tr.do(t, "POST", "/v2/r/blobs/uploads/", nil, "Authorization", tc.auth).wantError(t, http.StatusUnauthorized, codeUnauthorized)
			tr.putManifest(t, "r", "t", []byte("{}")).want(t, http.StatusBadRequest) // with the push token: reaches validation
			tr.do(t, "PUT", "/v2/r/manifests/t", []byte("{}"), "Authorization", tc.auth).wantError(t, http.StatusUnauthorized, codeUnauthorized)
			tr.do(t, "DELETE", "/v2/r/manifests/t", nil, "Authorization", tc.auth).wantError(t, http.StatusUnauthorized, codeUnauthorized)
		})
	}
	if tr.stored(t, d) {
		t.Fatal("an unauthorized push stored a blob")
	}
	if left := tr.uploadObjects(t); len(left) != 0 {
		t.Fatalf("unauthorized requests left chunks: %v", left)
	}
	entries, err := scan(context.Background(), tr.reg.st.uploads, ">")
	if err != nil || len(entries) != 0 {
		t.Fatalf("unauthorized requests opened %d sessions (%v)", len(entries), err)
	}
	// Basic auth with any user name and the token as password.
	tr.do(t, "POST", "/v2/r/blobs/uploads/?digest="+d.String(), data, "Authorization", basicAuth("anyone", testPushToken)).want(t, http.StatusCreated)

	// No push tokens: writes are refused outright.
	ro := startRegistry(t, "", Config{PushTokens: []string{}})
	ro.do(t, "POST", "/v2/r/blobs/uploads/", nil).wantError(t, http.StatusForbidden, codeDenied)
	ro.do(t, "GET", "/v2/", nil, "Authorization", "").want(t, http.StatusOK)
}

func TestPullNeedsToken(t *testing.T) {
	tr := startRegistry(t, "", Config{PushTokens: []string{testPushToken}, PullTokens: []string{testPullToken}})
	d := tr.pushBlob(t, "r", []byte("secret layer"))
	for _, tc := range []struct {
		name, auth string
		status     int
	}{
		{"none", "", http.StatusUnauthorized},
		{"wrong", "Bearer nope", http.StatusUnauthorized},
		{"pull token", "Bearer " + testPullToken, http.StatusOK},
		{"push token", "Bearer " + testPushToken, http.StatusOK},
		{"basic pull token", basicAuth("x", testPullToken), http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/v2/", "/v2/r/blobs/" + d.String(), "/v2/r/tags/list"} {
				resp := tr.do(t, "GET", path, nil, "Authorization", tc.auth)
				if tc.status == http.StatusUnauthorized {
					resp.wantError(t, http.StatusUnauthorized, codeUnauthorized)
				} else if path != "/v2/r/tags/list" {
					resp.want(t, tc.status)
				}
			}
		})
	}
	// Anonymous pulls when no pull tokens are set; bad credentials are still refused.
	open := startRegistry(t, "", Config{})
	d = open.pushBlob(t, "r", []byte("public layer"))
	open.do(t, "GET", "/v2/r/blobs/"+d.String(), nil, "Authorization", "").want(t, http.StatusOK)
	open.do(t, "GET", "/v2/r/blobs/"+d.String(), nil, "Authorization", "Bearer nope").wantError(t, http.StatusUnauthorized, codeUnauthorized)
}

func basicAuth(user, pass string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(user, pass)
	return req.Header.Get("Authorization")
}

func TestInvalidManifests(t *testing.T) {
	tr := startRegistry(t, "", Config{})
	img := tr.newImage(t, "r", "valid", nil)
	goodConfig := fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":1}`, v1.MediaTypeImageConfig, img.config)
	for _, tc := range []struct {
		name, contentType, body string
	}{
		{"not JSON", v1.MediaTypeImageManifest, "garbage{"},
		{"truncated JSON", v1.MediaTypeImageManifest, string(img.body[:len(img.body)/2])},
		{"array", v1.MediaTypeImageManifest, "[1,2]"},
		{"null", v1.MediaTypeImageManifest, "null"},
		{"empty", v1.MediaTypeImageManifest, ""},
		{"no media type", "", `{"schemaVersion":2,"config":` + goodConfig + `}`},
		{"media type mismatch", v1.MediaTypeImageIndex, string(img.body)},
		{"unsupported media type", "application/vnd.docker.distribution.manifest.v1+prettyjws", `{"schemaVersion":1}`},
		{"schema version 1", v1.MediaTypeImageManifest, `{"schemaVersion":1,"config":` + goodConfig + `}`},
		{"no config", v1.MediaTypeImageManifest, `{"schemaVersion":2,"layers":[]}`},
		{"bad layer digest", v1.MediaTypeImageManifest, `{"schemaVersion":2,"config":` + goodConfig + `,"layers":[{"digest":"sha256:zz","size":1}]}`},
		{"wrong field type", v1.MediaTypeImageManifest, `{"schemaVersion":"2"}`},
		{"bad content type", "a/b; =", string(img.body)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr.do(t, "PUT", "/v2/r/manifests/t", []byte(tc.body), "Content-Type", tc.contentType).
				wantError(t, http.StatusBadRequest, codeManifestInvalid)
			tr.do(t, "GET", "/v2/r/manifests/t", nil).wantError(t, http.StatusNotFound, codeManifestUnknown)
		})
	}
	// A body that is not what its digest reference says.
	tr.putManifest(t, "r", digest.FromString("other").String(), img.body).wantError(t, http.StatusBadRequest, codeDigestInvalid)
}

func TestInvalidNames(t *testing.T) {
	tr := startRegistry(t, "", Config{})
	d := digest.FromString("x").String()
	for _, tc := range []struct {
		name, method, path string
		status             int
		code               string
	}{
		{"uppercase repo", "GET", "/v2/Repo/blobs/" + d, http.StatusBadRequest, codeNameInvalid},
		{"empty component", "GET", "/v2/a//b/manifests/latest", http.StatusBadRequest, codeNameInvalid},
		{"leading separator", "POST", "/v2/-a/blobs/uploads/", http.StatusBadRequest, codeNameInvalid},
		{"trailing dot", "GET", "/v2/a./tags/list", http.StatusBadRequest, codeNameInvalid},
		{"too long", "GET", "/v2/" + strings.Repeat("a", 256) + "/tags/list", http.StatusBadRequest, codeNameInvalid},
		{"tag with leading dot", "PUT", "/v2/r/manifests/.hidden", http.StatusBadRequest, codeTagInvalid},
		{"tag too long", "GET", "/v2/r/manifests/" + strings.Repeat("t", 129), http.StatusBadRequest, codeTagInvalid},
		{"tag param", "PUT", "/v2/r/manifests/" + d + "?tag=-x", http.StatusBadRequest, codeTagInvalid},
		{"bad blob digest", "GET", "/v2/r/blobs/sha256:xyz", http.StatusBadRequest, codeDigestInvalid},
		{"unknown algorithm", "GET", "/v2/r/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", http.StatusBadRequest, codeDigestInvalid},
		{"bad manifest digest", "PUT", "/v2/r/manifests/sha256:baddigeststring", http.StatusBadRequest, codeDigestInvalid},
		{"bad referrers digest", "GET", "/v2/r/referrers/sha256:1", http.StatusBadRequest, codeDigestInvalid},
		{"bad mount digest", "POST", "/v2/r/blobs/uploads/?mount=nope", http.StatusBadRequest, codeDigestInvalid},
		{"finalize without digest", "PUT", "/v2/r/blobs/uploads/" + strings.Repeat("0", 32), http.StatusBadRequest, codeDigestInvalid},
		{"unknown upload", "PATCH", "/v2/r/blobs/uploads/" + strings.Repeat("0", 32), http.StatusNotFound, codeBlobUploadUnknown},
		{"malformed upload id", "GET", "/v2/r/blobs/uploads/not-hex", http.StatusNotFound, codeBlobUploadUnknown},
		{"bad page size", "GET", "/v2/r/tags/list?n=-1", http.StatusBadRequest, "PAGINATION_NUMBER_INVALID"},
		{"method on blob", "PUT", "/v2/r/blobs/" + d, http.StatusMethodNotAllowed, codeUnsupported},
		{"method on tags", "POST", "/v2/r/tags/list", http.StatusMethodNotAllowed, codeUnsupported},
		{"unknown endpoint", "GET", "/v2/r/catalog", http.StatusNotFound, codeUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(nil)
			if tc.method == "PUT" {
				body = []byte("{}")
			}
			tr.do(t, tc.method, tc.path, body).wantError(t, tc.status, tc.code)
		})
	}
}

func TestManifestTooLarge(t *testing.T) {
	tr := startRegistry(t, "", Config{MaxManifestBytes: 64 << 10})
	img := tr.newImage(t, "r", "big", func(m *v1.Manifest) {
		m.Annotations = map[string]string{"padding": strings.Repeat("x", 100<<10)}
	})
	tr.putManifest(t, "r", "big", img.body).wantError(t, http.StatusRequestEntityTooLarge, codeSizeInvalid)
	// Without a Content-Length the bounded reader catches it.
	status := rawRequest(t, tr, "PUT /v2/r/manifests/big HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Type: "+v1.MediaTypeImageManifest,
		[]byte(fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(img.body), img.body)))
	if !strings.Contains(status, " 413 ") {
		t.Fatalf("chunked oversized manifest: %q", status)
	}
	tr.do(t, "GET", "/v2/r/manifests/big", nil).wantError(t, http.StatusNotFound, codeManifestUnknown)

	// The default accepts the 4 MiB the spec asks for and refuses more.
	def := startRegistry(t, "", Config{})
	huge := def.newImage(t, "r", "huge", func(m *v1.Manifest) {
		m.Annotations = map[string]string{"padding": strings.Repeat("x", 4<<20)}
	})
	def.putManifest(t, "r", "huge", huge.body).wantError(t, http.StatusRequestEntityTooLarge, codeSizeInvalid)
}

func TestBlobTooLarge(t *testing.T) {
	tr := startRegistry(t, "", Config{MaxBlobBytes: 1000})
	data := randomBytes(t, 1500)
	d := digest.FromBytes(data)
	tr.do(t, "POST", "/v2/r/blobs/uploads/?digest="+d.String(), data).wantError(t, http.StatusRequestEntityTooLarge, codeSizeInvalid)
	loc := tr.do(t, "POST", "/v2/r/blobs/uploads/", nil).want(t, http.StatusAccepted).header.Get("Location")
	loc = tr.do(t, "PATCH", loc, data[:800]).want(t, http.StatusAccepted).header.Get("Location")
	tr.do(t, "PATCH", loc, data[800:]).wantError(t, http.StatusRequestEntityTooLarge, codeSizeInvalid)
	// Unknown length: the bounded reader stops it mid-stream.
	status := rawRequest(t, tr, "PATCH "+loc+" HTTP/1.1\r\nTransfer-Encoding: chunked",
		[]byte(fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", 700, data[800:])))
	if !strings.Contains(status, " 413 ") {
		t.Fatalf("chunked oversized PATCH: %q", status)
	}
	tr.do(t, "PUT", loc+"?digest="+d.String(), data[800:]).wantError(t, http.StatusRequestEntityTooLarge, codeSizeInvalid)
	if tr.stored(t, d) {
		t.Fatal("an oversized blob was stored")
	}
}

func TestUploadCancel(t *testing.T) {
	tr := startRegistry(t, "", Config{})
	loc := tr.do(t, "POST", "/v2/r/blobs/uploads/", nil).want(t, http.StatusAccepted).header.Get("Location")
	loc = tr.do(t, "PATCH", loc, []byte("partial")).want(t, http.StatusAccepted).header.Get("Location")
	if len(tr.uploadObjects(t)) != 1 {
		t.Fatal("no chunk object after PATCH")
	}
	// Sessions belong to their repository.
	other := strings.Replace(loc, "/v2/r/", "/v2/other/", 1)
	tr.do(t, "GET", other, nil).wantError(t, http.StatusNotFound, codeBlobUploadUnknown)
	tr.do(t, "DELETE", other, nil).wantError(t, http.StatusNotFound, codeBlobUploadUnknown)

	tr.do(t, "DELETE", loc, nil).want(t, http.StatusNoContent)
	tr.do(t, "GET", loc, nil).wantError(t, http.StatusNotFound, codeBlobUploadUnknown)
	tr.do(t, "PATCH", loc, []byte("more")).wantError(t, http.StatusNotFound, codeBlobUploadUnknown)
	if left := tr.uploadObjects(t); len(left) != 0 {
		t.Fatalf("cancel left chunks: %v", left)
	}
}

func TestUploadExpiry(t *testing.T) {
	tr := startRegistry(t, "", Config{UploadExpiry: time.Hour})
	ctx := context.Background()
	idle := tr.do(t, "POST", "/v2/r/blobs/uploads/", nil).want(t, http.StatusAccepted).header.Get("Location")
	idle = tr.do(t, "PATCH", idle, []byte("abandoned")).want(t, http.StatusAccepted).header.Get("Location")
	// A chunk no session owns, as a crash between writing a chunk and recording it leaves.
	if _, err := tr.reg.st.blobs.PutBytes(ctx, chunkName(newUploadID(), 0), []byte("orphan")); err != nil {
		t.Fatal(err)
	}
	if n, err := tr.reg.sweep(ctx, time.Now()); err != nil || n != 0 {
		t.Fatalf("sweep of fresh uploads expired %d (%v)", n, err)
	}
	if len(tr.uploadObjects(t)) != 2 {
		t.Fatal("the sweep removed fresh chunks")
	}
	n, err := tr.reg.sweep(ctx, time.Now().Add(2*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("sweep expired %d (%v), want 1", n, err)
	}
	tr.do(t, "GET", idle, nil).wantError(t, http.StatusNotFound, codeBlobUploadUnknown)
	if left := tr.uploadObjects(t); len(left) != 0 {
		t.Fatalf("the sweep left chunks: %v", left)
	}
	if c := tr.counter(t, "fermion_registry_upload_failures_total", "reason", failExpired); c != 1 {
		t.Errorf("expired uploads counted %v", c)
	}
}

// TestFinalizeRetry cuts the body of a finalizing PUT short: the upload session
// survives with what it held, so the client's retry of the same PUT succeeds instead
// of meeting "upload … is unknown".
func TestFinalizeRetry(t *testing.T) {
	tr := startRegistry(t, "", Config{})
	data := randomBytes(t, 3<<20)
	d := digest.FromBytes(data)
	loc := tr.do(t, "POST", "/v2/r/blobs/uploads/", nil).want(t, http.StatusAccepted).header.Get("Location")
	half := len(data) / 2
	loc = tr.do(t, "PATCH", loc, data[:half], "Content-Range", fmt.Sprintf("0-%d", half-1)).want(t, http.StatusAccepted).header.Get("Location")
	status := rawRequest(t, tr, fmt.Sprintf("PUT %s?digest=%s HTTP/1.1\r\nContent-Length: %d", loc, d, len(data)-half), data[half:half+1000])
	if !strings.Contains(status, " 400 ") {
		t.Fatalf("finalize with a cut body: %q, want 400", status)
	}
	if r := tr.do(t, "GET", loc, nil).want(t, http.StatusNoContent).header.Get("Range"); r != fmt.Sprintf("0-%d", half-1) {
		t.Fatalf("the session holds %q after a failed finalize, want its first chunk", r)
	}
	tr.do(t, "PUT", loc+"?digest="+d.String(), data[half:]).want(t, http.StatusCreated)
	if got := tr.do(t, "GET", "/v2/r/blobs/"+d.String(), nil).want(t, http.StatusOK).body; !bytes.Equal(got, data) {
		t.Fatal("the retried finalize stored other bytes")
	}
	// A wrong digest ends the session: the bytes are wrong, a retry cannot help.
	loc = tr.do(t, "POST", "/v2/r/blobs/uploads/", nil).want(t, http.StatusAccepted).header.Get("Location")
	tr.do(t, "PUT", loc+"?digest="+digestOf([]byte("other")), data).wantError(t, http.StatusBadRequest, codeDigestInvalid)
	tr.do(t, "GET", loc, nil).wantError(t, http.StatusNotFound, codeBlobUploadUnknown)
}
