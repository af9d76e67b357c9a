package state

import (
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/rollout"
)

// Rollout is a deployment's latest rollout, the record of the fermion_rollouts
// bucket (key: the deployment's name). The rollout controller writes it (fenced,
// compare-and-swap) after every step of the state machine and before it carries out
// the step's actions; the actions API writes operators' pause, resume, promote and
// abort (compare-and-swap). The deployment controller renders the nodes' assignments
// from it, so what the record says is what the fleet converges to.
type Rollout struct {
	Deployment string `json:"deployment"`
	// Change is the deployment's change (revision number) being rolled out: the
	// record governs the deployment only while its Change is this one.
	Change int64      `json:"change"`
	From   v1.Version `json:"from"`
	To     v1.Version `json:"to"`
	// FromNumber is From's revision number.
	FromNumber int64              `json:"fromNumber"`
	Strategy   v1.RolloutStrategy `json:"strategy"`
	State      rollout.State      `json:"state"`
	Started    time.Time          `json:"started"`
	// StepStarted is when the current step's actions went out: a node's failure
	// reported before it belongs to an earlier attempt.
	StepStarted time.Time `json:"stepStarted"`
	// Counted is set once the outcome was counted in fermion_rollouts_total and the
	// deployment record returned to From when the rollout did not succeed.
	Counted bool `json:"counted,omitempty"`
}
