package v1

import "time"

// --- Rollouts (issue 15) ---
//
// These types are the API contract of progressive delivery: a deployment's strategy
// (DeploymentSpec.Rollout), the state of its rollout (GET /v1/deployments/{name}/rollout)
// and the operator's actions on it (POST /v1/deployments/{name}/rollout/{action}). The
// logic lives in internal/rollout; the control plane converts between the two.

// Rollout strategy kinds (RolloutStrategy.Kind).
const (
	RolloutAllAtOnce = "all-at-once"
	RolloutRolling   = "rolling"
	RolloutCanary    = "canary"
)

// Rollout actions: POST /v1/deployments/{name}/rollout/{action}.
const (
	RolloutPromote = "promote" // pass the current gate (a manual gate, or skip the analysis wait)
	RolloutAbort   = "abort"   // stop and put the stable revision back on every node
	RolloutPause   = "pause"
	RolloutResume  = "resume"
)

// RolloutStrategy is how a change of a deployment reaches its nodes. Nil or an empty
// Kind is all at once (every node switches together).
type RolloutStrategy struct {
	Kind string `json:"kind,omitempty"`
	// Steps are a canary's steps in the CLI's grammar ("1node", "10%", "25%nodes",
	// "1node@region=eu", "manual", "pause"); see docs/rollouts.md.
	Steps []string `json:"steps,omitempty"`
	// Interval is each step's analysis window or pause, as a Go duration ("1m").
	Interval string `json:"interval,omitempty"`
	// MaxExtensions is how many times an inconclusive analysis extends its step
	// (0: the default, -1: none).
	MaxExtensions int `json:"maxExtensions,omitempty"`
	// MaxUnavailable and MaxSurge bound a rolling update: a count ("1") or a share
	// ("25%") of the eligible nodes.
	MaxUnavailable string `json:"maxUnavailable,omitempty"`
	MaxSurge       string `json:"maxSurge,omitempty"`
	// Sticky keeps a client on one side of a weight split: "header:NAME" or
	// "cookie:NAME".
	Sticky string `json:"sticky,omitempty"`
	// Analysis are the checks a canary step must pass; nil takes the defaults.
	Analysis *RolloutAnalysis `json:"analysis,omitempty"`
}

// RolloutAnalysis declares a canary's checks, in the manifest's units: ratios and
// increases in percent (1.0 is 1 %), latency ratios as factors of stable's.
// A zero field turns its check off.
type RolloutAnalysis struct {
	MaxErrorRatio        float64 `json:"maxErrorRatio,omitempty"`
	MaxErrorIncrease     float64 `json:"maxErrorIncrease,omitempty"`
	MaxP95Ratio          float64 `json:"maxP95Ratio,omitempty"`
	MaxP99Ratio          float64 `json:"maxP99Ratio,omitempty"`
	MaxColdStartIncrease float64 `json:"maxColdStartIncrease,omitempty"`
	MaxTrapIncrease      float64 `json:"maxTrapIncrease,omitempty"`
	MinRequests          uint64  `json:"minRequests,omitempty"`
	Alpha                float64 `json:"alpha,omitempty"`
}

// RolloutRevision names one side of a rollout.
type RolloutRevision struct {
	Number  int64  `json:"number"`
	Version string `json:"version"`
	Digest  string `json:"digest,omitempty"`
}

// RolloutCheck is one check's verdict with the numbers behind it.
type RolloutCheck struct {
	Check     string  `json:"check"`
	Result    string  `json:"result"` // pass, fail, inconclusive
	Canary    float64 `json:"canary"`
	Stable    float64 `json:"stable"`
	Threshold float64 `json:"threshold"`
	P         float64 `json:"p"` // the test's one-sided p-value, -1 when none applies
	NCanary   uint64  `json:"nCanary"`
	NStable   uint64  `json:"nStable"`
	Reason    string  `json:"reason,omitempty"`
}

// RolloutVerdict is one analysis of one step.
type RolloutVerdict struct {
	Step   int            `json:"step"`
	At     time.Time      `json:"at"`
	Result string         `json:"result"` // pass, fail, inconclusive
	Checks []RolloutCheck `json:"checks"`
}

// Rollout is the state of a deployment's latest rollout:
// GET /v1/deployments/{name}/rollout (404 when the deployment never had one).
type Rollout struct {
	Deployment string          `json:"deployment"`
	From       RolloutRevision `json:"from"`
	To         RolloutRevision `json:"to"`
	Strategy   RolloutStrategy `json:"strategy"`
	// Steps are the resolved steps, as text ("1node", "10%", "batch 2: 3 nodes").
	Steps []string `json:"steps"`
	Step  int      `json:"step"` // index into Steps
	// Phase: progressing, analysing, paused, promoting, succeeded, rolled_back,
	// aborted, failed.
	Phase       string           `json:"phase"`
	Terminal    bool             `json:"terminal"`
	Weight      int              `json:"weight,omitempty"` // the canary's traffic weight now
	CanaryNodes []string         `json:"canaryNodes,omitempty"`
	WindowStart time.Time        `json:"windowStart,omitzero"`
	WindowEnd   time.Time        `json:"windowEnd,omitzero"`
	Verdicts    []RolloutVerdict `json:"verdicts,omitempty"`
	Reason      string           `json:"reason,omitempty"`
	Started     time.Time        `json:"started"`
	Updated     time.Time        `json:"updated"`
	// Revision is the record's KV revision (for If-Match on actions). Filled on reads.
	Revision uint64 `json:"revision,omitempty"`
}

// RolloutActionRequest is the body of POST /v1/deployments/{name}/rollout/{action}.
type RolloutActionRequest struct {
	Reason string `json:"reason,omitempty"`
}

// StableRevision is the revision a rolled-out change started from: what the nodes
// keep running until the rollout moves them (Deployment.Stable).
type StableRevision struct {
	Number  int64   `json:"number"`
	Version Version `json:"version"`
}

// IsAllAtOnce reports whether s switches every node together (nil, empty or
// all-at-once): a change with such a strategy starts no rollout.
func (s *RolloutStrategy) IsAllAtOnce() bool {
	return s == nil || s.Kind == "" || s.Kind == RolloutAllAtOnce
}
