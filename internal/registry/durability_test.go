package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestRestartKeepsEverything pushes, stops the registry and its engine, starts both
// again on the same data directory and finds every acknowledged write.
func TestRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	tr := startRegistry(t, dir, Config{})
	const repo = "durable/app"
	big := randomBytes(t, 400_000)
	bigDigest := tr.pushChunked(t, repo, big, 3)
	img := tr.newImage(t, repo, "v1", nil)
	tr.putManifest(t, repo, "1.0.0", img.body).want(t, http.StatusCreated)
	sig := tr.newImage(t, repo, "sig", func(m *v1.Manifest) {
		m.ArtifactType = "application/vnd.example.sig"
		m.Subject = &v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: img.digest, Size: int64(len(img.body))}
	})
	tr.putManifest(t, repo, sig.digest.String(), sig.body).want(t, http.StatusCreated)
	// An upload in progress survives too.
	part := randomBytes(t, 5000)
	loc := tr.do(t, "POST", "/v2/"+repo+"/blobs/uploads/", nil).want(t, http.StatusAccepted).header.Get("Location")
	loc = tr.do(t, "PATCH", loc, part[:2000], "Content-Range", "0-1999").want(t, http.StatusAccepted).header.Get("Location")
	tr.close()

	tr = startRegistry(t, dir, Config{})
	got := tr.do(t, "GET", "/v2/"+repo+"/blobs/"+bigDigest.String(), nil).want(t, http.StatusOK)
	if !bytes.Equal(got.body, big) {
		t.Fatal("chunked blob changed across the restart")
	}
	m := tr.do(t, "GET", "/v2/"+repo+"/manifests/1.0.0", nil).want(t, http.StatusOK)
	if !bytes.Equal(m.body, img.body) {
		t.Fatal("manifest changed across the restart")
	}
	tags := tr.do(t, "GET", "/v2/"+repo+"/tags/list", nil).want(t, http.StatusOK)
	if string(tags.body) != `{"name":"durable/app","tags":["1.0.0"]}` {
		t.Fatalf("tags after restart: %s", tags.body)
	}
	var idx v1.Index
	ref := tr.do(t, "GET", "/v2/"+repo+"/referrers/"+img.digest.String(), nil).want(t, http.StatusOK)
	if err := json.Unmarshal(ref.body, &idx); err != nil || len(idx.Manifests) != 1 || idx.Manifests[0].Digest != sig.digest {
		t.Fatalf("referrers after restart: %s (%v)", ref.body, err)
	}
	if r := tr.do(t, "GET", loc, nil).want(t, http.StatusNoContent).header.Get("Range"); r != "0-1999" {
		t.Fatalf("upload session after restart holds %q", r)
	}
	tr.do(t, "PUT", loc+"?digest="+digestOf(part), part[2000:], "Content-Range", "2000-4999").want(t, http.StatusCreated)
	// The immutable tag still is.
	other := tr.newImage(t, repo, "v1-other", nil)
	tr.putManifest(t, repo, "1.0.0", other.body).wantError(t, http.StatusForbidden, codeDenied)
}

// TestConcurrentPushes has 8 clients push distinct blobs, manifests and tags into one
// repository at once, race on a mutable tag, an immutable tag and one upload session.
func TestConcurrentPushes(t *testing.T) {
	tr := startRegistry(t, "", Config{})
	const (
		repo    = "hammer"
		workers = 8
	)
	type pushed struct {
		tag    string
		digest string
		layer  []byte
	}
	results := make([]pushed, workers)
	immutableWins := make([]bool, workers)
	// One session, eight chunks offered at the same offset: exactly one may land.
	shared := tr.do(t, "POST", "/v2/"+repo+"/blobs/uploads/", nil).want(t, http.StatusAccepted).header.Get("Location")
	sharedWins := make([]bool, workers)

	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail := func(format string, args ...any) { t.Errorf("worker %d: "+format, append([]any{w}, args...)...) }
			expect := func(resp response, err error, status int) bool {
				if err != nil {
					fail("%v", err)
					return false
				}
				if resp.status != status {
					fail("status %d, want %d: %s", resp.status, status, resp.body)
					return false
				}
				return true
			}
			layer := []byte(fmt.Sprintf("layer of worker %d %x", w, randomBytes(t, 20_000)))
			cfg := []byte(fmt.Sprintf(`{"worker":%d}`, w))
			// The layer goes up in two chunks, the config monolithically.
			resp, err := tr.send("POST", "/v2/"+repo+"/blobs/uploads/", nil)
			if !expect(resp, err, http.StatusAccepted) {
				return
			}
			half := len(layer) / 2
			resp, err = tr.send("PATCH", resp.header.Get("Location"), layer[:half], "Content-Range", fmt.Sprintf("0-%d", half-1))
			if !expect(resp, err, http.StatusAccepted) {
				return
			}
			resp, err = tr.send("PUT", resp.header.Get("Location")+"?digest="+digestOf(layer), layer[half:])
			if !expect(resp, err, http.StatusCreated) {
				return
			}
			resp, err = tr.send("POST", "/v2/"+repo+"/blobs/uploads/?digest="+digestOf(cfg), cfg)
			if !expect(resp, err, http.StatusCreated) {
				return
			}
			m, _ := json.Marshal(map[string]any{
				"schemaVersion": 2,
				"mediaType":     v1.MediaTypeImageManifest,
				"config":        map[string]any{"mediaType": v1.MediaTypeImageConfig, "digest": digestOf(cfg), "size": len(cfg)},
				"layers":        []any{map[string]any{"mediaType": v1.MediaTypeImageLayer, "digest": digestOf(layer), "size": len(layer)}},
			})
			tag := fmt.Sprintf("worker-%d", w)
			for _, tg := range []string{tag, "latest"} {
				resp, err = tr.send("PUT", "/v2/"+repo+"/manifests/"+tg, m, "Content-Type", v1.MediaTypeImageManifest)
				if !expect(resp, err, http.StatusCreated) {
					return
				}
			}
			resp, err = tr.send("PUT", "/v2/"+repo+"/manifests/9.9.9", m, "Content-Type", v1.MediaTypeImageManifest)
			if err != nil || (resp.status != http.StatusCreated && resp.status != http.StatusForbidden) {
				fail("immutable tag race: %d %s %v", resp.status, resp.body, err)
			}
			immutableWins[w] = resp.status == http.StatusCreated
			resp, err = tr.send("PATCH", shared, []byte(fmt.Sprintf("chunk %d", w)), "Content-Range", fmt.Sprintf("0-%d", len(fmt.Sprintf("chunk %d", w))-1))
			if err != nil || (resp.status != http.StatusAccepted && resp.status != http.StatusRequestedRangeNotSatisfiable) {
				fail("shared session race: %d %s %v", resp.status, resp.body, err)
			}
			sharedWins[w] = resp.status == http.StatusAccepted
			results[w] = pushed{tag: tag, digest: digestOf(m), layer: layer}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	latest := tr.do(t, "HEAD", "/v2/"+repo+"/manifests/latest", nil).want(t, http.StatusOK).header.Get("Docker-Content-Digest")
	pinned := tr.do(t, "HEAD", "/v2/"+repo+"/manifests/9.9.9", nil).want(t, http.StatusOK).header.Get("Docker-Content-Digest")
	var latestFound bool
	var immutable, sharedLanded int
	for w, p := range results {
		got := tr.do(t, "GET", "/v2/"+repo+"/manifests/"+p.tag, nil).want(t, http.StatusOK)
		if got.header.Get("Docker-Content-Digest") != p.digest {
			t.Errorf("tag %s points at %s, want %s", p.tag, got.header.Get("Docker-Content-Digest"), p.digest)
		}
		layer := tr.do(t, "GET", "/v2/"+repo+"/blobs/"+digestOf(p.layer), nil).want(t, http.StatusOK)
		if !bytes.Equal(layer.body, p.layer) {
			t.Errorf("worker %d's layer came back different", w)
		}
		latestFound = latestFound || latest == p.digest
		if immutableWins[w] {
			immutable++
			if pinned != p.digest {
				t.Errorf("9.9.9 points at %s but worker %d won it with %s", pinned, w, p.digest)
			}
		}
		if sharedWins[w] {
			sharedLanded++
		}
	}
	if !latestFound {
		t.Errorf("latest points at %s, none of the pushed manifests", latest)
	}
	if immutable != 1 {
		t.Errorf("%d pushes won the immutable tag, want exactly 1", immutable)
	}
	if sharedLanded != 1 {
		t.Errorf("%d chunks at offset 0 of one session were accepted, want exactly 1", sharedLanded)
	}
	var body struct{ Tags []string }
	if err := json.Unmarshal(tr.do(t, "GET", "/v2/"+repo+"/tags/list", nil).want(t, http.StatusOK).body, &body); err != nil || len(body.Tags) != workers+2 {
		t.Fatalf("tags %v (%v), want %d", body.Tags, err, workers+2)
	}
}
