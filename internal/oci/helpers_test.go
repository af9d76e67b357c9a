package oci_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"

	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/engine"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/oci"
	"fermion.dev/fermion/internal/registry"
)

const pushToken = "t"

// testRegistry is the built-in registry on a real embedded JetStream behind a loopback
// listener.
type testRegistry struct {
	srv  *httptest.Server
	reg  *registry.Registry
	host string // 127.0.0.1:PORT
}

func startRegistry(t *testing.T) *testRegistry {
	t.Helper()
	return startRegistryConfig(t, registry.Config{PushTokens: []string{pushToken}})
}

func startRegistryConfig(t *testing.T, cfg registry.Config) *testRegistry {
	t.Helper()
	ctx := context.Background()
	eng, err := engine.Start(ctx, engine.Config{DataDir: t.TempDir(), SyncAlways: true})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(ctx, eng.JetStream(), cfg)
	if err != nil {
		eng.Close()
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	t.Cleanup(func() {
		srv.Close()
		reg.Close()
		eng.Close()
	})
	return &testRegistry{srv: srv, reg: reg, host: strings.TrimPrefix(srv.URL, "http://")}
}

// newClient returns a client without oras' retries, so that failures surface at once.
func newClient() *oci.Client {
	return &oci.Client{Token: pushToken, HTTPClient: &http.Client{Timeout: 30 * time.Second}}
}

// helloArtifact packages examples/hello. Different meta gives a different manifest
// digest over the same module.
func helloArtifact(t *testing.T, meta artifact.Meta) *artifact.Artifact {
	t.Helper()
	m, err := manifest.Load(filepath.Join(fermiontest.Root(t), "examples", "hello"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := artifact.Package(m, fermiontest.Guest(t, "examples/hello", true), meta)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func parseRef(t *testing.T, s string) oci.Ref {
	t.Helper()
	r, err := oci.ParseRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func generateKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := artifact.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func requireKeys(keys ...*ecdsa.PrivateKey) artifact.TrustPolicy {
	p := artifact.TrustPolicy{RequireSignature: true}
	for _, k := range keys {
		p.Keys = append(p.Keys, &k.PublicKey)
	}
	return p
}

// pushed pushes a to host/repo:tag and returns the tag reference and the digest
// reference.
func pushed(t *testing.T, c *oci.Client, host, repo, tag string, a *artifact.Artifact) (byTag, byDigest oci.Ref) {
	t.Helper()
	byTag = parseRef(t, host+"/"+repo+":"+tag)
	desc, err := c.Push(context.Background(), byTag, a)
	if err != nil {
		t.Fatalf("push %s: %v", byTag, err)
	}
	if desc.Digest != a.ManifestDigest {
		t.Fatalf("push returned digest %s, the artifact's is %s", desc.Digest, a.ManifestDigest)
	}
	return byTag, parseRef(t, host+"/"+repo+"@"+a.ManifestDigest.String())
}

func sign(t *testing.T, c *oci.Client, ref oci.Ref, d digest.Digest, k *ecdsa.PrivateKey) {
	t.Helper()
	if err := c.Sign(context.Background(), ref, d, k); err != nil {
		t.Fatalf("sign %s: %v", ref, err)
	}
}

// tamperProxy is a reverse proxy in front of an honest registry that rewrites the
// responses its modify hook picks.
type tamperProxy struct {
	srv  *httptest.Server
	host string

	mu     sync.Mutex
	modify func(*http.Response) error
}

func newTamperProxy(t *testing.T, target *testRegistry) *tamperProxy {
	t.Helper()
	u, err := url.Parse(target.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	p := &tamperProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	rp.ModifyResponse = func(resp *http.Response) error {
		p.mu.Lock()
		f := p.modify
		p.mu.Unlock()
		if f == nil {
			return nil
		}
		return f(resp)
	}
	p.srv = httptest.NewServer(rp)
	t.Cleanup(p.srv.Close)
	p.host = strings.TrimPrefix(p.srv.URL, "http://")
	return p
}

func (p *tamperProxy) set(f func(*http.Response) error) {
	p.mu.Lock()
	p.modify = f
	p.mu.Unlock()
}

// isGet reports whether resp answers a GET of /v2/<repo>/<kind>/<ref>.
func isGet(resp *http.Response, kind, ref string) bool {
	return resp.Request.Method == http.MethodGet && strings.HasSuffix(resp.Request.URL.Path, "/"+kind+"/"+ref)
}

// readBody reads and closes resp's body.
func readBody(resp *http.Response) ([]byte, error) {
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return b, err
}

// setBody replaces resp's body and its length; headers such as Docker-Content-Digest
// are left as the registry sent them unless the caller changes them.
func setBody(resp *http.Response, b []byte) {
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
}

// flipByte returns a copy of b with one byte in the middle changed.
func flipByte(b []byte) []byte {
	out := bytes.Clone(b)
	out[len(out)/2] ^= 0xff
	return out
}

// cutHalfway makes resp die halfway through its body, as when the registry is killed
// mid-response: the proxy sends the headers (Content-Length included) and half the
// body, then aborts the connection. The registry's answer is read in full first, so
// that only the client sees the cut.
func cutHalfway(resp *http.Response) error {
	b, err := readBody(resp)
	if err != nil {
		return err
	}
	resp.Body = &cutBody{r: bytes.NewReader(b[:len(b)/2])}
	return nil
}

var errKilled = errors.New("registry killed mid-response")

// cutBody yields r and then fails instead of ending.
type cutBody struct{ r io.Reader }

func (c *cutBody) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF {
		err = errKilled
	}
	return n, err
}

func (c *cutBody) Close() error { return nil }

// orasRepo is a plain oras repository for ref, for the tests' own direct reads and
// writes around the client under test.
func orasRepo(t *testing.T, ref oci.Ref) *remote.Repository {
	t.Helper()
	r, err := remote.NewRepository(ref.Name())
	if err != nil {
		t.Fatal(err)
	}
	r.PlainHTTP = true
	r.Client = &auth.Client{Client: http.DefaultClient, Credential: auth.StaticCredential(ref.Registry, auth.Credential{Username: "x", Password: pushToken})}
	return r
}
