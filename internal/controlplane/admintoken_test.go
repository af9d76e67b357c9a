package controlplane_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/controlplane/cptest"
	"fermion.dev/fermion/internal/fermiontest"
)

// TestClusterAdminToken: the replicas of a cluster share one bootstrap admin token, the
// one a replica recorded first; and once the cluster has lost its quorum, the API's
// errors name each context once.
func TestClusterAdminToken(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	ctx := context.Background()
	c := cptest.StartCluster(t, controlplane.Config{Logger: slog.New(slog.DiscardHandler)})
	tok := c.Planes[0].Token
	for i, p := range c.Planes {
		if p.Token == "" || p.Token != tok {
			t.Fatalf("replica %d's admin token differs from replica 0's", i)
		}
	}
	var viewer *v1.Token
	for i, p := range c.Planes {
		api, err := client.New(p.API, tok)
		if err != nil {
			t.Fatal(err)
		}
		var l *v1.TokenList
		fermiontest.WaitFor(t, 15*time.Second, func() error {
			l, err = api.ListTokens(ctx)
			return err
		})
		admins := 0
		for _, tk := range l.Tokens {
			if tk.Role == v1.RoleAdmin && tk.Description == "bootstrap admin token" {
				admins++
			}
		}
		if admins != 1 {
			t.Fatalf("replica %d lists %d bootstrap admin tokens, want 1: %+v", i, admins, l.Tokens)
		}
		if i == 0 {
			if viewer, err = api.CreateToken(ctx, v1.TokenRequest{Role: v1.RoleViewer}); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Without a quorum, writes fail: each error names the client's operation, then the
	// server's step, once.
	c.Kill(1)
	c.Kill(2)
	api, err := client.New(c.Planes[0].API, tok)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, tc := range []struct {
		name, prefix string
		call         func() error
	}{
		{"create token", "create token: store token: ", func() error {
			_, err := api.CreateToken(cctx, v1.TokenRequest{Role: v1.RoleViewer})
			return err
		}},
		{"revoke token", "revoke token " + viewer.ID + ": delete token record: ", func() error { return api.RevokeToken(cctx, viewer.ID) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !client.IsCode(err, v1.CodeUnavailable) {
				t.Fatalf("%s without a quorum: %v, want unavailable", tc.name, err)
			}
			msg := err.Error()
			if r := fermiontest.RepeatedContext(msg); r != "" || !strings.HasPrefix(msg, tc.prefix) {
				t.Fatalf("error %q: repeats %q; want it to start %q", msg, r, tc.prefix)
			}
			t.Log(fmt.Sprintf("%s: %s", tc.name, msg))
		})
	}
}

// TestAdminTokenKept: a restarted server keeps its admin token, and one that lost its
// token file writes the recorded one again rather than a new one.
func TestAdminTokenKept(t *testing.T) {
	dir := t.TempDir()
	start := func() string {
		t.Helper()
		p, err := cptest.StartPlane(context.Background(), dir, controlplane.Config{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		api, err := client.New(p.API, p.Token)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := api.ListTokens(context.Background()); err != nil {
			t.Fatalf("the admin token does not work: %v", err)
		}
		b, err := os.ReadFile(filepath.Join(dir, "admin.token"))
		if err != nil || strings.TrimSpace(string(b)) != p.Token {
			t.Fatalf("admin.token holds %q (%v), the server uses another", b, err)
		}
		return p.Token
	}
	first := start()
	if again := start(); again != first {
		t.Fatal("a restart changed the admin token")
	}
	if err := os.Remove(filepath.Join(dir, "admin.token")); err != nil {
		t.Fatal(err)
	}
	if again := start(); again != first {
		t.Fatal("a server that lost admin.token made a new admin token, not the recorded one")
	}
}
