package controlplane

// The rollout controller (issue 15): the adapter between internal/rollout's state
// machine and the fleet. It owns the fermion_rollouts bucket: one record per
// deployment, its latest rollout (state.Rollout).
//
// The loop is the one the rollout package describes. A deploy (or rollback) that
// changes the version of a running deployment with a strategy other than all at once
// records where it came from (v1.Deployment.Stable) instead of switching every node.
// The controller then, each pass, for each such deployment:
//
//  1. starts its rollout (rollout.Start) when the record is for another change;
//  2. feeds the machine what the nodes report: EventStepFailed when a node in the
//     step reports the new version failed, EventReady while they all serve it, a tick,
//     and EventObserved with the fleet's SLI samples when an analysis window closed;
//  3. writes the new state (fenced, compare-and-swap on the record it read) and only
//     then carries out the actions: events, expected-alert marks. Node actions
//     (set_nodes, set_weight, promote, roll_back) need no work here: the deployment
//     controller renders every assignment from the record (rolloutSplit), so they are
//     desired states by construction and a new leader repeats them by reading it.
//  4. when the rollout ended other than succeeded, returns the deployment record to
//     the stable revision (a new revision, cause rollback) and counts the outcome.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/controlplane/state"
	"fermion.dev/fermion/internal/fleet"
	"fermion.dev/fermion/internal/rollout"
)

// rolloutOutcomes are the values of fermion_rollouts_total's outcome label.
var rolloutOutcomes = []string{string(rollout.Succeeded), string(rollout.RolledBack), string(rollout.Aborted), string(rollout.Failed)}

// rolloutController drives every deployment's rollout; it runs after the lifecycle
// controller and before the deployment controller, which renders what it decided.
type rolloutController struct {
	logger   *slog.Logger
	st       *state.Store
	lead     *state.Fence
	event    func(context.Context, v1.Event)
	outcomes *prometheus.CounterVec
	// source is where analysis reads samples (resolved per use: the fleet store is
	// started after the controllers are built), and whether it names an app by the
	// manifest's app name (metric labels) rather than by the deployment.
	source func() (rollout.Metrics, bool)
	// expect marks a version's SLO alerts expected until a time (zero: unmark).
	expect func(ctx context.Context, app, version string, until time.Time) error

	mu        sync.Mutex
	reapplied map[string]uint64 // deployment → the term in which this replica reapplied its rollout
}

func (c *rolloutController) Name() string { return "rollouts" }

// errStaleRollout is a record that changed between the read and the write: the next
// pass decides again on what is there.
var errStaleRollout = errors.New("rollout record changed")

func (c *rolloutController) Reconcile(ctx context.Context, pass Pass) error {
	var errs []error
	for _, name := range c.st.Deployments.Keys() {
		if !pass.Acting() || ctx.Err() != nil {
			break
		}
		d, rev, ok := c.st.Deployments.Get(name)
		if !ok {
			continue
		}
		d.Revision = rev
		if err := c.reconcile(ctx, &d); err != nil && !errors.Is(err, errStaleRollout) {
			errs = append(errs, fmt.Errorf("rollout of %s: %w", name, err))
		}
	}
	// A deleted deployment's rollout goes with it.
	for _, name := range c.st.Rollouts.Keys() {
		if _, _, ok := c.st.Deployments.Get(name); !ok && pass.Acting() {
			if err := c.st.Rollouts.FencedDelete(ctx, c.lead, name); err != nil {
				errs = append(errs, fmt.Errorf("delete rollout %s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// reconcile moves d's rollout one pass on.
func (c *rolloutController) reconcile(ctx context.Context, d *v1.Deployment) error {
	ro, _, ok := c.st.Rollouts.Get(d.Name)
	if ok && ro.State.Phase.Terminal() && !ro.Counted {
		return c.finish(ctx, d, ro)
	}
	if d.Deleting || d.Stable == nil || d.Change == nil {
		return nil
	}
	now := time.Now().UTC()
	if !ok || ro.Change != d.Change.Number {
		return c.start(ctx, d, now)
	}
	if ro.State.Phase.Terminal() {
		return nil
	}
	c.reapplyOnce(ctx, ro)
	nodes := c.nodesOf(d)
	s := ro.State
	var acts []rollout.Action
	step := func(ev rollout.Event) {
		var a []rollout.Action
		s, a = rollout.Step(s, ev, nodes, now)
		acts = append(acts, a...)
	}
	ready, failed := c.observe(d, &ro)
	switch {
	case failed != "":
		step(rollout.Event{Kind: rollout.EventStepFailed, Step: s.Step, Reason: failed})
	case ready:
		step(rollout.Event{Kind: rollout.EventReady, Step: s.Step})
	}
	step(rollout.Event{Kind: rollout.EventTick, Step: s.Step})
	if from, to, due := s.AnalysisDue(now); due {
		src, byApp := c.source()
		name := d.Name // the fleet SLIs are keyed by deployment
		if byApp {
			name = d.Version.App
		}
		stable, canary, err := src.Samples(ctx, name, s.From.Version, s.To.Version, from, to)
		if err == nil && c.allOnCanary(d, &ro) {
			// The step leaves stable no traffic (100 %, or every node): judge the
			// canary against what stable served from just before the rollout on.
			iv := s.Spec.Interval
			stable, _, err = src.Samples(ctx, name, s.From.Version, s.To.Version, ro.Started.Add(-iv), to)
		}
		if err != nil {
			// The source is down: the step waits (the next pass asks again) rather
			// than judge on nothing.
			c.logger.Warn("rollout analysis: read samples", "deployment", d.Name, "err", err)
		} else {
			step(rollout.Event{Kind: rollout.EventObserved, Step: s.Step, Stable: stable, Canary: canary})
		}
	}
	return c.commit(ctx, d, ro, s, acts, now)
}

// commit writes ro with state s (unless nothing changed), then carries out acts.
func (c *rolloutController) commit(ctx context.Context, d *v1.Deployment, ro state.Rollout, s rollout.State, acts []rollout.Action, now time.Time) error {
	if len(acts) == 0 && sameJSON(s, ro.State) {
		return nil
	}
	next := ro
	next.State = s
	if s.Step != ro.State.Step || s.Phase != ro.State.Phase && (s.Phase == rollout.Progressing || s.Phase == rollout.Promoting) {
		next.StepStarted = now
	}
	if err := c.write(ctx, d.Name, ro, &next); err != nil {
		return err
	}
	c.carryOut(ctx, d.Name, next, acts, now)
	if next.State.Phase.Terminal() {
		return c.finish(ctx, d, next)
	}
	return nil
}

// write replaces the record read as ro with next, fenced, if it is still ro.
func (c *rolloutController) write(ctx context.Context, name string, ro state.Rollout, next *state.Rollout) error {
	_, err := c.st.Rollouts.FencedUpdate(ctx, c.lead, name, func(cur *state.Rollout) (*state.Rollout, error) {
		if cur == nil || !sameJSON(*cur, ro) {
			return nil, errStaleRollout
		}
		return next, nil
	})
	return err
}

// start begins d's rollout from its stable revision to its current one.
func (c *rolloutController) start(ctx context.Context, d *v1.Deployment, now time.Time) error {
	spec, err := rollout.FromAPI(d.Spec.Rollout)
	if err != nil { // admission validated it; a record from an older server may not be
		c.logger.Warn("rollout strategy", "deployment", d.Name, "err", err)
	}
	from := rollout.Revision{Number: uint64(d.Stable.Number), Version: d.Stable.Version.Version}
	to := rollout.Revision{Number: uint64(d.Change.Number), Version: d.Version.Version}
	s, acts := rollout.Start(d.Name, from, to, spec, c.nodesOf(d), now)
	rec := state.Rollout{Deployment: d.Name, Change: d.Change.Number, From: d.Stable.Version, To: d.Version,
		FromNumber: d.Stable.Number, State: s, Started: now, StepStarted: now}
	if d.Spec.Rollout != nil {
		rec.Strategy = *d.Spec.Rollout
	}
	created := false
	_, err = c.st.Rollouts.FencedUpdate(ctx, c.lead, d.Name, func(cur *state.Rollout) (*state.Rollout, error) {
		created = false
		if cur != nil && cur.Change == d.Change.Number {
			return nil, nil // started already
		}
		created = true
		return &rec, nil
	})
	if err != nil || !created {
		return err
	}
	c.carryOut(ctx, d.Name, rec, acts, now)
	if s.Phase.Terminal() {
		return c.finish(ctx, d, rec)
	}
	return nil
}

// finish ends a rollout that reached a terminal phase: the deployment returns to
// the stable revision unless it succeeded, then the outcome is counted, once.
func (c *rolloutController) finish(ctx context.Context, d *v1.Deployment, ro state.Rollout) error {
	if ro.Counted {
		return nil
	}
	if ro.State.Phase != rollout.Succeeded {
		if err := c.returnToStable(ctx, d.Name, ro); err != nil {
			return err
		}
	} else if err := c.dropStable(ctx, d.Name, ro); err != nil {
		return err
	}
	next := ro
	next.Counted = true
	if err := c.write(ctx, d.Name, ro, &next); err != nil {
		return err
	}
	c.outcomes.WithLabelValues(string(ro.State.Phase)).Inc()
	return nil
}

// returnToStable writes the deployment back to the revision its failed rollout
// started from, as a new revision (cause rollback): the record is the truth, and
// after a rollback it must say what the nodes run. The write is conditional on the
// deployment still being at the rolled-out change.
func (c *rolloutController) returnToStable(ctx context.Context, name string, ro state.Rollout) error {
	var rolledBack *v1.Deployment
	_, err := c.st.Deployments.FencedUpdate(ctx, c.lead, name, func(cur *v1.Deployment) (*v1.Deployment, error) {
		rolledBack = nil
		if cur == nil || cur.Deleting || cur.Stable == nil || cur.Change == nil || cur.Change.Number != ro.Change {
			return nil, nil // changed since: a later deploy decides
		}
		next := *cur
		if rv, _, ok := c.st.Revisions.Get(revisionKey(name, ro.FromNumber)); ok {
			next.Spec = rv.Spec
		}
		next.Spec.Image = ro.From.Ref()
		now := time.Now().UTC()
		next.Version, next.Stable, next.Updated = ro.From, nil, now
		next.Generation++
		next.Revision, next.Placement = 0, v1.Placement{}
		next.Change = &v1.Change{Number: nextRevision(c.st, name, cur), Cause: v1.CauseRollback, RollbackOf: ro.FromNumber,
			Who: "rollout controller", Message: fmt.Sprintf("rollout %s: %s", ro.State.Phase, ro.State.Reason), Time: now}
		rolledBack = &next
		return &next, nil
	})
	if err != nil || rolledBack == nil {
		return err
	}
	if err := recordRevision(ctx, c.st, rolledBack); err != nil {
		c.logger.Warn("record revision: the revisions controller will retry", "deployment", name, "err", err)
	}
	c.event(ctx, v1.Event{Type: v1.EventDeployed, Deployment: name,
		Message: fmt.Sprintf("revision %d (rollback to revision %d after the rollout %s), generation %d: %s %s (%s)",
			rolledBack.Change.Number, ro.FromNumber, ro.State.Phase, rolledBack.Generation, ro.From.App, ro.From.Version, shortDigest(ro.From.Digest))})
	return nil
}

// dropStable clears the deployment's stable revision once its rollout succeeded: the
// new revision runs everywhere, and the record no longer says a rollout governs it.
// The change stays the same revision (no new generation: the nodes' assignments
// render the same).
func (c *rolloutController) dropStable(ctx context.Context, name string, ro state.Rollout) error {
	_, err := c.st.Deployments.FencedUpdate(ctx, c.lead, name, func(cur *v1.Deployment) (*v1.Deployment, error) {
		if cur == nil || cur.Stable == nil || cur.Change == nil || cur.Change.Number != ro.Change {
			return nil, nil
		}
		next := *cur
		next.Stable, next.Revision, next.Placement = nil, 0, v1.Placement{}
		return &next, nil
	})
	return err
}

// carryOut does what the machine asked, after its state was written.
func (c *rolloutController) carryOut(ctx context.Context, name string, ro state.Rollout, acts []rollout.Action, now time.Time) {
	for _, a := range acts {
		switch a.Kind {
		case rollout.ActRecord:
			c.event(ctx, v1.Event{Type: v1.EventRollout, Deployment: name, Message: a.Message})
		case rollout.ActExpectAlerts:
			until := time.Time{}
			if a.Expect {
				until = now.Add(expectFor(ro.State))
			}
			if err := c.expect(ctx, name, ro.To.Version, until); err != nil {
				c.logger.Warn("mark SLO alerts expected", "deployment", name, "version", ro.To.Version, "err", err)
			}
		}
		// set_nodes, set_weight, promote and roll_back are in the record: the
		// deployment controller renders the assignments from it.
	}
}

// expectFor bounds how long a rollout's version's alerts are marked expected: its
// longest possible run (every step extended to the limit) and some slack, so a mark
// a crashed leader left behind runs out by itself.
func expectFor(s rollout.State) time.Duration {
	iv := s.Spec.Interval
	if iv <= 0 {
		iv = rollout.DefaultInterval
	}
	return time.Duration(len(s.Plan)+1)*iv*time.Duration(max(s.Spec.MaxExtensions, 0)+1) + 10*time.Minute
}

// reapplyOnce repeats the rollout's standing actions the first time this replica
// sees it in a term: what a deposed leader did or did not do is done again.
func (c *rolloutController) reapplyOnce(ctx context.Context, ro state.Rollout) {
	term := c.lead.Term()
	c.mu.Lock()
	done := c.reapplied[ro.Deployment] == term
	if c.reapplied == nil {
		c.reapplied = map[string]uint64{}
	}
	c.reapplied[ro.Deployment] = term
	c.mu.Unlock()
	if !done {
		c.carryOut(ctx, ro.Deployment, ro, rollout.Reapply(ro.State), time.Now().UTC())
	}
}

// nodesOf are the nodes d runs on (its placement, or its assignments before the
// first placement), with their labels, for choosing node steps.
func (c *rolloutController) nodesOf(d *v1.Deployment) []rollout.Node {
	names := map[string]bool{}
	if p, _, ok := c.st.Placements.Get(d.Name); ok {
		for _, n := range p.Nodes {
			names[n] = true
		}
	}
	if len(names) == 0 {
		for _, n := range c.assigned(d.Name) {
			names[n] = true
		}
	}
	out := make([]rollout.Node, 0, len(names))
	for n := range names {
		node, _, _ := c.st.Nodes.Get(n)
		out = append(out, rollout.Node{Name: n, Labels: node.Labels})
	}
	slices.SortFunc(out, func(a, b rollout.Node) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// assigned lists the nodes holding an assignment of deployment, sorted.
func (c *rolloutController) assigned(deployment string) []string {
	var out []string
	suffix := "." + deployment
	for _, key := range c.st.Assignments.Keys() {
		if node, ok := strings.CutSuffix(key, suffix); ok {
			out = append(out, node)
		}
	}
	slices.Sort(out)
	return out
}

// observe reads the nodes of the current step: ready when every one of them serves
// the new version as the step wants it, and the reason when one reported it failed
// since the step started.
func (c *rolloutController) observe(d *v1.Deployment, ro *state.Rollout) (ready bool, failed string) {
	s := &ro.State
	var nodes []string
	switch {
	case s.Phase == rollout.Promoting || s.Weight > 0:
		nodes = c.assigned(d.Name)
	default:
		nodes = s.CanaryNodes
	}
	if len(nodes) == 0 {
		return false, ""
	}
	ready = true
	for _, node := range nodes {
		st, _, ok := c.st.Statuses.Get(node + "." + d.Name)
		if !ok {
			ready = false
			continue
		}
		fresh := !st.Updated.Before(ro.StepStarted)
		if st.Digest == ro.To.Digest && st.State == v1.InstanceFailed && fresh {
			return false, fmt.Sprintf("node %s reports revision %d failed: %s", node, ro.Change, firstLine(st.LastError))
		}
		if cs := st.Canary; cs != nil && cs.Digest == ro.To.Digest && cs.State == v1.InstanceFailed && fresh {
			return false, fmt.Sprintf("node %s reports the canary (revision %d) failed: %s", node, ro.Change, firstLine(cs.LastError))
		}
		switch {
		case s.Phase == rollout.Promoting || s.Weight == 0:
			ready = ready && st.Digest == ro.To.Digest && st.State == v1.InstanceReady
		default:
			cs := st.Canary
			ready = ready && cs != nil && cs.Digest == ro.To.Digest && cs.State == v1.InstanceReady && cs.Weight == s.Weight
		}
	}
	return ready, ""
}

// allOnCanary reports whether the current step sends stable no request: a 100 %
// weight, or the new revision on every node of the deployment.
func (c *rolloutController) allOnCanary(d *v1.Deployment, ro *state.Rollout) bool {
	if ro.State.Weight >= v1.MaxCanaryWeight {
		return true
	}
	if ro.State.Weight > 0 {
		return false
	}
	assigned := c.assigned(d.Name)
	for _, n := range assigned {
		if !slices.Contains(ro.State.CanaryNodes, n) {
			return false
		}
	}
	return len(assigned) > 0
}

// rolloutTicker wakes the controllers every second while a rollout is live, so
// analysis windows close on time whatever the resync period.
type rolloutTicker struct {
	st   *state.Store
	kick func()
}

func (t *rolloutTicker) Name() string { return "rollout-ticker" }

func (t *rolloutTicker) Run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		live := false
		t.st.Rollouts.Each(func(_ string, r *state.Rollout, _ uint64) {
			live = live || !r.State.Phase.Terminal() || !r.Counted
		})
		if live {
			t.kick()
		}
	}
}

// fleetRolloutMetrics reads analysis samples from the fleet SLI store: each
// version's summaries over the window, merged over its nodes and routes.
type fleetRolloutMetrics struct{ st *fleet.Store }

func (m fleetRolloutMetrics) Samples(_ context.Context, app, stable, canary string, from, to time.Time) (rollout.Sample, rollout.Sample, error) {
	if m.st == nil {
		return rollout.Sample{}, rollout.Sample{}, errors.New("the fleet SLI store is not running")
	}
	var s, c rollout.Sample
	if ss, ok := m.st.Merged(app, stable, from, to); ok {
		s.Add(&ss)
	}
	if cs, ok := m.st.Merged(app, canary, from, to); ok {
		c.Add(&cs)
	}
	return s, c, nil
}

func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

// firstLine is a node's error as a rollout's reason: its first line (a trap's guest
// stack follows it), at most 300 bytes; fermion status shows the whole of it.
func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
