package engine

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func TestSingleServerKVSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	e, err := Start(ctx, Config{DataDir: dir, SyncAlways: true})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := e.JetStream().CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "t"})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := kv.Put(ctx, "k", []byte("v1"))
	if err != nil {
		t.Fatal(err)
	}
	// Compare-and-swap: a stale revision loses.
	if _, err := kv.Update(ctx, "k", []byte("v2"), rev+10); err == nil {
		t.Fatal("update with a stale revision succeeded")
	}
	e.Close()

	e, err = Start(ctx, Config{DataDir: dir, SyncAlways: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	kv, err = e.JetStream().KeyValue(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	got, err := kv.Get(ctx, "k")
	if err != nil || string(got.Value()) != "v1" {
		t.Fatalf("after restart got %v, %v", got, err)
	}
}

func TestClientListener(t *testing.T) {
	e, err := Start(context.Background(), Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.ClientURL() == "" {
		t.Fatal("no client URL")
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestThreeServerClusterR3(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	ports := []int{freePort(t), freePort(t), freePort(t)}
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	engines := make([]*Engine, 3)
	errs := make(chan error, 3)
	for i := range engines {
		go func() {
			e, err := Start(ctx, Config{Name: fmt.Sprintf("s%d", i), DataDir: t.TempDir(), ClusterName: "fermion-test",
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
	defer func() {
		for _, e := range engines {
			e.Close()
		}
	}()
	kv, err := engines[0].JetStream().CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "r3", Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	// The other replicas learn of the new stream and catch up asynchronously: until
	// then a read there finds no responder. Wait for it, bounded.
	var got jetstream.KeyValueEntry
	deadline := time.Now().Add(20 * time.Second)
	for {
		kv2, err := engines[2].JetStream().KeyValue(ctx, "r3")
		if err == nil {
			got, err = kv2.Get(ctx, "k")
		}
		if err == nil && string(got.Value()) == "v" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("read from another replica: %v %v", got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
