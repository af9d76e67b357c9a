package registry

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"fermion.dev/fermion/internal/engine"
	"fermion.dev/fermion/internal/fermiontest"
)

// TestClusterR3 runs the registry on a three-server cluster with R3 buckets: a push
// acknowledged by one server is served by another, and still after the first is gone.
func TestClusterR3(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	ports := fermiontest.Ports(t, 3)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	engines := make([]*engine.Engine, 3)
	errs := make(chan error, 3)
	for i := range engines {
		go func() {
			e, err := engine.Start(ctx, engine.Config{Name: fmt.Sprintf("s%d", i), DataDir: t.TempDir(), ClusterName: "registry-test",
				ClusterListen: fmt.Sprintf("127.0.0.1:%d", ports[i]), Routes: routes})
			engines[i] = e
			errs <- err
		}()
	}
	for range engines {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	regs := make([]*testRegistry, 3)
	for i, e := range engines {
		r, err := New(ctx, e.JetStream(), Config{Replicas: 3, PushTokens: []string{testPushToken}})
		if err != nil {
			t.Fatal(err)
		}
		regs[i] = &testRegistry{t: t, eng: e, reg: r, srv: httptest.NewServer(r), token: testPushToken}
		t.Cleanup(regs[i].close)
	}
	data := randomBytes(t, 200_000)
	d := regs[0].pushChunked(t, "ha/app", data, 2)
	img := regs[0].newImage(t, "ha/app", "x", nil)
	regs[0].putManifest(t, "ha/app", "1.0.0", img.body).want(t, http.StatusCreated)

	regs[0].close() // one server down: the other two still have a quorum
	// Streams whose leader was on the stopped server elect a new one within seconds;
	// until then reads fail, so wait for the cluster rather than for a fixed time.
	for _, tr := range regs[1:] {
		fermiontest.WaitFor(t, 30*time.Second, func() error {
			got, err := tr.send("GET", "/v2/ha/app/blobs/"+d.String(), nil)
			if err != nil {
				return err
			}
			if got.status != http.StatusOK {
				return fmt.Errorf("blob: status %d", got.status)
			}
			if !bytes.Equal(got.body, data) {
				t.Fatal("blob differs on another server")
			}
			return nil
		})
		fermiontest.WaitFor(t, 30*time.Second, func() error {
			got, err := tr.send("GET", "/v2/ha/app/manifests/1.0.0", nil)
			if err != nil {
				return err
			}
			if got.status != http.StatusOK {
				return fmt.Errorf("manifest: status %d", got.status)
			}
			return nil
		})
	}
	regs[1].putManifest(t, "ha/app", "latest", img.body).want(t, http.StatusCreated)
	regs[2].do(t, "HEAD", "/v2/ha/app/manifests/latest", nil).want(t, http.StatusOK)
}
