package registry

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// TestIngestQueueFull runs the registry on a JetStream whose streams queue at most two
// inbound messages, so concurrent multi-MiB uploads meet "429 too many requests" on
// their chunks: the writer must send the refused chunks again, in order, and every
// upload must succeed with its bytes intact.
func TestIngestQueueFull(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes tens of MiB against a deliberately tiny ingest queue")
	}
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true, StreamMaxBufferedMsgs: 2}
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server did not start")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := New(context.Background(), js, Config{PushTokens: []string{testPushToken}, Metrics: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	t.Cleanup(func() { srv.Close(); reg.Close() })
	tr := &testRegistry{t: t, reg: reg, srv: srv, token: testPushToken}

	const uploads = 4
	blobs := make([][]byte, uploads)
	for i := range blobs {
		blobs[i] = randomBytes(t, 3<<20)
	}
	var wg sync.WaitGroup
	errs := make(chan error, uploads)
	for i := range uploads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := tr.send("POST", "/v2/r/blobs/uploads/?digest="+digestOf(blobs[i]), blobs[i])
			if err == nil && resp.status != http.StatusCreated {
				err = &apiError{Status: resp.status, Message: string(resp.body)}
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("upload against a full ingest queue: %v", err)
		}
	}
	t.Logf("chunks sent again after a 429: %d", reg.st.objects.resent.Load())
	for _, b := range blobs {
		got := tr.do(t, "GET", "/v2/r/blobs/"+digestOf(b), nil).want(t, http.StatusOK).body
		if !bytes.Equal(got, b) {
			t.Fatalf("blob %s read back as %d other bytes", digestOf(b), len(got))
		}
	}
}
