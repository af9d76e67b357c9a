package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/controlplane/state"
	"fermion.dev/fermion/internal/scheduler"
)

// Controller is one control loop of the leader: it moves part of the observed state
// toward the desired state. The controllers run one after another in one loop, in the
// order registered (registerControllers in server.go), only while this replica is
// acting as leader, after every change to the tables (coalesced) and every resync.
// A controller holds what it needs (the state, the fence for its writes, an event
// func), never the Server; it writes only through the fence.
type Controller interface {
	// Name names the controller in logs and errors.
	Name() string
	// Reconcile runs one pass. It should return early, without error, once
	// pass.Acting reports false (the lease may lapse during a long pass); its writes
	// are fenced anyway.
	Reconcile(ctx context.Context, pass Pass) error
}

// Pass is what a controller knows of the pass it runs in.
type Pass struct {
	Start  time.Time // when the pass started
	Ticked bool      // woken by the resync tick rather than by a change
	// Acting reports whether this replica still acts as leader.
	Acting func() bool
}

// LeaderRunner is a controller with its own loop (its own timing, say an evaluation
// tick): Run is started by the controller loop when this replica starts acting as
// leader, and its ctx is cancelled as soon as the loop sees it has stopped (stepping
// down wakes the loop; a lapsed lease is seen within a resync period). Run must return
// then. A lapsed lease may thus leave Run going for a moment, which is why it writes
// through the fence like any controller.
type LeaderRunner interface {
	Name() string
	Run(ctx context.Context)
}

// controllers runs the registered controllers while this replica leads: after every
// change to the tables (coalesced) and every ResyncInterval, and often enough to
// notice a lapsed lease within a fraction of LeaseLost. It also starts and stops the
// leader runners with the leadership.
type controllers struct {
	cfg       *Config
	logger    *slog.Logger
	metrics   *metrics
	Acting    func() bool
	notePause func(gap, period time.Duration)
	kick      chan struct{} // wakes the loop (coalescing)

	list    []Controller
	runners []LeaderRunner
}

// kickControllers wakes the controller loop (coalescing).
func (s *controllers) kickControllers() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// controllerLoop is the controllers' loop; it returns when ctx is done.
func (s *controllers) controllerLoop(ctx context.Context) {
	period := min(s.cfg.ResyncInterval, s.cfg.LeaseLost/8)
	tick := time.NewTicker(period)
	defer tick.Stop()
	idle := time.Now() // when this loop last went back to waiting
	var runners leaderRunners
	defer runners.stop()
	for {
		ticked := false
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-tick.C:
			ticked = true
		}
		start := time.Now()
		// The ticker wakes this loop within a period of going idle (a tick missed
		// during a long pass waits in the channel), so a longer gap is a pause.
		s.notePause(start.Sub(idle), period)
		if !s.Acting() {
			runners.stop()
			idle = time.Now()
			continue
		}
		runners.start(ctx, s.runners)
		if err := s.reconcileAll(ctx, Pass{Start: start, Ticked: ticked, Acting: s.Acting}); err != nil && ctx.Err() == nil {
			s.logger.Warn("reconcile", "err", err)
			s.metrics.reconciles.WithLabelValues("error").Inc()
		} else {
			s.metrics.reconciles.WithLabelValues("ok").Inc()
		}
		s.metrics.reconcileSeconds.Observe(time.Since(start).Seconds())
		idle = time.Now()
	}
}

// reconcileAll runs every controller once, in order, while this replica acts.
func (s *controllers) reconcileAll(ctx context.Context, pass Pass) error {
	var errs []error
	for _, c := range s.list {
		if !s.Acting() || ctx.Err() != nil {
			break
		}
		errs = append(errs, c.Reconcile(ctx, pass))
	}
	return errors.Join(errs...)
}

// leaderRunners are the leader runners of one term, owned by the controller loop.
type leaderRunners struct {
	cancel context.CancelFunc // nil: not running
	wg     sync.WaitGroup
}

// start starts rs under a context of their own, unless they run already.
func (l *leaderRunners) start(ctx context.Context, rs []LeaderRunner) {
	if l.cancel != nil || len(rs) == 0 {
		return
	}
	ctx, l.cancel = context.WithCancel(ctx)
	for _, r := range rs {
		l.wg.Go(func() { r.Run(ctx) })
	}
}

// stop cancels the runners and waits until they have returned.
func (l *leaderRunners) stop() {
	if l.cancel == nil {
		return
	}
	l.cancel()
	l.wg.Wait()
	l.cancel = nil
}

// deploymentController places deployments and moves their assignments toward the
// placement: it adds and updates assignments first and removes them once the nodes
// replacing them run ready (a drain), and retires deleted deployments.
type deploymentController struct {
	*placer
	logger  *slog.Logger
	metrics *metrics
	st      *state.Store
	lead    *state.Fence
	event   func(context.Context, v1.Event)
}

func (s *deploymentController) Name() string { return "deployments" }

// Reconcile places every deployment, in reconcileOrder.
func (s *deploymentController) Reconcile(ctx context.Context, pass Pass) error {
	var errs []error
	for _, name := range s.reconcileOrder() {
		if !pass.Acting() || ctx.Err() != nil {
			break
		}
		d, rev, ok := s.st.Deployments.Get(name)
		if !ok {
			continue
		}
		d.Revision = rev
		if err := s.reconcileDeployment(ctx, &d); err != nil {
			errs = append(errs, fmt.Errorf("deployment %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// reconcileDeployment moves one deployment's assignments toward its placement.
func (s *deploymentController) reconcileDeployment(ctx context.Context, d *v1.Deployment) error {
	cur := s.current(d.Name)
	if d.Deleting {
		return s.retire(ctx, d, cur)
	}
	req, fleet, err := s.placementFor(d.Name, &d.Spec, d.Version, cur, nil)
	if err != nil {
		return s.setPlacement(ctx, d, nil, "selector: "+err.Error())
	}
	keep := req.Current
	res, err := scheduler.Place(fleet, req)
	desired := map[string]bool{}
	message := ""
	if err != nil {
		var pe *scheduler.PlacementError
		if !errors.As(err, &pe) {
			return err
		}
		// Too few nodes fit now (nodes were lost or drained): keep what still runs on
		// healthy, schedulable nodes that still meet the constraints (a placement
		// policy in force may now exclude some), and say why the rest cannot be placed.
		message = pe.Error()
		byName := make(map[string]*scheduler.Node, len(fleet))
		for _, n := range fleet {
			byName[n.Name] = n
		}
		for _, node := range keep {
			if n, _, ok := s.st.Nodes.Get(node); ok && n.State == v1.NodeReady && n.Schedulable && meetsConstraints(byName[node], req.Constraints) {
				desired[node] = true
			}
		}
		s.metrics.placements.WithLabelValues("unplaceable").Inc()
	} else {
		for _, p := range res.Placements {
			desired[p.Node] = true
		}
		s.metrics.placements.WithLabelValues("placed").Inc()
	}
	if d.Spec.Daemon {
		// A daemon deployment stays on a lost node, as Kubernetes' DaemonSet pods
		// tolerate an unreachable node: nothing else could take its place, and the
		// node (which keeps serving it) must find it still assigned when it returns
		// rather than drop it until the scheduler notices the node is back.
		for node := range cur {
			if n, _, ok := s.st.Nodes.Get(node); ok && n.State == v1.NodeLost {
				desired[node] = true
			}
		}
	}
	r := reserve(d.Version)
	// A rollout decides which version each node runs (rollout_split.go).
	split := splitOf(s.st, d)
	// Add and update first, so that work moves before it leaves.
	var writes, added []string
	for node := range desired {
		a, had := cur[node]
		if had && sameAssignment(a, split.assignment(d, node, r)) {
			continue
		}
		writes = append(writes, node)
		if !had {
			added = append(added, node)
		}
	}
	slices.Sort(writes)
	slices.Sort(added)
	if err := s.writeAssignments(ctx, d, split, writes, r); err != nil {
		return err
	}
	what := fmt.Sprintf("%s %s (%s)", d.Version.App, d.Version.Version, shortDigest(d.Version.Digest))
	if len(added) <= maxNodeEvents {
		for _, node := range added {
			s.event(ctx, v1.Event{Type: v1.EventAssigned, Deployment: d.Name, Node: node, Message: what + " assigned to " + node})
		}
	} else { // one event for a large placement, not one per node
		s.event(ctx, v1.Event{Type: v1.EventAssigned, Deployment: d.Name,
			Message: fmt.Sprintf("%s assigned to %d nodes: %s", what, len(added), abbreviate(added, 10))})
	}
	// Remove what is no longer desired. A draining node keeps its work until every
	// node that replaces it runs the version ready; a lost node loses it at once.
	replacementsReady := s.allReady(d, split, desired)
	for node := range cur {
		if desired[node] {
			continue
		}
		n, _, ok := s.st.Nodes.Get(node)
		lost := !ok || n.State == v1.NodeLost
		if ok && n.State == v1.NodeDraining && !replacementsReady {
			continue
		}
		if err := s.st.Assignments.FencedDelete(ctx, s.lead, node+"."+d.Name); err != nil {
			return fmt.Errorf("delete assignment %s.%s: %w", node, d.Name, err)
		}
		typ, why := v1.EventUnassigned, "no longer placed there"
		switch {
		case lost:
			typ, why = v1.EventRescheduled, "node lost"
		case n.State == v1.NodeDraining:
			typ, why = v1.EventRescheduled, "node draining"
		}
		s.event(ctx, v1.Event{Type: typ, Deployment: d.Name, Node: node, Message: fmt.Sprintf("%s removed from %s: %s", d.Name, node, why)})
	}
	nodes := make([]string, 0, len(desired))
	for node := range desired {
		nodes = append(nodes, node)
	}
	slices.Sort(nodes)
	return s.setPlacement(ctx, d, nodes, message)
}

// meetsConstraints reports whether n passes every hard constraint of a request.
func meetsConstraints(n *scheduler.Node, cs []scheduler.Constraint) bool {
	if n == nil {
		return false
	}
	for _, c := range cs {
		if ok, _ := c.Match(n); !ok {
			return false
		}
	}
	return true
}

// maxNodeEvents is the most per-node events one controller pass records for one
// deployment; beyond it, one event sums the step up.
const maxNodeEvents = 20

// assignmentWriters bounds the assignment writes in flight at once.
const assignmentWriters = 32

// writeAssignments puts d's assignment on each node, several at once: a daemon
// deployment to a thousand nodes is a thousand acknowledged writes.
func (s *deploymentController) writeAssignments(ctx context.Context, d *v1.Deployment, split rolloutSplit, nodes []string, r v1.Resources) error {
	sem := make(chan struct{}, assignmentWriters)
	errs := make([]error, len(nodes))
	revs := make([]uint64, len(nodes))
	var wg sync.WaitGroup
	for i, node := range nodes {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			na := split.assignment(d, node, r)
			revs[i], errs[i] = s.st.Assignments.FencedPut(ctx, s.lead, node+"."+d.Name, &na)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// The next deployment in this pass is placed on the table: it must see these.
	if len(revs) > 0 {
		return s.st.Assignments.WaitRev(ctx, slices.Max(revs))
	}
	return nil
}

// allReady reports whether every desired node reports the version it should run ready.
func (s *deploymentController) allReady(d *v1.Deployment, split rolloutSplit, desired map[string]bool) bool {
	for node := range desired {
		st, _, ok := s.st.Statuses.Get(node + "." + d.Name)
		if !ok || st.State != v1.InstanceReady || st.Digest != split.versionOn(node).Digest {
			return false
		}
	}
	return true
}

// setPlacement records the scheduler's decision when it changed. It lives in its own
// bucket so that the deployment's revision moves only with what users write.
func (s *deploymentController) setPlacement(ctx context.Context, d *v1.Deployment, nodes []string, message string) error {
	p, _, _ := s.st.Placements.Get(d.Name)
	if p.ObservedGeneration == d.Generation && slices.Equal(p.Nodes, nodes) && p.Message == message {
		return nil
	}
	next := v1.Placement{ObservedGeneration: d.Generation, Nodes: nodes, Message: message, Time: time.Now().UTC()}
	rev, err := s.st.Placements.FencedPut(ctx, s.lead, d.Name, &next)
	if err != nil {
		return err
	}
	s.st.Placements.WaitRev(ctx, rev)
	if message != "" && message != p.Message {
		s.event(ctx, v1.Event{Type: v1.EventUnplaceable, Deployment: d.Name, Message: message})
	} else if message == "" && (!slices.Equal(p.Nodes, nodes) || p.ObservedGeneration != d.Generation) {
		s.event(ctx, v1.Event{Type: v1.EventPlaced, Deployment: d.Name,
			Message: fmt.Sprintf("generation %d placed on %d node(s): %s", d.Generation, len(nodes), abbreviate(nodes, 10))})
	}
	return nil
}

// retire removes a deleted deployment's assignments, then its statuses and record.
func (s *deploymentController) retire(ctx context.Context, d *v1.Deployment, cur map[string]v1.Assignment) error {
	for node := range cur {
		if err := s.st.Assignments.FencedDelete(ctx, s.lead, node+"."+d.Name); err != nil {
			return fmt.Errorf("delete assignment %s.%s: %w", node, d.Name, err)
		}
		s.event(ctx, v1.Event{Type: v1.EventUnassigned, Deployment: d.Name, Node: node, Message: fmt.Sprintf("%s removed from %s: deployment deleted", d.Name, node)})
	}
	// Wait until the nodes that are up report it gone.
	running := false
	suffix := "." + d.Name
	s.st.Statuses.Each(func(key string, _ *v1.InstanceStatus, _ uint64) {
		if node, ok := strings.CutSuffix(key, suffix); ok {
			if n, _, ok := s.st.Nodes.Get(node); ok && n.State != v1.NodeLost {
				running = true
			}
		}
	})
	if running {
		return nil
	}
	deleted, err := s.st.Deployments.FencedDeleteAt(ctx, s.lead, d.Name, d.Revision)
	if err != nil {
		return fmt.Errorf("delete deployment %s: %w", d.Name, err)
	}
	if deleted {
		s.st.Placements.FencedDelete(ctx, s.lead, d.Name)
		s.event(ctx, v1.Event{Type: v1.EventDeleted, Deployment: d.Name, Message: fmt.Sprintf("deployment %s deleted from every node", d.Name)})
	}
	return nil
}

func abbreviate(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), len(names)-n)
}
