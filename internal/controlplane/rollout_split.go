package controlplane

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/controlplane/state"
	"fermion.dev/fermion/internal/policy"
	"fermion.dev/fermion/internal/rollout"
)

// rolloutSplit is how a deployment's current change is spread over its nodes now,
// as its rollout record says: the deployment controller renders every assignment
// from it, so the rollout's node actions are desired states that any leader
// reapplies by reading the record.
type rolloutSplit struct {
	to, stable v1.Version
	toAll      bool            // the change everywhere: no rollout, or it is promoting or succeeded
	toNodes    map[string]bool // a node step: the change on these, stable elsewhere
	canary     *v1.Canary      // a weight step: stable with this canary on every node
}

// splitOf reads d's split from its rollout record.
func splitOf(st *state.Store, d *v1.Deployment) rolloutSplit {
	sp := rolloutSplit{to: d.Version, toAll: true}
	if d.Stable == nil || d.Change == nil {
		return sp
	}
	sp.stable, sp.toAll = d.Stable.Version, false
	ro, _, ok := st.Rollouts.Get(d.Name)
	if !ok || ro.Change != d.Change.Number {
		return sp // not started yet: the nodes keep the stable revision
	}
	switch ph := ro.State.Phase; {
	case ph == rollout.Succeeded || ph == rollout.Promoting:
		sp.toAll = true
	case ph.Terminal(): // rolled back, aborted, failed: stable everywhere
	case ro.State.Weight > 0:
		sp.canary = &v1.Canary{Version: d.Version, Weight: ro.State.Weight, Sticky: ro.State.Spec.Sticky}
	default:
		sp.toNodes = map[string]bool{}
		for _, n := range ro.State.CanaryNodes {
			sp.toNodes[n] = true
		}
	}
	return sp
}

// versionOn is the version node runs as its assignment's Version.
func (sp rolloutSplit) versionOn(node string) v1.Version {
	if sp.toAll || sp.toNodes[node] {
		return sp.to
	}
	return sp.stable
}

// assignment is d's assignment on node under the split.
func (sp rolloutSplit) assignment(d *v1.Deployment, node string, r v1.Resources) v1.Assignment {
	a := v1.Assignment{Deployment: d.Name, Node: node, Generation: d.Generation, Version: sp.versionOn(node), Reserved: r}
	if !sp.toAll && !sp.toNodes[node] && sp.canary != nil {
		c := *sp.canary
		a.Canary = &c
	}
	return a
}

// sameAssignment reports whether two assignments ask the node for the same thing.
func sameAssignment(a, b v1.Assignment) bool {
	a.Keep, b.Keep = nil, nil
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// stageRollout decides, for a deploy that changes cur into next, whether the change
// is rolled out by its strategy: it then records the stable revision in next.Stable
// (and the strategy in its change), so the nodes keep it until the rollout
// controller moves them. A change while a rollout of the deployment is live is
// refused with a conflict naming it: one rollout at a time, abort it first.
func stageRollout(st *state.Store, cur, next *v1.Deployment, spec rollout.Spec) *v1.Error {
	next.Stable = nil
	if cur == nil {
		return nil
	}
	running, number := cur.Version, int64(0)
	if cur.Change != nil {
		number = cur.Change.Number
	}
	if cur.Stable != nil && cur.Change != nil {
		ro, _, ok := st.Rollouts.Get(cur.Name)
		switch {
		case !ok || ro.Change != cur.Change.Number || !ro.State.Phase.Terminal():
			what := "starting"
			if ok && ro.Change == cur.Change.Number {
				what = fmt.Sprintf("%s at step %d of %d", ro.State.Phase, ro.State.Step+1, len(ro.State.Plan))
			}
			return &v1.Error{Code: v1.CodeConflict, Message: fmt.Sprintf(
				"deployment %s has a rollout in progress (revision %d → %d, %s): wait until it ends (fermion rollout status %s), or stop it with fermion rollout abort %s, then deploy again",
				cur.Name, cur.Stable.Number, cur.Change.Number, what, cur.Name, cur.Name)}
		case ro.State.Phase != rollout.Succeeded:
			// Ended without success, not yet written back: the nodes run stable.
			running, number = cur.Stable.Version, cur.Stable.Number
		}
	}
	if spec.Kind == rollout.AllAtOnce || running.Digest == next.Version.Digest {
		return nil
	}
	bad := func(format string, args ...any) *v1.Error {
		return &v1.Error{Code: v1.CodeBadRequest, Field: "spec.rollout", Message: fmt.Sprintf(format, args...)}
	}
	if spec.HasAnalysis() && running.Version == next.Version.Version {
		return bad("canary analysis tells the two revisions apart by their app version, and both are %q (%s and %s): raise version in [app] of fermion.toml and build again, or use a strategy without analysis (manual or pause gates)",
			running.Version, shortDigest(running.Digest), shortDigest(next.Version.Digest))
	}
	if spec.HasWeights() {
		if running.App != next.Version.App {
			return bad("a traffic weight runs both revisions side by side, but the running one is app %q and the new one app %q: use node steps, or deploy all at once", running.App, next.Version.App)
		}
		a, b := slices.Clone(running.Routes), slices.Clone(next.Version.Routes)
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(a, b) {
			return bad("a traffic weight splits each route between both revisions, but the running one serves [%s] and the new one [%s]: use node steps (1node, 50%%nodes), or deploy all at once",
				strings.Join(a, " "), strings.Join(b, " "))
		}
	}
	next.Stable = &v1.StableRevision{Number: number, Version: running}
	if next.Change != nil {
		c := *next.Change
		c.Rollout, _ = json.Marshal(spec)
		next.Change = &c
	}
	return nil
}

// rolloutStrategy validates a deploy's strategy through the one converter, with the
// field at fault.
func rolloutStrategy(w *v1.RolloutStrategy) (rollout.Spec, *v1.Error) {
	spec, err := rollout.FromAPI(w)
	if err != nil {
		field := "spec.rollout"
		var fe *rollout.FieldError
		if errors.As(err, &fe) && fe.Field != "" {
			field += "." + fe.Field
		}
		msg := err.Error()
		if fe != nil {
			msg = fe.Message
		}
		return rollout.Spec{}, &v1.Error{Code: v1.CodeBadRequest, Field: field, Message: "rollout strategy: " + msg}
	}
	return spec, nil
}

// policyStrategy is the strategy as admission policies see it
// (deployment.strategy).
func policyStrategy(s rollout.Spec) policy.Strategy {
	w := rollout.ToAPI(s)
	out := policy.Strategy{Kind: w.Kind, Steps: w.Steps, IntervalSeconds: int64(s.Interval.Seconds()), Analysis: s.HasAnalysis(), Sticky: s.Sticky}
	if out.Steps == nil {
		out.Steps = []string{}
	}
	return out
}
