package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/prometheus/client_golang/prometheus"

	"fermion.dev/fermion/internal/engine"
)

const (
	testPushToken = "push-secret"
	testPullToken = "pull-secret"
)

// testRegistry is a registry on a real embedded JetStream behind a loopback listener.
type testRegistry struct {
	t       *testing.T
	dir     string
	eng     *engine.Engine
	reg     *Registry
	srv     *httptest.Server
	metrics *prometheus.Registry
	token   string // sent with every request unless a test says otherwise
}

// startRegistry starts an engine on dir (a new temp dir when "") and a registry on it.
func startRegistry(t *testing.T, dir string, cfg Config) *testRegistry {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	ctx := context.Background()
	eng, err := engine.Start(ctx, engine.Config{DataDir: dir, SyncAlways: true})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PushTokens == nil {
		cfg.PushTokens = []string{testPushToken}
	}
	pm := prometheus.NewRegistry()
	cfg.Metrics = pm
	reg, err := New(ctx, eng.JetStream(), cfg)
	if err != nil {
		eng.Close()
		t.Fatal(err)
	}
	tr := &testRegistry{t: t, dir: dir, eng: eng, reg: reg, srv: httptest.NewServer(reg), metrics: pm, token: testPushToken}
	t.Cleanup(tr.close)
	return tr
}

// close stops the server, the registry and the engine; calling it twice is fine.
func (tr *testRegistry) close() {
	if tr.srv == nil {
		return
	}
	tr.srv.Close()
	if err := tr.reg.Close(); err != nil {
		tr.t.Error(err)
	}
	tr.eng.Close()
	tr.srv = nil
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request to path (relative to the server) with the registry's token.
func (tr *testRegistry) do(t testing.TB, method, path string, body []byte, header ...string) response {
	t.Helper()
	resp, err := tr.send(method, path, body, header...)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// send is do for goroutines: it returns transport errors instead of failing the test.
func (tr *testRegistry) send(method, path string, body []byte, header ...string) (response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	u := path
	if !strings.HasPrefix(u, "http") {
		u = tr.srv.URL + path
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return response{}, err
	}
	if tr.token != "" {
		req.Header.Set("Authorization", "Bearer "+tr.token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Authorization" && header[i+1] == "" {
			req.Header.Del("Authorization")
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{resp.StatusCode, resp.Header, b}, nil
}

// want fails unless the response has status.
func (r response) want(t testing.TB, status int) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	return r
}

// wantError fails unless the response is status with a well-formed error body of code.
func (r response) wantError(t testing.TB, status int, code string) string {
	t.Helper()
	r.want(t, status)
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type %q", ct)
	}
	var body struct {
		Errors []struct {
			Code    string          `json:"code"`
			Message string          `json:"message"`
			Detail  json.RawMessage `json:"detail"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	if len(body.Errors) != 1 || body.Errors[0].Code != code || body.Errors[0].Message == "" {
		t.Fatalf("error body %s, want one error with code %s and a message", r.body, code)
	}
	return body.Errors[0].Message
}

// pushBlob uploads data monolithically to repo and returns its digest.
func (tr *testRegistry) pushBlob(t testing.TB, repo string, data []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(data)
	tr.do(t, "POST", "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), data,
		"Content-Type", "application/octet-stream").want(t, http.StatusCreated)
	return d
}

// pushChunked uploads data to repo in n PATCH chunks and a PUT.
func (tr *testRegistry) pushChunked(t testing.TB, repo string, data []byte, n int) digest.Digest {
	t.Helper()
	d := digest.FromBytes(data)
	loc := tr.do(t, "POST", "/v2/"+repo+"/blobs/uploads/", nil).want(t, http.StatusAccepted).header.Get("Location")
	size := (len(data) + n - 1) / n
	for off := 0; off < len(data); off += size {
		end := min(off+size, len(data))
		resp := tr.do(t, "PATCH", loc, data[off:end], "Content-Type", "application/octet-stream",
			"Content-Range", fmt.Sprintf("%d-%d", off, end-1)).want(t, http.StatusAccepted)
		if got, want := resp.header.Get("Range"), fmt.Sprintf("0-%d", end-1); got != want {
			t.Fatalf("Range after chunk: %q, want %q", got, want)
		}
		loc = resp.header.Get("Location")
	}
	tr.do(t, "PUT", loc+"?digest="+d.String(), nil).want(t, http.StatusCreated)
	return d
}

// image is an image manifest whose config and layer have been pushed to repo.
type image struct {
	body   []byte
	digest digest.Digest
	config digest.Digest
	layer  digest.Digest
}

// newImage pushes a config and a layer to repo and builds a manifest for them.
func (tr *testRegistry) newImage(t testing.TB, repo, seed string, mutate func(*v1.Manifest)) image {
	t.Helper()
	cfg := []byte(`{"architecture":"wasm","os":"wasip1","seed":"` + seed + `"}`)
	layer := []byte("layer of " + seed)
	m := v1.Manifest{
		MediaType: v1.MediaTypeImageManifest,
		Config:    v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: tr.pushBlob(t, repo, cfg), Size: int64(len(cfg))},
		Layers:    []v1.Descriptor{{MediaType: v1.MediaTypeImageLayer, Digest: tr.pushBlob(t, repo, layer), Size: int64(len(layer))}},
	}
	m.SchemaVersion = 2
	if mutate != nil {
		mutate(&m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return image{body: b, digest: digest.FromBytes(b), config: m.Config.Digest, layer: m.Layers[0].Digest}
}

func (tr *testRegistry) putManifest(t testing.TB, repo, ref string, body []byte) response {
	t.Helper()
	return tr.do(t, "PUT", "/v2/"+repo+"/manifests/"+ref, body, "Content-Type", v1.MediaTypeImageManifest)
}

func specsVersioned() specs.Versioned { return specs.Versioned{SchemaVersion: 2} }

// counter returns the value of the counter name with the given label pairs, 0 if absent.
func (tr *testRegistry) counter(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	families, err := tr.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// uploadObjects lists the upload chunk objects in the object store.
func (tr *testRegistry) uploadObjects(t testing.TB) []string {
	t.Helper()
	objs, err := tr.reg.st.blobs.List(context.Background())
	if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		if strings.HasPrefix(o.Name, "uploads.") {
			names = append(names, o.Name)
		}
	}
	return names
}

// stored reports whether the object store holds blob d (whatever links it).
func (tr *testRegistry) stored(t testing.TB, d digest.Digest) bool {
	t.Helper()
	_, err := tr.reg.st.blobs.GetInfo(context.Background(), objectName(d))
	if err != nil && !notFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

func digestOf(b []byte) string { return digest.FromBytes(b).String() }
