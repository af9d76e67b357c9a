package v1

import (
	"fmt"
	"strings"
	"time"
)

// --- A deployment's rollout in one line (status polish) ---

// RolloutSummary is the part of a deployment's rollout that status views show:
// Deployment.RolloutStatus. The control plane fills it on reads (GET /v1/deployments,
// …/{name}, …/{name}/status) while the rollout governs the deployment, and for a short
// while after it ended (ten minutes) so that a rollback or a promotion does not go
// unnoticed; it is never stored. GET /v1/deployments/{name}/rollout has the whole
// record: verdicts, windows, canary nodes.
type RolloutSummary struct {
	Kind  string `json:"kind"`  // canary or rolling
	Phase string `json:"phase"` // as Rollout.Phase
	// Terminal: the rollout has ended (succeeded, rolled_back, aborted, failed) and
	// Updated is when.
	Terminal bool `json:"terminal"`
	// Step is an index into the rollout's steps (0 is the first), Steps how many
	// there are, StepText the current one as Rollout.Steps writes it ("10%",
	// "1node, manual", "batch 2: 3 nodes").
	Step     int    `json:"step"`
	Steps    int    `json:"steps"`
	StepText string `json:"stepText,omitempty"`
	// Gated: paused at a manual gate, which `fermion rollout promote` passes.
	Gated  bool            `json:"gated,omitempty"`
	Weight int             `json:"weight,omitempty"` // the canary's traffic weight now
	From   RolloutRevision `json:"from"`
	To     RolloutRevision `json:"to"`
	Reason string          `json:"reason,omitempty"`
	// Updated is the rollout's last change: when it ended, once Terminal.
	Updated time.Time `json:"updated"`
}

// Describe says where the rollout stands in one line, as `fermion status` prints it:
//
//	rolling out: step 2/4 (10%) canary 2.0.0
//	rolling out: step 1/2 (1node, manual) canary 2.0.0, paused at a manual gate
//	rolling out: promoting 2.0.0 to every node
//	rolled out: 2.0.0 on every node
//	rolled back at step 1/4 (10%) to 1.0.0: step 1 failed analysis: …
//
// Two revisions of one app version are told apart by their revision numbers. It leaves out when an ended rollout ended: the caller knows its clock.
func (r *RolloutSummary) Describe() string {
	step := fmt.Sprintf("at step %d/%d", r.Step+1, r.Steps)
	if r.StepText != "" {
		step += " (" + r.StepText + ")"
	}
	if r.Step >= r.Steps { // past the last step: the promotion to every node
		step = "while promoting"
	}
	to, from := r.To.name(), r.From.name()
	if r.To.Version != "" && r.To.Version == r.From.Version { // two builds of one app version: say which
		to += fmt.Sprintf(" (revision %d)", r.To.Number)
		from += fmt.Sprintf(" (revision %d)", r.From.Number)
	}
	var b strings.Builder
	switch r.Phase {
	case "promoting":
		fmt.Fprintf(&b, "rolling out: promoting %s to every node", to)
	case "succeeded":
		fmt.Fprintf(&b, "rolled out: %s on every node", to)
	case "rolled_back":
		fmt.Fprintf(&b, "rolled back %s to %s", step, from)
	case "aborted", "failed":
		fmt.Fprintf(&b, "rollout %s %s, back to %s", r.Phase, step, from)
	default:
		kind := r.Kind
		if kind == "" {
			kind = "rollout"
		}
		fmt.Fprintf(&b, "rolling out: %s %s %s", strings.TrimPrefix(step, "at "), kind, to)
		switch {
		case r.Gated:
			b.WriteString(", paused at a manual gate")
		case r.Phase == "paused":
			b.WriteString(", paused")
		}
	}
	if r.Terminal && r.Phase != "succeeded" && r.Reason != "" {
		b.WriteString(": " + r.Reason)
	}
	return b.String()
}

// name is the revision's app version, or its number when it has none.
func (r RolloutRevision) name() string {
	if r.Version != "" {
		return r.Version
	}
	return fmt.Sprintf("revision %d", r.Number)
}
