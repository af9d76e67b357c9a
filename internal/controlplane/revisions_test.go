package controlplane_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/client"
	"fermion.dev/fermion/internal/artifact"
)

// revisionFleet is one simulated node with hello v1 and v2 pushed, v1 deployed (as
// revision 1) and v2 (as revision 2).
func revisionFleet(t *testing.T) (f *fleet, v1Image, v2Image string, d1, d2 *v1.Deployment) {
	t.Helper()
	f = newFleet(t, map[string]map[string]string{"edge-1": {"zone": "a"}})
	ctx := context.Background()
	v1Image = f.p.PushExample(t, "hello", "1.0.0", artifact.Meta{Revision: "one"})
	v2Image = f.p.PushExample(t, "hello", "2.0.0", artifact.Meta{Revision: "two"})
	var err error
	if d1, _, err = f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: v1Image, Nodes: 1}, client.CreateOnly().WithMessage("first")); err != nil {
		t.Fatal(err)
	}
	if d2, _, err = f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: v2Image, Nodes: 1}, client.Unconditional().WithMessage("second")); err != nil {
		t.Fatal(err)
	}
	if d1.Version.Digest == d2.Version.Digest {
		t.Fatal("v1 and v2 have the same digest")
	}
	return f, v1Image, v2Image, d1, d2
}

// TestRevisionsAndRollback: each change is a numbered revision with who and why; an
// unchanged deploy makes none; a rollback is a new revision with the earlier spec and
// digest, converges on the nodes, and names what it returned to.
func TestRevisionsAndRollback(t *testing.T) {
	f, _, v2Image, d1, d2 := revisionFleet(t)
	ctx := context.Background()
	if d1.Change == nil || d1.Change.Number != 1 || d2.Change == nil || d2.Change.Number != 2 {
		t.Fatalf("changes %+v, %+v: want revisions 1 and 2", d1.Change, d2.Change)
	}
	// The same spec and image again is no change and no revision.
	if d, _, err := f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: v2Image, Nodes: 1}, client.Unconditional().WithMessage("again")); err != nil || d.Change.Number != 2 {
		t.Fatalf("unchanged deploy: %+v, %v", d, err)
	}
	h, err := f.c.Revisions(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if h.Current != 2 || len(h.Revisions) != 2 || h.Revisions[0].Change.Number != 2 || h.Revisions[1].Change.Number != 1 {
		t.Fatalf("history %+v: want revisions 2, 1 with 2 current", h)
	}
	r1 := h.Revisions[1]
	if r1.Change.Message != "first" || r1.Change.Cause != v1.CauseDeploy || r1.Change.Who == "" || r1.Version.Digest != d1.Version.Digest || r1.Change.Time.IsZero() {
		t.Errorf("revision 1 %+v", r1)
	}
	f.waitConverged(t, "hello", 15*time.Second)

	d3, err := f.c.Rollback(ctx, "hello", v1.RollbackRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if d3.Change.Number != 3 || d3.Change.Cause != v1.CauseRollback || d3.Change.RollbackOf != 1 || d3.Version.Digest != d1.Version.Digest {
		t.Fatalf("rollback wrote %+v, version %s: want revision 3 back to revision 1's %s", d3.Change, d3.Version.Digest, d1.Version.Digest)
	}
	if d3.Spec.Image != d1.Version.Ref() {
		t.Errorf("rollback's image %q: want it pinned to %q", d3.Spec.Image, d1.Version.Ref())
	}
	st := f.waitConverged(t, "hello", 15*time.Second)
	for _, n := range st.Nodes {
		if n.Actual == nil || n.Actual.Digest != d1.Version.Digest {
			t.Errorf("node %s runs %+v after the rollback, want %s", n.Node, n.Actual, d1.Version.Digest)
		}
	}
	r3, err := f.c.Revision(ctx, "hello", 3)
	if err != nil || r3.Change.RollbackOf != 1 || r3.Change.Message != "rollback to revision 1" {
		t.Fatalf("revision 3: %+v, %v", r3, err)
	}
	// Back to 2 by number.
	if d4, err := f.c.Rollback(ctx, "hello", v1.RollbackRequest{To: 2, Message: "v2 is fine after all"}); err != nil || d4.Change.Number != 4 || d4.Version.Digest != d2.Version.Digest || d4.Change.Message != "v2 is fine after all" {
		t.Fatalf("rollback to 2: %+v, %v", d4, err)
	}

	for _, tc := range []struct {
		name string
		req  v1.RollbackRequest
		code string
	}{
		{"a revision never made", v1.RollbackRequest{To: 99}, v1.CodeNotFound},
		{"the current revision", v1.RollbackRequest{To: 4}, v1.CodeBadRequest},
		{"a negative revision", v1.RollbackRequest{To: -1}, v1.CodeBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.c.Rollback(ctx, "hello", tc.req)
			if !client.IsCode(err, tc.code) {
				t.Fatalf("rollback %+v: %v, want code %s", tc.req, err, tc.code)
			}
			t.Logf("%v", err)
			if h, _ := f.c.Revisions(ctx, "hello"); h == nil || h.Current != 4 {
				t.Errorf("a refused rollback wrote: %+v", h)
			}
		})
	}
	if _, _, err := f.c.PutDeployment(ctx, "hello", v1.DeploymentSpec{Image: v2Image, Nodes: 2}, client.Unconditional().WithMessage(strings.Repeat("x", v1.MaxRevisionMessage+1))); !client.IsCode(err, v1.CodeBadRequest) {
		t.Errorf("deploy with an overlong message: %v, want code %s", err, v1.CodeBadRequest)
	}
	if h, _ := f.c.Revisions(ctx, "hello"); h == nil || h.Current != 4 {
		t.Errorf("a refused deploy wrote: %+v", h)
	}
	if _, err := f.c.Rollback(ctx, "nothing", v1.RollbackRequest{}); !client.IsCode(err, v1.CodeNotFound) {
		t.Errorf("rollback of a deployment that does not exist: %v", err)
	}
	if _, err := f.c.Revision(ctx, "hello", 99); !client.IsCode(err, v1.CodeNotFound) {
		t.Errorf("revision 99: %v", err)
	}
}

// TestRollbackRefusedByPolicy: a rollback goes through admission: to a revision whose
// artifact a deny policy now refuses, it fails with the policy's error and writes
// nothing.
func TestRollbackRefusedByPolicy(t *testing.T) {
	f, _, _, d1, d2 := revisionFleet(t)
	ctx := context.Background()
	src := admissionPolicy("no-v1", strconv.Quote("artifact.digest != \""+d1.Version.Digest+"\""), "  mode: deny\n")
	if _, _, err := f.c.ApplyPolicy(ctx, "no-v1", v1.PolicyApply{Source: src}); err != nil {
		t.Fatal(err)
	}
	_, err := f.c.Rollback(ctx, "hello", v1.RollbackRequest{To: 1})
	if !client.IsCode(err, v1.CodePolicyDenied) {
		t.Fatalf("rollback to a denied artifact: %v, want code %s", err, v1.CodePolicyDenied)
	}
	d, err := f.c.GetDeployment(ctx, "hello")
	if err != nil || d.Change.Number != 2 || d.Version.Digest != d2.Version.Digest || d.Revision != d2.Revision {
		t.Fatalf("after a refused rollback: %+v, %v", d, err)
	}
	if h, _ := f.c.Revisions(ctx, "hello"); h == nil || len(h.Revisions) != 2 {
		t.Fatalf("a refused rollback recorded a revision: %+v", h)
	}
}

// TestConcurrentChangesNumberRevisionsOnce: changes at once each get their own number
// (admission's conditional write serialises them), and of rollbacks from the same
// revision at once exactly one writes a revision.
func TestConcurrentChangesNumberRevisionsOnce(t *testing.T) {
	f, v1Image, _, _, _ := revisionFleet(t)
	ctx := context.Background()
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			// Each a different spec: the selector differs, the node matches all.
			spec := v1.DeploymentSpec{Image: v1Image, Nodes: 1, Selector: fmt.Sprintf(`zone != "z%d"`, i)}
			_, _, errs[i] = f.c.PutDeployment(ctx, "hello", spec, client.Unconditional())
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("deploy %d: %v", i, err)
		}
	}
	h, err := f.c.Revisions(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if h.Current != 2+n || len(h.Revisions) != 2+n {
		t.Fatalf("history after %d concurrent deploys: current %d, %d revisions", n, h.Current, len(h.Revisions))
	}
	for i, r := range h.Revisions {
		if want := int64(2 + n - i); r.Change.Number != want {
			t.Fatalf("revision at %d is %d, want %d: numbers must be unique and without gaps", i, r.Change.Number, want)
		}
	}

	// Of rollbacks at once, the first write wins; one that read the deployment before
	// it gets a conflict, one that read it after finds it already at revision 1's spec
	// and digest and changes nothing. Either way exactly one revision is written.
	got := make([]*v1.Deployment, n)
	for i := range n {
		wg.Go(func() { got[i], errs[i] = f.c.Rollback(ctx, "hello", v1.RollbackRequest{To: 1}) })
	}
	wg.Wait()
	conflicts := 0
	for i, err := range errs {
		switch {
		case err == nil:
			if c := got[i].Change; c == nil || c.Number != 3+n || c.RollbackOf != 1 {
				t.Errorf("rollback %d answered change %+v, want the one rollback written, revision %d", i, c, 3+n)
			}
		case client.IsCode(err, v1.CodeConflict):
			conflicts++
		default:
			t.Errorf("rollback: %v", err)
		}
	}
	t.Logf("%d rollbacks at once: %d conflicts", n, conflicts)
	if h, _ := f.c.Revisions(ctx, "hello"); h == nil || h.Current != 3+n {
		t.Fatalf("after the rollbacks: %+v", h)
	}
}
