package agent

import (
	"errors"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

// The warmup hook on a node. The sandbox runs it on every new instance and discards
// those that fail it; the agent turns a version whose instances keep failing into a
// status the control plane acts on:
//
//   - at load, the instances Load prewarms (at least one with a hook) must pass it, or
//     the version fails to start: a LoadError with reason warmup, so the node reports
//     the version (or its canary) as failed with LastError "warmup: …", and the rollout
//     controller fails the step;
//   - later (its cache backend went away), sandbox.WarmupFailLimit failures in a row
//     make the reconciler report the running version, or canary, failed with the same
//     prefix, while it keeps serving from the instances it has; one success makes it
//     ready again. The reconciler looks every warmupCheck while a version has a hook.

// warmupCheck is how often the reconciler looks at the warmup state of running versions
// that have a hook.
const warmupCheck = 5 * time.Second

// moduleLoadReason is the load failure reason of an error from sandbox Load.
func moduleLoadReason(err error) string {
	var we *sandbox.WarmupError
	if errors.As(err, &we) {
		return telemetry.LoadWarmup
	}
	return telemetry.LoadModule
}

// servingState is the status of a version that runs: ready, or failed with the reason
// when its new instances keep failing their warmup hook.
func servingState(fn *sandbox.Function) (state, lastErr string) {
	if fn != nil {
		if we := fn.WarmupFailing(); we != nil {
			return v1.InstanceFailed, telemetry.LoadWarmup + ": " + fn.Name() + "@" + fn.Version() + ": new instances keep failing: " + we.Error()
		}
	}
	return v1.InstanceReady, ""
}

// warmupCheckAt is when the reconciler should look at d's versions' warmup state again:
// zero when neither has a hook.
func warmupCheckAt(d *deployment, now time.Time) time.Time {
	for _, fn := range []*sandbox.Function{d.running, d.canary.fn} {
		if fn != nil && fn.Spec().Warmup != "" {
			return now.Add(warmupCheck)
		}
	}
	return time.Time{}
}
