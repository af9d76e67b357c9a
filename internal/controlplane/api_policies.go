package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/controlplane/state"
	"fermion.dev/fermion/internal/policy"
)

// The /v1/policies handlers: apply (vetted and compiled before the write), read,
// delete and the violations history.

// reservedPolicyNames cannot be policies: they are routes under /v1/policies/.
var reservedPolicyNames = []string{"violations"}

func (s *api) policyView(name string) (v1.Policy, bool) {
	p, rev, ok := s.st.Policies.Get(name)
	if !ok {
		return p, false
	}
	p.Revision = rev
	p.Error = s.policies.policyError(name, p.Version)
	return p, true
}

func (s *api) apiListPolicies(_ http.ResponseWriter, _ *http.Request, _ cred) (any, int, *v1.Error) {
	names := s.st.Policies.Keys()
	out := v1.PolicyList{Policies: []v1.Policy{}}
	for _, name := range names {
		if p, ok := s.policyView(name); ok {
			out.Policies = append(out.Policies, p)
		}
	}
	return out, http.StatusOK, nil
}

func (s *api) apiGetPolicy(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	p, ok := s.policyView(r.PathValue("name"))
	if !ok {
		return nil, 0, &v1.Error{Code: v1.CodeNotFound, Message: "no policy " + r.PathValue("name")}
	}
	return p, http.StatusOK, nil
}

// apiPutPolicy applies a policy: parsed, vetted and compiled against the set in force
// before anything is written, so a policy with a mistake is refused with its position
// and the version in force stays. Each apply that changes the source or the mode is
// a new version.
func (s *api) apiPutPolicy(_ http.ResponseWriter, r *http.Request, caller cred) (any, int, *v1.Error) {
	ctx := r.Context()
	name := r.PathValue("name")
	if err := v1.ValidName("policy", name); err != nil {
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "name", Message: err.Error()}
	}
	if slices.Contains(reservedPolicyNames, name) {
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "name", Message: fmt.Sprintf("%q is reserved (it is a route under /v1/policies/); choose another metadata.name", name)}
	}
	var req v1.PolicyApply
	if e := decodeBody(r, &req); e != nil {
		return nil, 0, e
	}
	if req.Mode != "" && !slices.Contains(v1.PolicyModes, req.Mode) {
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "mode", Message: fmt.Sprintf("%q: want one of %s, or nothing to keep the file's spec.mode", req.Mode, strings.Join(v1.PolicyModes, ", "))}
	}
	file := req.File
	if file == "" {
		file = name + ".yaml"
	}
	if len(file) > 1024 || strings.ContainsAny(file, "\n\r") {
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "file", Message: "a file name of at most 1024 bytes on one line"}
	}
	if strings.TrimSpace(req.Source) == "" {
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "source", Message: "the policy file is empty"}
	}
	p, err := policy.ParseApplied(file, []byte(req.Source), policy.Mode(req.Mode), 0)
	if err != nil {
		return nil, 0, policyInvalid(name, err)
	}
	if p.Name() != name {
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "source", Message: fmt.Sprintf("%s: metadata.name is %s but the request is for policy %s; apply it as %s or rename it", file, p.Name(), name, p.Name())}
	}
	refuse, warn, err := policy.Vet(p)
	if err != nil {
		return nil, 0, policyInvalid(name, err)
	}
	if len(refuse) > 0 {
		return nil, 0, policyInvalid(name, &policy.Error{Kind: policy.KindInvalid, Problems: refuse})
	}
	warnings := make([]string, len(warn))
	for i, f := range warn {
		warnings[i] = f.String()
	}
	mode := string(p.Spec.Mode)
	now := time.Now().UTC()
	var compileErr error
	created := false
	var same *v1.Policy // the stored record, when it is this apply already
	rec, rev, err := s.st.Policies.Update(ctx, name, func(cur *v1.Policy) (*v1.Policy, error) {
		if cur != nil && cur.Source == req.Source && cur.Mode == mode {
			same = cur
			return nil, nil
		}
		same = nil
		created = cur == nil
		version := 1
		if cur != nil {
			version = cur.Version + 1
		} else if last, err := lastPolicyVersion(ctx, s.st.Policies.KV(), name); err != nil {
			return nil, err
		} else {
			version = last + 1
		}
		// Compile it into the set in force, as the watch will when the record comes
		// back. The set may already hold a version this read has not seen (a
		// concurrent apply); the compare-and-swap orders those, so replace whatever
		// version of this policy the set holds.
		if _, err := s.policies.policySet().Without(name).With(p.WithVersion(version)); err != nil {
			compileErr = err
			return nil, err
		}
		return &v1.Policy{Name: name, Version: version, Mode: mode, Target: string(p.Spec.Target), Source: req.Source,
			Applied: now, AppliedBy: caller.ID, Warnings: warnings}, nil
	})
	switch {
	case compileErr != nil && (errors.Is(compileErr, policy.ErrConflict) || errors.Is(compileErr, policy.ErrStale)):
		return nil, 0, &v1.Error{Code: v1.CodeConflict, Field: "source", Message: compileErr.Error()}
	case compileErr != nil:
		return nil, 0, policyInvalid(name, compileErr)
	case err != nil:
		return nil, 0, unavailable("write policy", err)
	}
	if rec == nil { // unchanged: the record read is the answer
		s.st.Policies.WaitRev(ctx, rev)
		same.Revision, same.Warnings = rev, warnings
		same.Error = s.policies.policyError(name, same.Version)
		return same, http.StatusOK, nil
	}
	s.st.Policies.WaitRev(ctx, rev)
	rec.Revision = rev
	rec.Error = s.policies.policyError(name, rec.Version)
	s.event(ctx, v1.Event{Type: v1.EventPolicyApplied,
		Message: fmt.Sprintf("policy %s version %d (%s) applied in mode %s by token %s", name, rec.Version, rec.Target, rec.Mode, caller.ID)})
	if created {
		return rec, http.StatusCreated, nil
	}
	return rec, http.StatusOK, nil
}

// policyInvalid is the 400 of a policy that does not parse, compile or vet: every
// problem with its file:line:col, so the user fixes them in one edit.
func policyInvalid(name string, err error) *v1.Error {
	var pe *policy.Error
	msg := err.Error()
	if errors.As(err, &pe) {
		what := "is not a valid policy"
		if pe.Kind == policy.KindCompile {
			what = "does not compile"
		}
		msg = fmt.Sprintf("policy %s %s; the version in force (if any) stays:\n%s", name, what, pe.Error())
	}
	return &v1.Error{Code: v1.CodeBadRequest, Field: "source", Message: msg}
}

// lastPolicyVersion is the highest version the bucket's history holds for a deleted
// policy, so that a re-created policy continues its numbering (0 if none).
func lastPolicyVersion(ctx context.Context, kv jetstream.KeyValue, name string) (int, error) {
	hist, err := kv.History(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the history of policy %s: %w", name, err)
	}
	last := 0
	for _, e := range hist {
		var p v1.Policy
		if e.Operation() == jetstream.KeyValuePut && json.Unmarshal(e.Value(), &p) == nil {
			last = max(last, p.Version)
		}
	}
	return last, nil
}

func (s *api) apiDeletePolicy(_ http.ResponseWriter, r *http.Request, caller cred) (any, int, *v1.Error) {
	ctx := r.Context()
	name := r.PathValue("name")
	e, err := s.st.Policies.KV().Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, &v1.Error{Code: v1.CodeNotFound, Message: "no policy " + name}
	}
	if err != nil {
		return nil, 0, unavailable("read policy", err)
	}
	var p v1.Policy
	json.Unmarshal(e.Value(), &p)
	if err := s.st.Policies.DeleteAt(ctx, name, e.Revision()); err != nil {
		if state.IsCASConflict(err) {
			return nil, 0, &v1.Error{Code: v1.CodeConflict, Message: "policy " + name + " changed while it was being deleted; check it and delete again"}
		}
		return nil, 0, unavailable("delete policy record", err)
	}
	s.st.Policies.WaitGone(ctx, name)
	s.event(ctx, v1.Event{Type: v1.EventPolicyDeleted, Message: fmt.Sprintf("policy %s (version %d, mode %s) deleted by token %s", name, p.Version, p.Mode, caller.ID)})
	return nil, http.StatusNoContent, nil
}

// policyEventTypes are the events GET /v1/policies/violations reads.
var policyEventTypes = []string{v1.EventPolicyDenied, v1.EventPolicyWarned, v1.EventPolicyAudited}

func (s *api) apiPolicyViolations(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	f, e := parseEventFilter(r)
	if e != nil {
		return nil, 0, e
	}
	if f.Type != "" || f.Node != "" {
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Message: "violations are filtered by since, policy, deployment and limit only"}
	}
	f.Types, f.Policy = policyEventTypes, r.URL.Query().Get("policy")
	evs, err := s.evlog.events(r.Context(), f)
	if err != nil {
		return nil, 0, unavailable("read violations", err)
	}
	return v1.EventList{Events: evs}, http.StatusOK, nil
}
