// Package rollout is progressive delivery's pure logic: strategies (all at once,
// rolling batches, canary steps over node subsets or traffic weights), the state
// machine a rollout controller drives, and the analysis that judges a canary against
// stable on their SLIs. No clocks, no I/O, no goroutines: time comes in as an
// argument and decisions go out as data.
//
// The controller (the leader's rollout controller in the control plane) owns the
// loop:
//
//	s, acts := rollout.Start(app, from, to, spec, nodes, now)    // store s, then do acts
//	// every tick:
//	s, acts = rollout.Step(s, rollout.Event{Kind: rollout.EventReady, Step: s.Step}, nodes, now)  // when the step's nodes serve To
//	if from, to, due := s.AnalysisDue(now); due {
//		stable, canary, err := metrics.Samples(ctx, app, s.From.Version, s.To.Version, from, to)
//		s, acts = rollout.Step(s, rollout.Event{Kind: rollout.EventObserved, Step: s.Step, Stable: stable, Canary: canary}, nodes, now)
//	}
//	// after a failover: do rollout.Reapply(s), then carry on.
//
// It stores the State (compare-and-swap, fenced by the leader lease) before carrying
// out the Actions. Actions are desired states ("To on these nodes", "10 % to To",
// "From everywhere"), so repeating them is harmless, and events name their step so a
// stale or repeated one changes nothing: a new leader cannot promote twice or lose a
// rollback.
//
// Analysis ([Analyse]) is Kayenta's idea on Fermion's SLIs: each declared check
// compares canary with stable over the step's window and is pass, fail or
// inconclusive. A check that is over its threshold fails only when a test says the
// excess is significant at [Checks.Alpha] — a one-proportion z-test for an absolute
// error ratio, a two-proportion z-test for "no more than stable + margin" (errors,
// cold starts, traps), a Mann–Whitney U test over the two latency sketches' buckets
// with a binomial test of the quantile itself for p95 and p99 ratios — and is
// inconclusive otherwise, or when either side has
// fewer than MinRequests requests. Inconclusive extends the step, up to
// MaxExtensions, then rolls back. docs/rollouts.md explains the statistics.
package rollout
