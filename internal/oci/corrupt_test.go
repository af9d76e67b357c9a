package oci_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/engine"
	"fermion.dev/fermion/internal/oci"
	"fermion.dev/fermion/internal/registry"
)

// registryOn starts the built-in registry on the JetStream store in dir and returns
// its host and a function that stops it.
func registryOn(t *testing.T, dir string) (string, func()) {
	t.Helper()
	ctx := context.Background()
	eng, err := engine.Start(ctx, engine.Config{DataDir: dir, SyncAlways: true})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(ctx, eng.JetStream(), registry.Config{PushTokens: []string{pushToken}})
	if err != nil {
		eng.Close()
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			srv.Close()
			reg.Close()
			eng.Close()
		}
	}
	t.Cleanup(stop)
	return strings.TrimPrefix(srv.URL, "http://"), stop
}

// damage flips a byte of data inside the stored message blocks under dir.
func damage(t *testing.T, dir string, data []byte) {
	t.Helper()
	needle := data[len(data)/2 : len(data)/2+64]
	found := false
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(p, ".blk") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if i := bytes.Index(b, needle); i >= 0 {
			b[i] ^= 0xff
			found = true
			return os.WriteFile(p, b, 0o600)
		}
		return nil
	})
	if err != nil || !found {
		t.Fatalf("damage the stored blob: found %v, %v", found, err)
	}
}

// TestPullCorruptBlob damages the registry's stored module and a large blob on disk:
// the client says the blob is corrupt, not that the transfer should be retried.
func TestPullCorruptBlob(t *testing.T) {
	dir := t.TempDir()
	host, stop := registryOn(t, dir)
	c := newClient()
	a := helloArtifact(t, artifact.Meta{})
	byTag, _ := pushed(t, c, host, "acme/hello", "1.0.0", a)
	large := make([]byte, 9<<20) // streamed by the registry, not checked before sending
	if _, err := rand.Read(large); err != nil {
		t.Fatal(err)
	}
	ld := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(large), Size: int64(len(large))}
	if err := c.PushBlob(context.Background(), byTag, ld, func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(large)), nil
	}); err != nil {
		t.Fatal(err)
	}
	stop()
	damage(t, dir, a.Layer)
	damage(t, dir, large)
	host, _ = registryOn(t, dir)
	ref := parseRef(t, host+"/acme/hello:1.0.0")

	_, err := c.Pull(context.Background(), ref, artifact.TrustPolicy{})
	if !errors.Is(err, oci.ErrCorrupt) || !errors.Is(err, artifact.ErrTamperedLayer) || strings.Contains(err.Error(), "retry") {
		t.Fatalf("pull of a corrupt module: %v; want ErrCorrupt, not a retry", err)
	}
	t.Logf("pull: %v", err)

	// The large blob: the first transfer is cut short; the registry then knows.
	var sink bytes.Buffer
	err = c.FetchBlob(context.Background(), ref, ld, &sink)
	if err == nil {
		t.Fatal("a corrupt large blob was fetched whole")
	}
	if err = c.FetchBlob(context.Background(), ref, ld, &sink); !errors.Is(err, oci.ErrCorrupt) {
		t.Fatalf("second fetch of a corrupt large blob: %v; want ErrCorrupt", err)
	}
}

// TestPushLayerFile pushes an artifact whose module streams from a file.
func TestPushLayerFile(t *testing.T) {
	host, _ := registryOn(t, t.TempDir())
	c := newClient()
	a := helloArtifact(t, artifact.Meta{})
	file := filepath.Join(t.TempDir(), "module.wasm")
	if err := os.WriteFile(file, a.Layer, 0o644); err != nil {
		t.Fatal(err)
	}
	streamed := *a
	streamed.Layer = nil
	ref := parseRef(t, host+"/acme/hello:1.0.0")
	if _, err := c.PushLayerFile(context.Background(), ref, &streamed, file); err != nil {
		t.Fatal(err)
	}
	p, err := c.Pull(context.Background(), ref, artifact.TrustPolicy{})
	if err != nil || !bytes.Equal(p.Wasm, a.Layer) {
		t.Fatalf("pull after a streamed push: %v", err)
	}
	var sink bytes.Buffer
	if err := c.FetchBlob(context.Background(), ref, p.Parsed.Layer, &sink); err != nil || !bytes.Equal(sink.Bytes(), a.Layer) {
		t.Fatalf("FetchBlob: %v", err)
	}
}
