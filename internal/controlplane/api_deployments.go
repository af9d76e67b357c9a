package controlplane

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/controlplane/state"
	"fermion.dev/fermion/internal/scheduler"
)

// The /v1/deployments handlers: deploy (admission, placement dry run, CAS write),
// read, status and delete.

func (s *api) apiListDeployments(_ http.ResponseWriter, _ *http.Request, _ cred) (any, int, *v1.Error) {
	out := v1.DeploymentList{Deployments: []v1.Deployment{}}
	s.st.Deployments.Each(func(_ string, d *v1.Deployment, rev uint64) {
		c := *d
		c.Revision = rev
		out.Deployments = append(out.Deployments, c)
	})
	now := time.Now()
	for i := range out.Deployments {
		out.Deployments[i].Placement, _, _ = s.st.Placements.Get(out.Deployments[i].Name)
		withRolloutStatus(s.st, &out.Deployments[i], now)
	}
	slices.SortFunc(out.Deployments, func(a, b v1.Deployment) int { return strings.Compare(a.Name, b.Name) })
	return out, http.StatusOK, nil
}

func (s *api) getDeployment(name string) (v1.Deployment, *v1.Error) {
	d, rev, ok := s.st.Deployments.Get(name)
	if !ok {
		return d, &v1.Error{Code: v1.CodeNotFound, Message: "no deployment " + name}
	}
	d.Revision = rev
	d.Placement, _, _ = s.st.Placements.Get(name)
	withRolloutStatus(s.st, &d, time.Now())
	return d, nil
}

func (s *api) apiGetDeployment(w http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	d, e := s.getDeployment(r.PathValue("name"))
	if e != nil {
		return nil, 0, e
	}
	w.Header().Set("ETag", strconv.Quote(strconv.FormatUint(d.Revision, 10)))
	return d, http.StatusOK, nil
}

// precondition is what a PUT's If-Match / If-None-Match ask for.
type precondition struct {
	createOnly bool
	revision   uint64 // 0: any
}

func parsePrecondition(r *http.Request) (precondition, *v1.Error) {
	var p precondition
	if v := r.Header.Get("If-None-Match"); v != "" {
		if v != "*" {
			return p, &v1.Error{Code: v1.CodeBadRequest, Field: "If-None-Match", Message: `only "*" (create only) is supported`}
		}
		p.createOnly = true
	}
	if v := r.Header.Get("If-Match"); v != "" {
		n, err := strconv.ParseUint(strings.Trim(strings.TrimPrefix(v, "W/"), `"`), 10, 64)
		if err != nil || n == 0 {
			return p, &v1.Error{Code: v1.CodeBadRequest, Field: "If-Match", Message: fmt.Sprintf("%q: want the revision (ETag) read from GET", v)}
		}
		p.revision = n
	}
	if p.createOnly && p.revision != 0 {
		return p, &v1.Error{Code: v1.CodeBadRequest, Message: "give If-Match or If-None-Match, not both"}
	}
	return p, nil
}

func (s *api) apiPutDeployment(w http.ResponseWriter, r *http.Request, caller cred) (any, int, *v1.Error) {
	name := r.PathValue("name")
	if err := v1.ValidName("deployment", name); err != nil {
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "name", Message: err.Error()}
	}
	pre, e := parsePrecondition(r)
	if e != nil {
		return nil, 0, e
	}
	var spec v1.DeploymentSpec
	if e := decodeBody(r, &spec); e != nil {
		return nil, 0, e
	}
	message := r.URL.Query().Get("message")
	if len(message) > v1.MaxRevisionMessage {
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "message", Message: "too long: keep it under 1024 bytes"}
	}
	return s.deploy(w, r, name, pre, spec, caller, v1.Change{Cause: v1.CauseDeploy, Message: message})
}

// deploy admits spec as name's new spec (a PUT, or a rollback to an earlier
// revision's spec and digest) and writes it with change as its new revision.
func (s *api) deploy(w http.ResponseWriter, r *http.Request, name string, pre precondition, spec v1.DeploymentSpec, caller cred, change v1.Change) (any, int, *v1.Error) {
	ctx := r.Context()
	if e := spec.Validate(); e != nil {
		return nil, 0, e
	}
	if spec.Selector != "" {
		if _, err := compileSelector(spec.Selector); err != nil {
			return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "spec.selector", Message: err.Error()}
		}
	}
	strategy, e := rolloutStrategy(spec.Rollout)
	if e != nil {
		return nil, 0, e
	}
	img, e := s.resolver.resolveImage(ctx, spec.Image)
	if e != nil {
		return nil, 0, e
	}
	ver := img.ver
	// Admission: a policy in mode deny refuses it and nothing is written; warn and
	// audit only record (and warnings go back to the caller).
	warnings, e := s.policies.admit(ctx, name, img, strategy, caller)
	setWarningHeader(w, warnings)
	if e != nil {
		return nil, 0, e
	}
	// Place it now, on the fleet as it is plus what the deployments admitted before it
	// will take: a deployment that fits nowhere is refused with the reasons and nothing
	// is written. The write is conditional on the state the dry run saw (admission.go).
	now := time.Now().UTC()
	var d *v1.Deployment
	var rev uint64
	created, staged := false, false
	for attempt := 0; ; attempt++ {
		if attempt == maxAdmissionAttempts {
			return nil, 0, &v1.Error{Code: v1.CodeConflict, Message: fmt.Sprintf("%s: deployment %s lost its admission to another deploy %d times; retry", errAdmissionBusy, name, attempt)}
		}
		a, err := s.admission.dryRun(ctx, name, &spec, ver)
		var ve *v1.Error
		if errors.As(err, &ve) {
			return nil, 0, ve
		}
		if err != nil {
			return nil, 0, unavailable("admit deployment", err)
		}
		var pe *scheduler.PlacementError
		if !staged {
			staged = true
			placeWarnings := s.policies.stagePlacement(ctx, name, ver, a.nodes, errors.As(a.placeEr, &pe), caller)
			setWarningHeader(w, placeWarnings)
			warnings = append(warnings, placeWarnings...)
		}
		if a.placeEr != nil {
			if errors.As(a.placeEr, &pe) {
				return nil, 0, &v1.Error{Code: v1.CodeUnplaceable, Message: pe.Error()}
			}
			return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Message: a.placeEr.Error()}
		}
		change.Number, change.Who, change.Time = nextRevision(s.st, name, a.cur), who(caller), now
		d, err = nextDeployment(name, a.cur, a.rev, pre, spec, ver, now, change)
		if errors.Is(err, state.ErrConflict) {
			return nil, 0, &v1.Error{Code: v1.CodeConflict, Message: strings.TrimPrefix(err.Error(), state.ErrConflict.Error()+": ")}
		}
		if err != nil || d == nil {
			break
		}
		// Rollouts: a changed version of a running deployment goes out by its
		// strategy (rollout_split.go), and never while another rollout is live.
		if e := stageRollout(s.st, a.cur, d, strategy); e != nil {
			return nil, 0, e
		}
		created = a.cur == nil
		rev, err = s.admission.writeAdmitted(ctx, name, d, a)
		if err == nil {
			break
		}
		if !state.IsCASConflict(err) {
			return nil, 0, unavailable("write deployment", err)
		}
		state.CASConflicts.Inc()
	}
	// SLO hook (sloengine): the manifest's [[slo]] tables, owned by the deployment.
	warnings = append(warnings, s.applyOwnedSLOs(ctx, name, img, caller)...)
	if d == nil { // unchanged
		cd, e := s.getDeployment(name)
		if e != nil {
			return nil, 0, e
		}
		cd.Warnings = warnings
		w.Header().Set("ETag", strconv.Quote(strconv.FormatUint(cd.Revision, 10)))
		return cd, http.StatusOK, nil
	}
	s.st.Deployments.WaitRev(ctx, rev)
	// The revision after the record: a failure here leaves it for the revisions
	// controller to write from the record (revisions.go), so the deploy stands.
	if err := recordRevision(ctx, s.st, d); err != nil {
		s.logger.Warn("record revision: the revisions controller will retry", "deployment", name, "err", err)
	}
	d.Revision, d.Warnings = rev, warnings
	what := fmt.Sprintf("revision %d, generation %d", change.Number, d.Generation)
	if change.Cause == v1.CauseRollback {
		what = fmt.Sprintf("revision %d (rollback to revision %d), generation %d", change.Number, change.RollbackOf, d.Generation)
	}
	if d.Stable != nil {
		what += fmt.Sprintf(", rolled out %s from revision %d", strategy.Kind, d.Stable.Number)
	}
	s.event(ctx, v1.Event{Type: v1.EventDeployed, Deployment: name,
		Message: fmt.Sprintf("%s: %s %s (%s) on %s", what, ver.App, ver.Version, shortDigest(ver.Digest), describeSpec(&spec))})
	w.Header().Set("ETag", strconv.Quote(strconv.FormatUint(rev, 10)))
	if created {
		return d, http.StatusCreated, nil
	}
	return d, http.StatusOK, nil
}

func specEqual(a, b *v1.DeploymentSpec) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func describeSpec(s *v1.DeploymentSpec) string {
	var b strings.Builder
	if s.Daemon {
		b.WriteString("every matching node")
	} else {
		fmt.Fprintf(&b, "%d node(s)", s.Nodes)
	}
	if s.Selector != "" {
		fmt.Fprintf(&b, " where %s", s.Selector)
	}
	if s.Spread != "" {
		fmt.Fprintf(&b, ", spread across %s", s.Spread)
	}
	return b.String()
}

func (s *api) apiDeleteDeployment(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	name := r.PathValue("name")
	d, _, err := s.st.Deployments.Update(r.Context(), name, func(cur *v1.Deployment) (*v1.Deployment, error) {
		if cur == nil {
			return nil, errNotFound
		}
		if cur.Deleting {
			return nil, nil
		}
		next := *cur
		next.Deleting, next.Updated, next.Revision, next.Placement = true, time.Now().UTC(), 0, v1.Placement{}
		return &next, nil
	})
	if errors.Is(err, errNotFound) {
		return nil, 0, &v1.Error{Code: v1.CodeNotFound, Message: "no deployment " + name}
	}
	if err != nil {
		return nil, 0, unavailable("mark deployment deleting", err)
	}
	if d != nil {
		s.event(r.Context(), v1.Event{Type: v1.EventDeleted, Deployment: name, Message: fmt.Sprintf("deployment %s is being deleted: nodes drain it", name)})
		s.deleteOwnedSLOs(r.Context(), name) // SLO hook (sloengine)
	} else {
		cd, e := s.getDeployment(name)
		if e != nil {
			return nil, 0, e
		}
		d = &cd
	}
	return d, http.StatusAccepted, nil
}

var errNotFound = errors.New("not found")

func (s *api) apiDeploymentStatus(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	d, e := s.getDeployment(r.PathValue("name"))
	if e != nil {
		return nil, 0, e
	}
	return s.deploymentStatus(&d), http.StatusOK, nil
}

func (s *api) deploymentStatus(d *v1.Deployment) v1.DeploymentStatus {
	out := v1.DeploymentStatus{Deployment: *d, Nodes: []v1.NodeStatus{}}
	rows := map[string]*v1.NodeStatus{}
	row := func(node string) *v1.NodeStatus {
		if r, ok := rows[node]; ok {
			return r
		}
		r := &v1.NodeStatus{Node: node}
		if n, _, ok := s.st.Nodes.Get(node); ok {
			r.NodeState = n.State
		}
		rows[node] = r
		return r
	}
	for node, a := range s.placer.current(d.Name) {
		v := a.Version
		row(node).Desired = &v
	}
	suffix := "." + d.Name
	s.st.Statuses.Each(func(key string, st *v1.InstanceStatus, _ uint64) {
		if node, ok := strings.CutSuffix(key, suffix); ok && !strings.Contains(node, ".") {
			c := *st
			row(node).Actual = &c
		}
	})
	for _, r := range rows {
		if r.Actual != nil && (r.NodeState == v1.NodeLost || r.NodeState == "") {
			// The node's last report is stale: say so rather than show it as current.
			was := r.Actual.State
			r.Actual.State = v1.InstanceUnknown
			r.Actual.LastError = fmt.Sprintf("node lost: last report %s (%s)", r.Actual.Updated.UTC().Format(time.RFC3339), was)
			if r.NodeState == "" {
				r.Actual.LastError = fmt.Sprintf("node unknown to the control plane: last report %s (%s)", r.Actual.Updated.UTC().Format(time.RFC3339), was)
			}
		}
	}
	converged := d.Placement.ObservedGeneration == d.Generation && d.Placement.Message == "" && !d.Deleting
	for _, r := range rows {
		if r.Desired != nil {
			out.Desired++
			if r.NodeState != v1.NodeReady && r.NodeState != v1.NodeDraining {
				converged = false
			}
			if r.Actual != nil && r.Actual.State == v1.InstanceReady && r.Actual.Digest == d.Version.Digest && r.Desired.Digest == d.Version.Digest {
				out.Ready++
			} else {
				converged = false
			}
		} else if r.Actual != nil && r.NodeState != v1.NodeLost {
			converged = false // still running where it should not
		}
		out.Nodes = append(out.Nodes, *r)
	}
	out.Converged = converged && out.Desired == len(d.Placement.Nodes)
	slices.SortFunc(out.Nodes, func(a, b v1.NodeStatus) int { return strings.Compare(a.Node, b.Node) })
	return out
}
