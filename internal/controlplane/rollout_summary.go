package controlplane

import (
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/controlplane/state"
	"fermion.dev/fermion/internal/rollout"
)

// rolloutOutcomeShown is how long status views keep showing a rollout's outcome after
// it ended: long enough that whoever deployed, or looks in next, sees a rollback the
// controller did by itself; short enough that a day-old outcome does not read as news.
// `fermion rollout status` and `fermion history` keep it for good.
const rolloutOutcomeShown = 10 * time.Minute

// rolloutSummary is d's rollout as status views show it (Deployment.RolloutStatus), or
// nil: a live rollout of d's current change, or one that ended less than
// rolloutOutcomeShown before now and whose outcome is still what d runs — its change
// (succeeded), or the controller's return to its stable revision. A later deploy hides
// it, as does deleting d.
func rolloutSummary(d *v1.Deployment, ro state.Rollout, now time.Time) *v1.RolloutSummary {
	s := ro.State
	if d.Deleting || d.Change == nil {
		return nil
	}
	if !s.Phase.Terminal() {
		if d.Stable == nil || ro.Change != d.Change.Number {
			return nil // a record left behind by a change that no longer governs d
		}
	} else {
		if now.Sub(s.Updated) > rolloutOutcomeShown {
			return nil
		}
		returned := d.Change.Cause == v1.CauseRollback && d.Change.RollbackOf == ro.FromNumber && !d.Change.Time.Before(ro.Started)
		if ro.Change != d.Change.Number && !returned {
			return nil // deployed again since
		}
	}
	out := &v1.RolloutSummary{
		Kind:     string(s.Spec.Kind),
		Phase:    string(s.Phase),
		Terminal: s.Phase.Terminal(),
		Step:     s.Step,
		Steps:    len(s.Plan),
		Gated:    s.Phase == rollout.Paused && s.Gated,
		Weight:   s.Weight,
		From:     v1.RolloutRevision{Number: ro.FromNumber, Version: ro.From.Version, Digest: ro.From.Digest},
		To:       v1.RolloutRevision{Number: ro.Change, Version: ro.To.Version, Digest: ro.To.Digest},
		Reason:   s.Reason,
		Updated:  s.Updated,
	}
	if s.Step < len(s.Plan) {
		out.StepText = stepText(s.Spec.Kind, s.Step, s.Plan[s.Step])
	}
	return out
}

// withRolloutStatus fills d.RolloutStatus from the rollouts table.
func withRolloutStatus(st *state.Store, d *v1.Deployment, now time.Time) {
	if ro, _, ok := st.Rollouts.Get(d.Name); ok {
		d.RolloutStatus = rolloutSummary(d, ro, now)
	}
}
