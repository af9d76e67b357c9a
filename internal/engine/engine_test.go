package engine

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"fermion.dev/fermion/internal/fermiontest"
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

// TestListenerInUse: a port that is taken fails Start at once with the server's reason,
// instead of waiting out the ready timeout.
func TestListenerInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	for _, cfg := range []Config{
		{DataDir: t.TempDir(), Listen: taken},
		{DataDir: t.TempDir(), Name: "s0", ClusterName: "c", ClusterListen: taken, Routes: []string{"nats://" + taken}},
	} {
		cfg.ReadyTimeout = time.Minute
		start := time.Now()
		e, err := Start(context.Background(), cfg)
		if err == nil {
			e.Close()
			t.Fatalf("%+v: started on a port in use", cfg)
		}
		if !strings.Contains(err.Error(), "address already in use") {
			t.Errorf("error %q does not say the address is in use", err)
		}
		if waited := time.Since(start); waited > 30*time.Second {
			t.Errorf("failed after %s, not at once", waited)
		}
	}
}

func TestThreeServerClusterR3(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	t.Run("plain routes", func(t *testing.T) { testThreeServers(t, nil) })
	t.Run("tls routes", func(t *testing.T) {
		ca := fermiontest.NewCA(t)
		certFile, keyFile := ca.Issue(t, t.TempDir(), 1, time.Now().Add(time.Hour))
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AddCert(ca.Cert)
		testThreeServers(t, &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, RootCAs: roots})
	})
}

// testThreeServers starts a three-server cluster (routes over TLS with clusterTLS) and
// checks that an R3 write on one server is read on another.
func testThreeServers(t *testing.T, clusterTLS *tls.Config) {
	ports := fermiontest.Ports(t, 3)
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
				ClusterListen: fmt.Sprintf("127.0.0.1:%d", ports[i]), Routes: routes, ClusterSecret: "route-secret", ClusterTLS: clusterTLS})
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
	// A plain route port opens with its INFO line; a TLS one waits for a handshake with
	// the certificate the members check.
	routeAddr := fmt.Sprintf("127.0.0.1:%d", ports[1])
	if clusterTLS != nil {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", routeAddr, &tls.Config{RootCAs: clusterTLS.RootCAs})
		if err != nil {
			t.Fatalf("TLS to the route port: %v", err)
		}
		conn.Close()
	} else {
		conn, err := net.DialTimeout("tcp", routeAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		info, err := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		if err != nil || !strings.HasPrefix(info, "INFO ") || strings.Contains(info, `"tls_required":true`) {
			t.Fatalf("plain route port: %q %v", info, err)
		}
	}
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
	// Replicas open their buckets at once when they start: each must bind the one
	// bucket, whichever replica made it and however far it got in reconfiguring it
	// (OpenKeyValue's leaderReads), which a create then reports as a conflict.
	for b := range 4 {
		bucket := fmt.Sprintf("together-%d", b)
		kvs := make([]jetstream.KeyValue, len(engines))
		errs := make(chan error, len(engines))
		for i, e := range engines {
			go func() {
				var err error
				kvs[i], err = OpenKeyValue(ctx, e.JetStream(), jetstream.KeyValueConfig{Bucket: bucket, Replicas: 3})
				errs <- err
			}()
		}
		for range engines {
			if err := <-errs; err != nil {
				t.Fatalf("open %s from three replicas at once: %v", bucket, err)
			}
		}
		if _, err := kvs[0].Put(ctx, "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
		if e, err := kvs[2].Get(ctx, "k"); err != nil || string(e.Value()) != "v" {
			t.Fatalf("%s: a write through one replica's handle, read through another's: %v", bucket, err)
		}
	}
}

func TestAuth(t *testing.T) {
	e, err := Start(context.Background(), Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0",
		Auth: func(user, password string) (*server.Permissions, bool) {
			if user == "node:a" && password == "s3cret" {
				return &server.Permissions{Publish: &server.SubjectPermission{Allow: []string{"ok.>"}}}, true
			}
			return nil, false
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	// The in-process connection works with its own secret.
	if _, err := e.JetStream().AccountInfo(context.Background()); err != nil {
		t.Fatalf("in-process connection: %v", err)
	}
	if _, err := nats.Connect(e.ClientURL(), nats.UserInfo("node:a", "wrong")); err == nil {
		t.Fatal("a wrong password connected")
	}
	if _, err := nats.Connect(e.ClientURL(), nats.UserInfo(systemUser, "guess")); err == nil {
		t.Fatal("a guessed system password connected")
	}
	nc, err := nats.Connect(e.ClientURL(), nats.UserInfo("node:a", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	errs := make(chan error, 1)
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err })
	if err := nc.Publish("denied.x", nil); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	select {
	case err := <-errs:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("want a permission violation, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("publishing outside the user's permissions was not refused")
	}
}
