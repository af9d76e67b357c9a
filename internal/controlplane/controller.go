package controlplane

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/controlplane/state"
	"fermion.dev/fermion/internal/policy"
	"fermion.dev/fermion/internal/scheduler"
)

// controllerLoop runs the controllers while this replica leads: after every change to
// the tables (coalesced) and every ResyncInterval, and often enough to notice a lapsed
// lease within a fraction of LeaseLost.
func (s *Server) controllerLoop(ctx context.Context) {
	period := min(s.cfg.ResyncInterval, s.cfg.LeaseLost/8)
	tick := time.NewTicker(period)
	defer tick.Stop()
	var lastLifecycle time.Time
	idle := time.Now() // when this loop last went back to waiting
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
			idle = time.Now()
			continue
		}
		// The lifecycle pass walks every node and lease. Lapsed leases are found by
		// the clock, so it runs on the tick; changes (a node back, a drain emptied)
		// run it too, but at most every lifecycleMinGap, or a thousand nodes joining
		// at once would cost a thousand walks of the fleet.
		lifecycle := ticked || start.Sub(lastLifecycle) >= lifecycleMinGap
		if lifecycle {
			lastLifecycle = start
		}
		if err := s.reconcileAll(ctx, lifecycle); err != nil && ctx.Err() == nil {
			s.logger.Warn("reconcile", "err", err)
			s.metrics.reconciles.WithLabelValues("error").Inc()
		} else {
			s.metrics.reconciles.WithLabelValues("ok").Inc()
		}
		s.metrics.reconcileSeconds.Observe(time.Since(start).Seconds())
		idle = time.Now()
	}
}

// lifecycleMinGap is the least time between two lifecycle passes that a change asked for.
const lifecycleMinGap = 250 * time.Millisecond

func (s *Server) reconcileAll(ctx context.Context, lifecycle bool) error {
	var errs []error
	if lifecycle {
		errs = append(errs, s.nodeLifecycle(ctx))
	}
	for _, name := range s.reconcileOrder() {
		if !s.Acting() || ctx.Err() != nil {
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

// reconcileOrder is the order the controllers place deployments in: by the revision of
// their last write, oldest first. Admission simulates the deployments not yet placed
// in the same order (admission.go), so what it admitted is what gets placed.
func (s *Server) reconcileOrder() []string {
	type kr struct {
		name string
		rev  uint64
	}
	var all []kr
	s.st.Deployments.Each(func(name string, _ *v1.Deployment, rev uint64) { all = append(all, kr{name, rev}) })
	slices.SortFunc(all, func(a, b kr) int { return cmp.Compare(a.rev, b.rev) })
	out := make([]string, len(all))
	for i, d := range all {
		out[i] = d.name
	}
	return out
}

// nodeLifecycle marks nodes whose lease lapsed lost, nodes that renew again ready,
// and draining nodes with no work left drained.
//
// A node is judged lost only by a leader that has itself been able to hear the agents
// for a full LeaseLost without a gap: since it became leader, since its process last
// resumed from a pause, since its watch of the leases last restarted. Renewals may not
// have reached the buckets while no replica led, while the whole control plane was
// down or paused, or while this replica's watch was behind, and evicting the fleet for
// the control plane's own outage is the worst response to it. Before it marks anyone
// lost it also reads the leases bucket's last revision and waits until its table holds
// it, so a renewal already stored is never missed.
func (s *Server) nodeLifecycle(ctx context.Context) error {
	if w := s.st.Leases.Watches(); w != s.leaseWatches {
		s.leaseWatches = w
		s.lead.Deafened(time.Now())
	}
	// Renewals are stored only while the leases stream has a leader: while it has
	// none (a cluster just resumed or lost its quorum), no one can be heard.
	pctx, cancel := context.WithTimeout(ctx, s.cfg.LeaseRenew)
	_, err := state.LastSeq(pctx, s.st.Leases)
	cancel()
	if err != nil {
		s.lead.Deafened(time.Now())
	}
	now := time.Now()
	grace := s.lead.HearingFor(now) < s.cfg.LeaseLost
	type change struct {
		name, from, to string
		age            time.Duration
	}
	var changes []change
	work := s.assignedCount()
	s.st.Nodes.Each(func(name string, n *v1.Node, _ uint64) {
		age := now.Sub(n.Joined)
		if l, _, ok := s.st.Leases.Get(name); ok {
			age = now.Sub(l.Renewed)
		}
		fresh := age <= s.cfg.LeaseLost
		switch {
		case n.State != v1.NodeLost && !fresh && !grace:
			changes = append(changes, change{name, n.State, v1.NodeLost, age})
		case n.State == v1.NodeLost && fresh:
			to := v1.NodeReady
			if !n.Schedulable {
				to = v1.NodeDraining
			}
			changes = append(changes, change{name, n.State, to, age})
		case n.State == v1.NodeDraining && work[name] == 0:
			changes = append(changes, change{name, n.State, v1.NodeDrained, age})
		}
	})
	changes = confirmLost(ctx, s, changes, func(c change) (string, string) { return c.name, c.to })
	var errs []error
	for _, c := range changes {
		_, err := s.st.Nodes.FencedUpdate(ctx, s.lead, c.name, func(cur *v1.Node) (*v1.Node, error) {
			if cur == nil || cur.State != c.from {
				return nil, nil // changed meanwhile; the next pass decides again
			}
			n := *cur
			n.State, n.StateChanged = c.to, time.Now().UTC()
			return &n, nil
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch c.to {
		case v1.NodeLost:
			s.event(ctx, v1.Event{Type: v1.EventLeaseLost, Node: c.name,
				Message: fmt.Sprintf("node %s lost: no lease renewal for %s (limit %s); its work is rescheduled", c.name, c.age.Round(time.Second), s.cfg.LeaseLost)})
		case v1.NodeDrained:
			s.event(ctx, v1.Event{Type: v1.EventDrained, Node: c.name, Message: fmt.Sprintf("node %s drained: no work left, unschedulable until uncordoned", c.name)})
		default:
			s.event(ctx, v1.Event{Type: v1.EventNodeReady, Node: c.name, Message: fmt.Sprintf("node %s renews its lease again (%s)", c.name, c.to)})
		}
	}
	return errors.Join(errs...)
}

// confirmLost drops from changes the nodes to be marked lost whose renewal is in the
// leases bucket but not yet in this replica's table: it reads the bucket's last
// revision, waits (briefly) for the table to hold it and judges those nodes again. When
// it cannot tell, it drops them all; the next pass decides again.
func confirmLost[C any](ctx context.Context, s *Server, changes []C, what func(C) (node, to string)) []C {
	lost := false
	for _, c := range changes {
		if _, to := what(c); to == v1.NodeLost {
			lost = true
		}
	}
	if !lost {
		return changes
	}
	wctx, cancel := context.WithTimeout(ctx, s.cfg.LeaseRenew)
	defer cancel()
	last, err := state.LastSeq(wctx, s.st.Leases)
	if err == nil {
		err = s.st.Leases.WaitRev(wctx, last)
	}
	out := changes[:0]
	for _, c := range changes {
		node, to := what(c)
		if to == v1.NodeLost {
			if err != nil {
				continue
			}
			if l, _, ok := s.st.Leases.Get(node); ok && time.Since(l.Renewed) <= s.cfg.LeaseLost {
				continue
			}
		}
		out = append(out, c)
	}
	if err != nil {
		s.logger.Warn("could not confirm that the leases table is current; no node is marked lost in this pass", "err", err)
	}
	return out
}

// assignedCount counts the assignments per node.
func (s *Server) assignedCount() map[string]int {
	out := map[string]int{}
	s.st.Assignments.Each(func(key string, _ *v1.Assignment, _ uint64) {
		node, _, _ := strings.Cut(key, ".")
		out[node]++
	})
	return out
}

// selectors caches compiled selectors by source.
var selectors sync.Map // string → *policy.Selector

func compileSelector(src string) (*policy.Selector, error) {
	if v, ok := selectors.Load(src); ok {
		return v.(*policy.Selector), nil
	}
	sel, err := policy.CompileSelector(src)
	if err != nil {
		return nil, err
	}
	selectors.Store(src, sel)
	return sel, nil
}

// selectorConstraint adapts a selector to the scheduler.
type selectorConstraint struct{ sel *policy.Selector }

func (c selectorConstraint) Name() string { return "selector" }
func (c selectorConstraint) Match(n *scheduler.Node) (bool, string) {
	if c.sel.Match(n.Labels) {
		return true, ""
	}
	return false, "selector mismatch"
}

// schedNodes is the scheduler's view of the fleet: every node with what its
// assignments reserve.
func (s *Server) schedNodes() []*scheduler.Node {
	alloc := map[string]scheduler.Resources{}
	s.st.Assignments.Each(func(key string, a *v1.Assignment, _ uint64) {
		node, _, _ := strings.Cut(key, ".")
		r := alloc[node]
		r.MemoryBytes += a.Reserved.MemoryBytes
		r.MilliCPU += a.Reserved.MilliCPU
		r.Instances += a.Reserved.Instances
		alloc[node] = r
	})
	var out []*scheduler.Node
	s.st.Nodes.Each(func(name string, n *v1.Node, _ uint64) {
		state := scheduler.StateReady
		switch n.State {
		case v1.NodeLost:
			state = scheduler.StateLost
		case v1.NodeDraining, v1.NodeDrained:
			state = scheduler.StateDraining
		}
		out = append(out, &scheduler.Node{
			Name: name, Labels: n.Labels, State: state, Schedulable: n.Schedulable && state == scheduler.StateReady,
			RuntimeVersion: n.RuntimeVersion, Allocated: alloc[name],
			Capacity: scheduler.Resources{MemoryBytes: n.Capacity.MemoryBytes, MilliCPU: n.Capacity.MilliCPU, Instances: n.Capacity.Instances},
		})
	})
	return out
}

// routeConflict leaves out the nodes where another deployment already serves one of
// this version's routes (the same host and path): a node's gateway routes each to one
// function, as Nomad leaves out nodes where a static port is taken.
type routeConflict struct {
	taken map[string]bool // nodes with a clashing route
}

func (c routeConflict) Name() string { return "routes" }
func (c routeConflict) Match(n *scheduler.Node) (bool, string) {
	if c.taken[n.Name] {
		return false, "route taken by another deployment"
	}
	return true, ""
}

// routeConstraint finds the nodes where another deployment serves one of routes, or
// is about to (ov, at admission).
func (s *Server) routeConstraint(name string, routes []string, ov *overlay) scheduler.Constraint {
	c := routeConflict{taken: map[string]bool{}}
	if len(routes) == 0 {
		return c
	}
	if ov != nil {
		for node, byDep := range ov.routes {
			for dep, rs := range byDep {
				if dep != name && slices.ContainsFunc(rs, func(r string) bool { return slices.Contains(routes, r) }) {
					c.taken[node] = true
				}
			}
		}
	}
	s.st.Assignments.Each(func(key string, a *v1.Assignment, _ uint64) {
		if a.Deployment == name {
			return
		}
		for _, r := range a.Version.Routes {
			if slices.Contains(routes, r) {
				node, _, _ := strings.Cut(key, ".")
				c.taken[node] = true
				return
			}
		}
	})
	return c
}

// reserve is what one node reserves for a version.
func reserve(v v1.Version) v1.Resources {
	inst := max(v.Instances, 1)
	return v1.Resources{MemoryBytes: v.MemoryBytes * int64(inst), Instances: inst}
}

// placementRequest builds the scheduler's request for a deployment.
func placementRequest(name string, spec *v1.DeploymentSpec, ver v1.Version, current []string, currentReserved v1.Resources) (scheduler.Request, error) {
	r := reserve(ver)
	h := fnv.New64a()
	h.Write([]byte(name))
	req := scheduler.Request{
		Deployment: name, Mode: scheduler.ModeCount, Count: spec.Nodes,
		PerNode:         scheduler.Resources{MemoryBytes: r.MemoryBytes, MilliCPU: r.MilliCPU, Instances: r.Instances},
		Spread:          spec.Spread,
		RequiredRuntime: "1",
		Current:         current,
		CurrentPerNode:  scheduler.Resources{MemoryBytes: currentReserved.MemoryBytes, MilliCPU: currentReserved.MilliCPU, Instances: currentReserved.Instances},
		Seed:            h.Sum64(),
	}
	if spec.Daemon {
		req.Mode, req.Count = scheduler.ModeDaemon, 0
	}
	if spec.Strategy == v1.StrategySpread {
		req.Strategy = scheduler.Spread
	}
	if spec.Selector != "" {
		sel, err := compileSelector(spec.Selector)
		if err != nil {
			return req, err
		}
		req.Constraints = append(req.Constraints, selectorConstraint{sel})
	}
	for _, p := range spec.Preferences {
		req.Preferences = append(req.Preferences, scheduler.LabelPreference(p.Label, p.Value, p.Weight))
	}
	return req, nil
}

// placementFor is the scheduler's problem for a deployment, the same at the deploy-time
// dry run and in the controllers: the request built from the spec (selector, spread,
// strategy, preferences), the nodes where another deployment serves one of its routes
// left out, the placement policies in force applied, and the fleet to place on. cur is
// the deployment's current assignments; those on lost nodes are not kept. The error is
// the selector's.
//
// ov, at admission only, adds what the deployments admitted but not yet placed will
// take (admission.go); the controllers pass nil.
func (s *Server) placementFor(name string, spec *v1.DeploymentSpec, ver v1.Version, cur map[string]v1.Assignment, ov *overlay) (scheduler.Request, []*scheduler.Node, error) {
	var keep []string
	var curReserved v1.Resources
	for node, a := range cur {
		if n, _, ok := s.st.Nodes.Get(node); ok && n.State != v1.NodeLost {
			keep = append(keep, node)
		}
		curReserved = a.Reserved
	}
	slices.Sort(keep)
	req, err := placementRequest(name, spec, ver, keep, curReserved)
	if err != nil {
		return req, nil, err
	}
	req.Constraints = append(req.Constraints, s.routeConstraint(name, ver.Routes, ov))
	fleet := s.schedNodes()
	ov.reserve(fleet)
	withPlacementPolicies(&req, s.policySet(), appInput(name, ver), fleet)
	return req, fleet, nil
}

// current returns a deployment's assignments by node.
func (s *Server) current(name string) map[string]v1.Assignment {
	out := map[string]v1.Assignment{}
	suffix := "." + name
	s.st.Assignments.Each(func(key string, a *v1.Assignment, _ uint64) {
		if node, ok := strings.CutSuffix(key, suffix); ok && !strings.Contains(node, ".") {
			out[node] = *a
		}
	})
	return out
}

// reconcileDeployment moves one deployment's assignments toward its placement.
func (s *Server) reconcileDeployment(ctx context.Context, d *v1.Deployment) error {
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
	// Add and update first, so that work moves before it leaves.
	var writes, added []string
	for node := range desired {
		a, had := cur[node]
		if had && a.Generation == d.Generation {
			continue
		}
		writes = append(writes, node)
		if !had {
			added = append(added, node)
		}
	}
	slices.Sort(writes)
	slices.Sort(added)
	if err := s.writeAssignments(ctx, d, writes, r); err != nil {
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
	replacementsReady := s.allReady(d, desired)
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
func (s *Server) writeAssignments(ctx context.Context, d *v1.Deployment, nodes []string, r v1.Resources) error {
	sem := make(chan struct{}, assignmentWriters)
	errs := make([]error, len(nodes))
	revs := make([]uint64, len(nodes))
	var wg sync.WaitGroup
	for i, node := range nodes {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			na := v1.Assignment{Deployment: d.Name, Node: node, Generation: d.Generation, Version: d.Version, Reserved: r}
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

// allReady reports whether every desired node reports the deployment's generation ready.
func (s *Server) allReady(d *v1.Deployment, desired map[string]bool) bool {
	for node := range desired {
		st, _, ok := s.st.Statuses.Get(node + "." + d.Name)
		if !ok || st.State != v1.InstanceReady || st.Digest != d.Version.Digest {
			return false
		}
	}
	return true
}

// setPlacement records the scheduler's decision when it changed. It lives in its own
// bucket so that the deployment's revision moves only with what users write.
func (s *Server) setPlacement(ctx context.Context, d *v1.Deployment, nodes []string, message string) error {
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
func (s *Server) retire(ctx context.Context, d *v1.Deployment, cur map[string]v1.Assignment) error {
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
