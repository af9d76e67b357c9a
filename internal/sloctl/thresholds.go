package sloctl

import (
	"slices"
	"time"

	"fermion.dev/fermion/internal/slo"
)

// LatencyThresholds lists the thresholds of the stored latency SLOs, sorted, each
// once: the fleet SLI store keeps, per node past its detail tier, the requests above
// each of them (internal/fleet, fleet.Config.Thresholds).
func (c *Controller) LatencyThresholds() []time.Duration {
	var out []time.Duration
	for _, sp := range c.specs.specs(c.cfg.Logger.Error) {
		if sp.SLI.Kind == slo.Latency && !slices.Contains(out, sp.SLI.Threshold) {
			out = append(out, sp.SLI.Threshold)
		}
	}
	slices.Sort(out)
	return out
}
