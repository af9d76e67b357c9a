package controlplane

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/controlplane/state"
	"fermion.dev/fermion/internal/rollout"
)

// The rollout handlers (issue 15): a deployment's latest rollout, and the
// operator's actions on it. Actions are events of the state machine applied here,
// on any replica, by a compare-and-swap of the record: the leader's controller, which
// writes the same record conditionally too, then carries on from the new state (an
// abort's return to the stable revision, its count) on its next pass, which the
// write wakes.

// rolloutAPI serves /v1/deployments/{name}/rollout.
type rolloutAPI struct {
	st  *state.Store
	ctl *rolloutController // its event and expected-alert actions; never its fenced writes
}

func (a *rolloutAPI) routes(route routeFunc) {
	route("GET /v1/deployments/{name}/rollout", v1.RoleViewer, a.get)
	route("POST /v1/deployments/{name}/rollout/{action}", v1.RoleDeployer, a.act)
}

func (a *rolloutAPI) get(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	name := r.PathValue("name")
	ro, rev, ok := a.st.Rollouts.Get(name)
	if !ok {
		return nil, 0, noRollout(a.st, name)
	}
	return rolloutView(ro, rev), http.StatusOK, nil
}

func noRollout(st *state.Store, name string) *v1.Error {
	if _, _, ok := st.Deployments.Get(name); !ok {
		return &v1.Error{Code: v1.CodeNotFound, Message: "no deployment " + name}
	}
	return &v1.Error{Code: v1.CodeNotFound, Message: fmt.Sprintf("deployment %s has had no rollout: deploy a new version with a strategy (fermion deploy --strategy canary --steps 10%%,50%%,100%%) to start one", name)}
}

var rolloutActions = map[string]rollout.EventKind{
	v1.RolloutPromote: rollout.EventPromote,
	v1.RolloutAbort:   rollout.EventAbort,
	v1.RolloutPause:   rollout.EventPause,
	v1.RolloutResume:  rollout.EventResume,
}

// errActionConflict is an action the rollout's state refuses.
type errActionConflict struct{ msg string }

func (e *errActionConflict) Error() string { return e.msg }

func (a *rolloutAPI) act(_ http.ResponseWriter, r *http.Request, caller cred) (any, int, *v1.Error) {
	name, action := r.PathValue("name"), r.PathValue("action")
	kind, ok := rolloutActions[action]
	if !ok {
		return nil, 0, &v1.Error{Code: v1.CodeNotFound, Field: "action", Message: fmt.Sprintf("%q is not a rollout action; use promote, abort, pause or resume", action)}
	}
	var req v1.RolloutActionRequest
	if r.ContentLength != 0 {
		if e := decodeBody(r, &req); e != nil {
			return nil, 0, e
		}
	}
	if len(req.Reason) > v1.MaxRevisionMessage {
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "reason", Message: "too long: keep it under 1024 bytes"}
	}
	by := "token " + caller.ID
	if req.Reason != "" {
		by += " (" + req.Reason + ")"
	}
	d, _, ok := a.st.Deployments.Get(name)
	if !ok {
		return nil, 0, &v1.Error{Code: v1.CodeNotFound, Message: "no deployment " + name}
	}
	nodes := a.ctl.nodesOf(&d)
	now := time.Now().UTC()
	var acts []rollout.Action
	next, rev, err := a.st.Rollouts.Update(r.Context(), name, func(cur *state.Rollout) (*state.Rollout, error) {
		acts = nil
		if cur == nil {
			return nil, errNotFound
		}
		if cur.State.Phase.Terminal() {
			return nil, &errActionConflict{fmt.Sprintf("the rollout of %s to revision %d has ended (%s): there is nothing to %s", name, cur.Change, cur.State.Phase, action)}
		}
		s, as := rollout.Step(cur.State, rollout.Event{Kind: kind, Step: cur.State.Step, By: by}, nodes, now)
		if len(as) == 0 && sameJSON(s, cur.State) {
			return nil, &errActionConflict{actionRefused(action, cur.State)}
		}
		n := *cur
		if s.Step != cur.State.Step || s.Phase != cur.State.Phase && (s.Phase == rollout.Progressing || s.Phase == rollout.Promoting) {
			n.StepStarted = now
		}
		n.State, acts = s, as
		return &n, nil
	})
	var ce *errActionConflict
	switch {
	case errors.Is(err, errNotFound):
		return nil, 0, noRollout(a.st, name)
	case errors.As(err, &ce):
		return nil, 0, &v1.Error{Code: v1.CodeConflict, Message: ce.msg}
	case err != nil:
		return nil, 0, unavailable("write rollout", err)
	}
	a.st.Rollouts.WaitRev(r.Context(), rev)
	a.ctl.carryOut(r.Context(), name, *next, acts, now)
	return rolloutView(*next, rev), http.StatusOK, nil
}

// actionRefused says why an action changed nothing.
func actionRefused(action string, s rollout.State) string {
	switch action {
	case v1.RolloutPause:
		return fmt.Sprintf("the rollout is %s: it cannot be paused now", s.Phase)
	case v1.RolloutResume:
		if s.Gated {
			return "the rollout waits at a manual gate: promote it (fermion rollout promote) rather than resume"
		}
		return fmt.Sprintf("the rollout is %s, not paused: there is nothing to resume", s.Phase)
	case v1.RolloutPromote:
		if s.Phase == rollout.Paused {
			return "the rollout is paused: resume it first (fermion rollout resume)"
		}
		return fmt.Sprintf("the rollout is %s: there is no gate to pass", s.Phase)
	}
	return fmt.Sprintf("%s does not apply to a rollout that is %s", action, s.Phase)
}

// rolloutView is the API's form of a record.
func rolloutView(ro state.Rollout, rev uint64) v1.Rollout {
	s := ro.State
	out := v1.Rollout{
		Deployment: ro.Deployment,
		From:       v1.RolloutRevision{Number: ro.FromNumber, Version: ro.From.Version, Digest: ro.From.Digest},
		To:         v1.RolloutRevision{Number: ro.Change, Version: ro.To.Version, Digest: ro.To.Digest},
		Strategy:   rollout.ToAPI(s.Spec),
		Steps:      []string{},
		Step:       s.Step,
		Phase:      string(s.Phase),
		Terminal:   s.Phase.Terminal(),
		Weight:     s.Weight,
		Reason:     s.Reason,
		Started:    ro.Started,
		Updated:    s.Updated,
		Revision:   rev,
	}
	if !s.Phase.Terminal() && s.Phase != rollout.Progressing {
		out.WindowStart, out.WindowEnd = s.WindowStart, s.WindowEnd
	}
	if s.Weight == 0 && s.Phase != rollout.Succeeded && s.Phase != rollout.Promoting && !s.Phase.Terminal() {
		out.CanaryNodes = slices.Clone(s.CanaryNodes)
	}
	for i, st := range s.Plan {
		out.Steps = append(out.Steps, stepText(s.Spec.Kind, i, st))
	}
	for _, v := range s.Verdicts {
		rv := v1.RolloutVerdict{Step: v.Step, At: v.At, Result: string(v.Analysis.Result), Checks: []v1.RolloutCheck{}}
		for _, c := range v.Analysis.Checks {
			rv.Checks = append(rv.Checks, v1.RolloutCheck{Check: c.Check, Result: string(c.Result), Canary: c.Canary, Stable: c.Stable,
				Threshold: c.Threshold, P: c.P, NCanary: c.NCanary, NStable: c.NStable, Reason: c.Reason})
		}
		out.Verdicts = append(out.Verdicts, rv)
	}
	return out
}

// stepText is a resolved step as status shows it.
func stepText(kind rollout.Kind, i int, st rollout.Stage) string {
	if kind == rollout.Rolling {
		return fmt.Sprintf("batch %d: %s", i+1, v1.Count(st.Nodes.Count, "node"))
	}
	if kind == rollout.AllAtOnce {
		return "every node"
	}
	t := st.String()
	switch st.Gate {
	case rollout.GateManual:
		t += ", manual"
	case rollout.GatePause:
		t += ", pause"
	}
	return strings.TrimSpace(t)
}
