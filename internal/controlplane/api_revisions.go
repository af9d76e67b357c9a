package controlplane

import (
	"fmt"
	"net/http"
	"strconv"

	v1 "fermion.dev/fermion/api/v1"
)

// The revision handlers (issue 15): a deployment's history and rollback to one of
// its revisions, admitted like any deploy (revisions.go says how they are stored).

func (s *api) revisionRoutes(route routeFunc) {
	route("GET /v1/deployments/{name}/revisions", v1.RoleViewer, s.apiListRevisions)
	route("GET /v1/deployments/{name}/revisions/{n}", v1.RoleViewer, s.apiGetRevision)
	route("POST /v1/deployments/{name}/rollback", v1.RoleDeployer, s.apiRollback)
}

// history is name's revisions, the newest first, with the current one rebuilt from
// the record if its write has not landed yet (revisions.go's recovery rule).
func (s *api) history(name string) (v1.RevisionList, *v1.Error) {
	d, e := s.getDeployment(name)
	if e != nil {
		return v1.RevisionList{}, e
	}
	out := v1.RevisionList{Deployment: name, Revisions: revisionsOf(s.st, name)}
	if d.Change != nil {
		out.Current = d.Change.Number
		if len(out.Revisions) == 0 || out.Revisions[0].Change.Number < d.Change.Number {
			out.Revisions = append([]v1.Revision{revisionOf(&d)}, out.Revisions...)
		}
	}
	if out.Revisions == nil {
		out.Revisions = []v1.Revision{}
	}
	return out, nil
}

func (s *api) apiListRevisions(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	out, e := s.history(r.PathValue("name"))
	if e != nil {
		return nil, 0, e
	}
	return out, http.StatusOK, nil
}

// revision finds revision n in h, or says which ones are kept.
func revision(h v1.RevisionList, n int64) (v1.Revision, *v1.Error) {
	for _, r := range h.Revisions {
		if r.Change.Number == n {
			return r, nil
		}
	}
	msg := fmt.Sprintf("deployment %s has no revision %d", h.Deployment, n)
	if k := len(h.Revisions); k > 0 {
		msg += fmt.Sprintf(": it keeps revisions %d to %d (the last %d); see fermion history %s", h.Revisions[k-1].Change.Number, h.Revisions[0].Change.Number, revisionsKept, h.Deployment)
	} else {
		msg += ": it has no recorded revisions"
	}
	return v1.Revision{}, &v1.Error{Code: v1.CodeNotFound, Field: "to", Message: msg}
}

func (s *api) apiGetRevision(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	n, err := strconv.ParseInt(r.PathValue("n"), 10, 64)
	if err != nil || n < 1 {
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "n", Message: fmt.Sprintf("%q: want a revision number (1, 2, …) from the deployment's history", r.PathValue("n"))}
	}
	h, e := s.history(r.PathValue("name"))
	if e != nil {
		return nil, 0, e
	}
	rev, e := revision(h, n)
	if e != nil {
		e.Field = "n"
		return nil, 0, e
	}
	return rev, http.StatusOK, nil
}

// apiRollback deploys an earlier revision's spec with its exact artifact (the image
// pinned to its digest, not to a tag that may have moved), through the same
// admission as a PUT: policies, signatures and placement are checked again, and a
// refusal writes nothing. The write is conditional on the deployment not having
// changed since the revision was chosen.
func (s *api) apiRollback(w http.ResponseWriter, r *http.Request, caller cred) (any, int, *v1.Error) {
	name := r.PathValue("name")
	var req v1.RollbackRequest
	if e := decodeBody(r, &req); e != nil {
		return nil, 0, e
	}
	if e := req.Validate(); e != nil {
		return nil, 0, e
	}
	d, e := s.getDeployment(name)
	if e != nil {
		return nil, 0, e
	}
	if d.Deleting {
		return nil, 0, &v1.Error{Code: v1.CodeConflict, Message: fmt.Sprintf("deployment %s is being deleted; there is nothing to roll back", name)}
	}
	h, e := s.history(name)
	if e != nil {
		return nil, 0, e
	}
	if h.Current == 0 {
		return nil, 0, &v1.Error{Code: v1.CodeNotFound, Field: "to", Message: fmt.Sprintf("deployment %s has no recorded revisions (it was deployed before revisions were kept): deploy the version you want with fermion deploy", name)}
	}
	to := req.To
	if to == 0 {
		if h.Current < 2 {
			return nil, 0, &v1.Error{Code: v1.CodeNotFound, Field: "to", Message: fmt.Sprintf("deployment %s has no revision before its current one (%d)", name, h.Current)}
		}
		to = h.Current - 1
	}
	if to == h.Current {
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "to", Message: fmt.Sprintf("revision %d is deployment %s's current revision; name an earlier one (fermion history %s)", to, name, name)}
	}
	target, e := revision(h, to)
	if e != nil {
		return nil, 0, e
	}
	spec := target.Spec
	spec.Image = target.Version.Ref()
	msg := req.Message
	if msg == "" {
		msg = fmt.Sprintf("rollback to revision %d", to)
	}
	return s.deploy(w, r, name, precondition{revision: d.Revision}, spec, caller,
		v1.Change{Cause: v1.CauseRollback, RollbackOf: to, Message: msg})
}
