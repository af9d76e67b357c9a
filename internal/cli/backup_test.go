package cli_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	fclient "fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/fermiontest"
)

var registryAddrLine = regexp.MustCompile(`(?m)^registry (\S+)$`)

// TestBackupRestore follows docs/operations.md: a server with a deployment (its
// artifact in the built-in registry, its SLO), a policy, a node and a viewer token is
// backed up while it runs; a fresh server restores the file; all of them are there, and
// a second restore is refused.
func TestBackupRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and serves two control planes")
	}
	home := t.TempDir()
	t.Setenv("FERMION_HOME", home)
	listen := []string{"--listen", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0", "--admin-listen", ""}
	// Started twice, so that its leader's term (its fences') is past the fresh server's.
	dataA := t.TempDir()
	first := startVerb(t, append([]string{"server", "--data", dataA}, listen...)...)
	first.waitLine(t, apiLine, time.Minute)
	first.cancel()
	code := <-first.done
	first.done <- code // for its cleanup
	a := startVerb(t, append([]string{"server", "--data", dataA}, listen...)...)
	a.waitLine(t, apiLine, time.Minute)
	natsURL := a.waitLine(t, natsLine, time.Second)
	c, out, errOut := run(t, "token", "create", "--role", "node")
	nodeTok := tokenLine.FindStringSubmatch(out)
	if c != 0 || nodeTok == nil {
		t.Fatalf("token create: %d %s %s", c, out, errOut)
	}
	agent := startVerb(t, "agent", "--server", natsURL, "--token", nodeTok[1], "--name", "edge-1", "--data", t.TempDir(),
		"--listen", "127.0.0.1:0", "--admin-listen", "")
	agent.waitLine(t, gwLine, time.Minute)
	root := fermiontest.Root(t)
	if c, out, errOut := run(t, "deploy", filepath.Join(root, "examples", "hello"), "--daemon", "--wait=false"); c != 0 {
		t.Fatalf("deploy: %d\n%s\n%s", c, out, errOut)
	}
	if c, out, errOut := run(t, "policy", "apply", filepath.Join(root, "examples", "policies", "require-signed.yaml"), "--mode", "audit"); c != 0 {
		t.Fatalf("policy apply: %d\n%s\n%s", c, out, errOut)
	}
	c, out, errOut = run(t, "token", "create", "--role", "viewer")
	tok := tokenLine.FindStringSubmatch(out)
	if c != 0 || tok == nil {
		t.Fatalf("token create: %d %s %s", c, out, errOut)
	}
	file := filepath.Join(t.TempDir(), "fermion.backup")
	// Only an admin may take one: it holds every token record and artifact.
	if c, _, errOut := run(t, "server", "backup", file, "--token", tok[1]); c == 0 || !strings.Contains(errOut, "needs the admin role") {
		t.Fatalf("backup with a viewer token: %d %s", c, errOut)
	}
	if _, err := os.Stat(file); err == nil {
		t.Fatal("a refused backup left a file")
	}
	if c, out, errOut := run(t, "server", "backup", file); c != 0 || !strings.Contains(out, "backup "+file+": ") || !strings.Contains(out, "objects") {
		t.Fatalf("server backup: %d\n%s\n%s", c, out, errOut)
	}
	if c, _, errOut := run(t, "server", "backup", file); c != 2 || !strings.Contains(errOut, "pass --force") {
		t.Fatalf("backup over an existing file: %d %s", c, errOut)
	}
	// A truncated file is refused before anything is sent.
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.backup")
	if err := os.WriteFile(cut, b[:len(b)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	if c, _, errOut := run(t, "server", "restore", cut); c != 2 || !strings.Contains(errOut, "truncated") {
		t.Fatalf("restore of a truncated file: %d %s", c, errOut)
	}
	agent.cancel()
	a.cancel()

	// A fresh server (it saves its own context), then the restore.
	bsrv := startVerb(t, append([]string{"server", "--data", t.TempDir()}, listen...)...)
	apiB := bsrv.waitLine(t, apiLine, time.Minute)
	regB := bsrv.waitLine(t, registryAddrLine, time.Second)
	fermiontest.WaitFor(t, 10*time.Second, func() error { // the context is saved after the lines
		_, err := os.Stat(filepath.Join(home, "context.json"))
		return err
	})
	if c, out, errOut := run(t, "server", "restore", file); c != 0 || !regexp.MustCompile(`restored `+regexp.QuoteMeta(file)+`: \d+ buckets, \d+ keys, \d+ objects?, \d+ bytes`).MatchString(out) {
		t.Fatalf("server restore: %d\n%s\n%s", c, out, errOut)
	}
	// The viewer token of the old server reads the new one's restored state.
	viewer, err := fclient.New(apiB, tok[1])
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var image string
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		l, err := viewer.ListDeployments(ctx)
		if err != nil {
			return err
		}
		for _, d := range l.Deployments {
			if d.Name == "hello" {
				image = d.Spec.Image
				return nil
			}
		}
		return fmt.Errorf("no hello among %d deployments", len(l.Deployments))
	})
	pl, err := viewer.ListPolicies(ctx)
	if err != nil || !slices.ContainsFunc(pl.Policies, func(p v1.Policy) bool { return p.Name == "require-signed" }) {
		t.Fatalf("policies after restore: %+v %v", pl, err)
	}
	// hello's [[slo]] came with its deployment, and the SLO engine's cache picks it up.
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		l, err := viewer.ListSLOs(ctx)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(l.SLOs, func(s v1.SLO) bool { return s.Name == "hello-availability" }) {
			return fmt.Errorf("SLOs after restore: %+v", l.SLOs)
		}
		return nil
	})
	if nl, err := viewer.ListNodes(ctx); err != nil || len(nl.Nodes) != 1 || nl.Nodes[0].Name != "edge-1" {
		t.Fatalf("nodes after restore: %+v %v", nl, err)
	}
	// The artifact the deployment names is in the new registry.
	_, rest, _ := strings.Cut(image, "/")
	repo, ref, ok := strings.Cut(rest, "@")
	if !ok {
		i := strings.LastIndex(rest, ":")
		if i < 0 {
			t.Fatalf("deployment image %q, want host/repo@digest or host/repo:tag", image)
		}
		repo, ref = rest[:i], rest[i+1:]
	}
	req, _ := http.NewRequest("HEAD", "http://"+regB+"/v2/"+repo+"/manifests/"+ref, nil)
	req.Header.Set("Authorization", "Bearer "+tok[1])
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("HEAD %s manifest %s in the restored registry: %d", repo, ref, resp.StatusCode)
	}
	// Restoring twice would mix two states: refused, counting what is there in words.
	if c, _, errOut := run(t, "server", "restore", file); c == 0 || !strings.Contains(errOut, "restore into a fresh control plane: this one has 1 deployment, 1 policy and 1 node;") {
		t.Fatalf("second restore: %d %s", c, errOut)
	}
	// The old leader's fence records stay out: restored, they fenced the new leader out
	// of its own buckets (its next controller write was refused), and it stepped down at
	// every term until it passed the old one. A changed deployment makes the scheduler
	// write.
	sep := ":"
	if strings.HasPrefix(ref, "sha256:") {
		sep = "@"
	}
	if c, out, errOut := run(t, "deploy", regB+"/"+repo+sep+ref, "--name", "hello", "--nodes", "1", "--wait=false"); c != 0 {
		t.Fatalf("deploy after restore: %d\n%s\n%s", c, out, errOut)
	}
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		d, err := viewer.GetDeployment(ctx, "hello")
		if err != nil {
			return err
		}
		if d.Placement.ObservedGeneration != d.Generation || len(d.Placement.Nodes) != 1 {
			return fmt.Errorf("hello not placed yet: %+v", d.Placement)
		}
		return nil
	})
	if log := bsrv.errs.String(); strings.Contains(log, "stepped down as leader") {
		t.Fatalf("the restored server stepped down as leader:\n%s", log)
	}
}
