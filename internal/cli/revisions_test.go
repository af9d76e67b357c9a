package cli_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	fmclient "fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/cli"
	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/controlplane/cptest"
)

// stdinFrom makes os.Stdin read input until the test ends.
func stdinFrom(t *testing.T, input string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString(input); err != nil {
		t.Fatal(err)
	}
	w.Close()
	old := os.Stdin
	os.Stdin = r
	t.Cleanup(func() { os.Stdin = old; r.Close() })
}

// TestRevisionVerbs drives deploy --message, history, rollback and delete against a
// real control plane with a simulated node.
func TestRevisionVerbs(t *testing.T) {
	apiEnv(t)
	p := cptest.Start(t, controlplane.Config{})
	ctx := context.Background()
	a, err := cptest.JoinSimAgent(ctx, p.NATSURL(), p.NodeToken(t), "edge-1", v1.Register{Capacity: v1.Resources{MemoryBytes: 4 << 30, MilliCPU: 2000, Instances: 64}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	cptest.WaitNodes(t, p.Server, 1, v1.NodeReady, 10*time.Second)
	img1 := p.PushExample(t, "hello", "1.0.0", artifact.Meta{Revision: "one"})
	img2 := p.PushExample(t, "hello", "2.0.0", artifact.Meta{Revision: "two"})
	api := func(args ...string) (int, string, string) {
		t.Helper()
		return run(t, append(args, "--server", p.API, "--token", p.Token)...)
	}
	must := func(args ...string) string {
		t.Helper()
		code, stdout, stderr := api(args...)
		if code != 0 {
			t.Fatalf("fermion %s exited %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout, stderr)
		}
		return stdout
	}
	out := must("deploy", img1, "--name", "hello", "--message", "first release")
	contains(t, "deploy v1", out, "deployment hello created (revision 1, generation 1)", "converged")
	out = must("deploy", img2, "--name", "hello", "-m", "second release")
	contains(t, "deploy v2", out, "deployment hello updated (revision 2, generation 2)")

	out = must("history", "hello")
	contains(t, "history", out, "REVISION", "DIGEST", "first release", "second release", "s ago")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "*") || !strings.Contains(lines[1], " 2 ") {
		t.Fatalf("history: want a header, revision 2 marked current, then 1:\n%s", out)
	}
	var h v1.RevisionList
	if err := json.Unmarshal([]byte(must("history", "hello", "-o", "json")), &h); err != nil || h.Current != 2 || len(h.Revisions) != 2 {
		t.Fatalf("history -o json: %+v, %v", h, err)
	}

	out = must("rollback", "hello")
	contains(t, "rollback", out, "deployment hello rolled back to revision 1 (revision 3, generation 3)", "converged")
	out = must("history", "hello")
	t.Logf("fermion history hello:\n%s", out)
	contains(t, "history after rollback", out, "rollback to revision 1")
	contains(t, "status after rollback", must("status", "hello"), "revision 3, rollback by", "rollback to revision 1 (fermion history hello)")
	code, _, stderr := api("rollback", "hello", "--to", "42")
	if code != 1 {
		t.Fatalf("rollback --to 42 exited %d", code)
	}
	contains(t, "rollback to a revision never made", stderr, "no revision 42", "keeps revisions 1 to 3")
	if code, _, stderr := api("rollback", "hello", "--to", "-1"); code != 2 {
		t.Errorf("rollback --to -1 exited %d: %s", code, stderr)
	}

	// delete: refused without a terminal or --yes, not done on a wrong answer.
	cli.SetTerminal(t.Cleanup, false)
	code, _, stderr = api("delete", "hello")
	if code != 2 {
		t.Fatalf("delete on a non-terminal without --yes exited %d: %s", code, stderr)
	}
	contains(t, "delete without --yes", stderr, "not a terminal", "--yes")
	cli.SetTerminal(t.Cleanup, true)
	stdinFrom(t, "nope\n")
	if code, _, stderr := api("delete", "hello"); code != 1 || !strings.Contains(stderr, "nothing deleted") {
		t.Fatalf("delete answered wrong exited %d: %s", code, stderr)
	}
	cl, _ := fmclient.New(p.API, p.Token)
	if d, err := cl.GetDeployment(ctx, "hello"); err != nil || d.Deleting {
		t.Fatalf("unconfirmed delete changed the deployment: %+v, %v", d, err)
	}
	// The manifest's [[slo]] is owned by the deployment and goes with it.
	if _, err := cl.GetSLO(ctx, "hello-availability"); err != nil {
		t.Fatalf("owned SLO before delete: %v", err)
	}
	stdinFrom(t, "hello\n")
	out = must("delete", "hello")
	contains(t, "delete", out, "Type the name to confirm", "deployment hello is being deleted", "deployment hello deleted from every node")
	if _, err := cl.GetDeployment(ctx, "hello"); !fmclient.IsCode(err, v1.CodeNotFound) {
		t.Errorf("after delete: %v", err)
	}
	if _, err := cl.GetSLO(ctx, "hello-availability"); !fmclient.IsCode(err, v1.CodeNotFound) {
		t.Errorf("owned SLO after delete: %v", err)
	}
	if code, _, stderr := api("delete", "hello", "--yes"); code != 1 || !strings.Contains(stderr, "no deployment hello") {
		t.Errorf("delete of a deleted deployment exited %d: %s", code, stderr)
	}
}
