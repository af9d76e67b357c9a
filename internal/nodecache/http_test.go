package nodecache

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
)

// httpFetcher is a minimal registry client over HTTP, enough to pull through a real
// connection that a real server can cut.
type httpFetcher struct {
	base   string
	client *http.Client
}

func (f *httpFetcher) Resolve(ctx context.Context, ref Ref) (Resolved, error) {
	q := url.Values{"repo": {ref.Repo}, "tag": {ref.Tag}, "digest": {ref.Digest}}
	resp, err := f.get(ctx, "/resolve?"+q.Encode())
	if err != nil {
		return Resolved{}, err
	}
	defer resp.Body.Close()
	var out struct {
		Manifest string
		Layer    Descriptor
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return Resolved{}, fmt.Errorf("decode resolve answer: %w", err)
	}
	return Resolved{ManifestDigest: out.Manifest, Layer: out.Layer}, nil
}

func (f *httpFetcher) Fetch(ctx context.Context, ref Ref, layer Descriptor) (io.ReadCloser, error) {
	resp, err := f.get(ctx, "/blobs/"+layer.Digest)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

func (f *httpFetcher) get(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.base+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, err // a *url.Error, a net.Error: unavailability
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return resp, nil
}

// registryServer serves one artifact; while cut is set it drops the connection halfway
// through the blob.
type registryServer struct {
	art   artifact
	cut   atomic.Bool
	blobs atomic.Int32 // blob requests
}

func (s *registryServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/resolve":
		json.NewEncoder(w).Encode(map[string]any{"Manifest": s.art.manifest, "Layer": s.art.layer})
	case "/blobs/" + s.art.layer.Digest:
		s.blobs.Add(1)
		w.Header().Set("Content-Length", strconv.Itoa(len(s.art.wasm)))
		if s.cut.Load() {
			w.Write(s.art.wasm[:len(s.art.wasm)/2])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // closes the connection mid-body
		}
		w.Write(s.art.wasm)
	default:
		http.NotFound(w, r)
	}
}

func TestRegistryKilledMidPull(t *testing.T) {
	wasm := module("big", 256<<10)
	reg := &registryServer{art: newFakeRegistry().push(repo, "", wasm)}
	reg.cut.Store(true)
	srv := httptest.NewServer(reg)
	addr := srv.Listener.Addr().String()
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)

	dir := t.TempDir()
	c, err := Open(Config{Dir: dir, MaxBytes: 1 << 20, Fetcher: &httpFetcher{base: srv.URL, client: client}, Verifier: &fakeVerifier{}})
	if err != nil {
		t.Fatal(err)
	}
	ref := Ref{Repo: repo, Digest: reg.art.manifest}

	_, err = c.Get(t.Context(), ref)
	wantCode(t, err, CodeUnavailable)
	t.Logf("cut transfer: %v", err)
	if reg.blobs.Load() != 1 {
		t.Fatalf("blob requests = %d, want 1", reg.blobs.Load())
	}
	if got := blobFiles(t, dir); len(got) != 0 {
		t.Errorf("partial files left after the cut: %v", got)
	}
	if s := c.Stats(); s.Entries != 0 {
		t.Errorf("stats %+v: a cut transfer was indexed", s)
	}

	// The registry is down altogether: a real connection refused.
	srv.Close()
	_, err = c.Get(t.Context(), ref)
	wantCode(t, err, CodeUnavailable)
	t.Logf("registry down: %v", err)

	// It comes back on the same address.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	reg.cut.Store(false)
	srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: reg}}
	srv.Start()
	t.Cleanup(srv.Close)

	e, err := c.Get(t.Context(), ref)
	if err != nil {
		t.Fatalf("Get after the registry is back: %v", err)
	}
	if e.FromCache || len(e.Wasm) != len(wasm) {
		t.Errorf("FromCache=%v, %d bytes; want a fresh download of %d", e.FromCache, len(e.Wasm), len(wasm))
	}
	if got := blobFiles(t, dir); len(got) != 1 {
		t.Errorf("blob files %v, want exactly the module", got)
	}
}
