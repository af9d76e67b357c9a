package controlplane

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/fermiontest"
)

// TestRevisionRecovery: the revisions controller writes the revision a deployment's
// record names when the replica that admitted it died before writing it, prunes each
// history to revisionsKept, and deletes the revisions of deployments that are gone;
// meanwhile a history read shows the missing revision from the record.
func TestRevisionRecovery(t *testing.T) {
	s := startLeader(t)
	ctx := context.Background()
	now := time.Now().UTC()
	spec := v1.DeploymentSpec{Image: "r/hello@sha256:" + strings.Repeat("a", 64), Nodes: 1}
	// An old history of 60 revisions, the last of them never written.
	for n := int64(1); n < 60; n++ {
		r := v1.Revision{Deployment: "hello", Change: v1.Change{Number: n, Cause: v1.CauseDeploy, Time: now}, Generation: n, Spec: spec}
		if _, _, err := s.st.Revisions.Create(ctx, revisionKey("hello", n), &r); err != nil {
			t.Fatal(err)
		}
	}
	gone := v1.Revision{Deployment: "gone", Change: v1.Change{Number: 1, Cause: v1.CauseDeploy, Time: now.Add(-2 * orphanGrace)}}
	if _, _, err := s.st.Revisions.Create(ctx, revisionKey("gone", 1), &gone); err != nil {
		t.Fatal(err)
	}
	young := v1.Revision{Deployment: "young", Change: v1.Change{Number: 1, Cause: v1.CauseDeploy, Time: now}}
	if _, _, err := s.st.Revisions.Create(ctx, revisionKey("young", 1), &young); err != nil {
		t.Fatal(err)
	}
	d := v1.Deployment{Name: "hello", Spec: spec, Version: v1.Version{Digest: "sha256:" + strings.Repeat("b", 64)}, Generation: 60, Created: now, Updated: now,
		Change: &v1.Change{Number: 60, Cause: v1.CauseDeploy, Who: "tok", Message: "lost", Time: now}}
	// The history shows revision 60 from the record even before it is written.
	h := v1.RevisionList{}
	if _, err := s.st.Deployments.Put(ctx, "hello", &d); err != nil {
		t.Fatal(err)
	}
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		var e *v1.Error
		if h, e = s.api.history("hello"); e != nil {
			return e
		}
		if h.Current != 60 || h.Revisions[0].Change.Number != 60 || h.Revisions[0].Change.Message != "lost" {
			return fmt.Errorf("history current %d, newest %+v", h.Current, h.Revisions[0].Change)
		}
		return nil
	})
	fermiontest.WaitFor(t, 20*time.Second, func() error {
		if _, _, ok := s.st.Revisions.Get(revisionKey("hello", 60)); !ok {
			return fmt.Errorf("revision 60 not backfilled")
		}
		if rs := revisionsOf(s.st, "hello"); len(rs) != revisionsKept || rs[len(rs)-1].Change.Number != 60-revisionsKept+1 {
			return fmt.Errorf("%d revisions kept, want the last %d", len(rs), revisionsKept)
		}
		if _, _, ok := s.st.Revisions.Get(revisionKey("gone", 1)); ok {
			return fmt.Errorf("the revision of a deployment long gone is still there")
		}
		return nil
	})
	if _, _, ok := s.st.Revisions.Get(revisionKey("young", 1)); !ok {
		t.Error("a revision younger than orphanGrace was deleted: its deployment may not be in this replica's table yet")
	}
	// A rollback to a pruned revision names those kept.
	if _, e := revision(mustHistory(t, s), 3); e == nil || e.Code != v1.CodeNotFound || !strings.Contains(e.Message, "keeps revisions 11 to 60") {
		t.Errorf("revision 3 after pruning: %+v", e)
	}
}

func mustHistory(t *testing.T, s *Server) v1.RevisionList {
	t.Helper()
	h, e := s.api.history("hello")
	if e != nil {
		t.Fatal(e)
	}
	return h
}

// FuzzRollbackBody feeds arbitrary bytes to the rollback body's decoder and
// validation: a coded error or a request with a usable revision, never a panic.
func FuzzRollbackBody(f *testing.F) {
	for _, s := range []string{`{}`, `{"to":3}`, `{"to":0,"message":"why"}`, `{"to":-1}`, `{"to":"x"}`, `{"to":1e30}`, `{"extra":1}`, ``, `null`, `[`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/v1/deployments/x/rollback", strings.NewReader(string(body)))
		r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, maxBody)
		var req v1.RollbackRequest
		if e := decodeBody(r, &req); e != nil {
			if e.Code == "" || e.Message == "" {
				t.Fatalf("uncoded error %+v", e)
			}
			return
		}
		if e := req.Validate(); e != nil {
			if e.Code != v1.CodeBadRequest || e.Field == "" {
				t.Fatalf("validation error %+v", e)
			}
			return
		}
		if req.To < 0 || len(req.Message) > v1.MaxRevisionMessage {
			t.Fatalf("accepted %+v", req)
		}
	})
}
