package controlplane

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/controlplane/state"
	"fermion.dev/fermion/internal/scheduler"
)

// Atomic admission: what the deploy-time dry run checked is what gets placed.
//
// A deploy is admitted by a write of the deployment record conditional on the
// deployments bucket's last sequence (Nats-Expected-Last-Sequence): the dry run reads
// that sequence, waits until this replica's table holds it, and places the deployment
// on the fleet as the table describes it *plus* what every deployment admitted but not
// yet placed will take, simulated in the order the controllers place them
// (reconcileOrder). Any deploy written in between (on any replica) makes the write
// fail, and the dry run starts again on the new state. So of N concurrent deploys
// competing for one node's route or capacity, exactly those that fit are admitted; the
// others are refused (unplaceable, 409) and nothing of theirs is written.

// admitter runs deploys' dry runs and writes what they admitted: the placer's
// problem on the fleet plus what the admitted, not yet placed deployments will take.
type admitter struct {
	*placer
}

// maxAdmissionAttempts bounds how often a deploy re-runs its dry run after losing the
// write to a concurrent one; each lost round means another deploy was admitted.
const maxAdmissionAttempts = 32

// overlay is what the admitted, not yet placed deployments will take, per node.
type overlay struct {
	alloc  map[string]scheduler.Resources
	routes map[string]map[string][]string // node → deployment → routes
}

func newOverlay() *overlay {
	return &overlay{alloc: map[string]scheduler.Resources{}, routes: map[string]map[string][]string{}}
}

// reserve adds the overlay's reservations to the fleet's allocations.
func (ov *overlay) reserve(fleet []*scheduler.Node) {
	if ov == nil {
		return
	}
	for _, n := range fleet {
		r := ov.alloc[n.Name]
		n.Allocated.MemoryBytes += r.MemoryBytes
		n.Allocated.MilliCPU += r.MilliCPU
		n.Allocated.Instances += r.Instances
	}
}

// add records that deployment will run on nodes (newly on those in fresh).
func (ov *overlay) add(deployment string, nodes []string, fresh map[string]bool, r v1.Resources, routes []string) {
	for _, node := range nodes {
		if fresh[node] {
			a := ov.alloc[node]
			a.MemoryBytes += r.MemoryBytes
			a.MilliCPU += r.MilliCPU
			a.Instances += r.Instances
			ov.alloc[node] = a
		}
		if len(routes) > 0 {
			if ov.routes[node] == nil {
				ov.routes[node] = map[string][]string{}
			}
			ov.routes[node][deployment] = routes
		}
	}
}

// placedCounts counts, per deployment, its assignments by generation in this
// replica's table: one walk of the assignments for a whole dry run.
func (s *admitter) placedCounts() map[string]map[int64]int {
	out := map[string]map[int64]int{}
	s.st.Assignments.Each(func(_ string, a *v1.Assignment, _ uint64) {
		g := out[a.Deployment]
		if g == nil {
			g = map[int64]int{}
			out[a.Deployment] = g
		}
		g[a.Generation]++
	})
	return out
}

// placed reports whether the controllers have placed d's current generation and this
// replica's table holds the assignments they wrote for it (counts from placedCounts).
func (s *admitter) placed(d *v1.Deployment, counts map[string]map[int64]int) bool {
	p, _, ok := s.st.Placements.Get(d.Name)
	return ok && p.ObservedGeneration == d.Generation && counts[d.Name][d.Generation] >= len(p.Nodes)
}

// pendingOverlay simulates, in the controllers' order, the placement of every
// deployment but name whose current generation is not placed yet.
func (s *admitter) pendingOverlay(name string) *overlay {
	ov := newOverlay()
	counts := s.placedCounts()
	for _, dn := range s.reconcileOrder() {
		d, _, ok := s.st.Deployments.Get(dn)
		if dn == name || !ok || d.Deleting || s.placed(&d, counts) {
			continue
		}
		cur := s.current(dn)
		req, fleet, err := s.placementFor(dn, &d.Spec, d.Version, cur, ov)
		if err != nil {
			continue
		}
		res, err := scheduler.Place(fleet, req)
		if err != nil {
			continue // places nothing new; what it runs already is in the tables
		}
		nodes := make([]string, 0, len(res.Placements))
		fresh := map[string]bool{}
		for _, p := range res.Placements {
			nodes = append(nodes, p.Node)
			if _, had := cur[p.Node]; !had {
				fresh[p.Node] = true
			}
		}
		slices.Sort(nodes)
		ov.add(dn, nodes, fresh, reserve(d.Version), d.Version.Routes)
	}
	return ov
}

// admission is one deploy's dry run on the state at a bucket sequence.
type admission struct {
	last    uint64 // the deployments bucket's last sequence the dry run saw
	cur     *v1.Deployment
	rev     uint64
	nodes   []*scheduler.Node
	placeEr error // the scheduler's refusal, or nil
}

// dryRun reads the deployments bucket's last sequence, waits for the table to hold
// it, and places name's spec on the fleet plus the pending deployments.
func (s *admitter) dryRun(ctx context.Context, name string, spec *v1.DeploymentSpec, ver v1.Version) (admission, error) {
	var a admission
	last, err := state.LastSeq(ctx, s.st.Deployments)
	if err != nil {
		return a, err
	}
	if err := s.st.Deployments.WaitRev(ctx, last); err != nil {
		return a, fmt.Errorf("catch up with %s: %w", state.BucketDeployments, err)
	}
	a.last = last
	if d, rev, ok := s.st.Deployments.Get(name); ok {
		a.cur, a.rev = &d, rev
	}
	req, nodes, err := s.placementFor(name, spec, ver, s.current(name), s.pendingOverlay(name))
	if err != nil {
		return a, &v1.Error{Code: v1.CodeBadRequest, Field: "spec.selector", Message: err.Error()}
	}
	a.nodes = nodes
	_, a.placeEr = scheduler.Place(nodes, req)
	return a, nil
}

// writeAdmitted writes next as name's record if the deployments bucket is still at
// a.last; it returns the new revision, or a conflict error when another write came
// first.
func (s *admitter) writeAdmitted(ctx context.Context, name string, next *v1.Deployment, a admission) (uint64, error) {
	return s.st.Deployments.PutIfLast(ctx, name, next, a.last)
}

// nextDeployment is the record a PUT writes over cur (nil: absent) at revision rev, or
// nil when nothing changed; state.ErrConflict when the precondition or the state forbids it.
func nextDeployment(name string, cur *v1.Deployment, rev uint64, pre precondition, spec v1.DeploymentSpec, ver v1.Version, now time.Time, change v1.Change) (*v1.Deployment, error) {
	switch {
	case pre.createOnly && cur != nil:
		return nil, fmt.Errorf("%w: deployment %s already exists (revision %d)", state.ErrConflict, name, rev)
	case pre.revision != 0 && (cur == nil || rev != pre.revision):
		return nil, fmt.Errorf("%w: deployment %s is at revision %d, not %d: someone else changed it; read it again and retry", state.ErrConflict, name, rev, pre.revision)
	case cur != nil && cur.Deleting:
		return nil, fmt.Errorf("%w: deployment %s is being deleted; wait until it is gone", state.ErrConflict, name)
	}
	if cur == nil {
		return &v1.Deployment{Name: name, Spec: spec, Version: ver, Generation: 1, Created: now, Updated: now, Change: &change}, nil
	}
	if specEqual(&cur.Spec, &spec) && cur.Version.Digest == ver.Digest {
		return nil, nil
	}
	next := *cur
	next.Revision, next.Placement = 0, v1.Placement{}
	next.Spec, next.Version, next.Updated = spec, ver, now
	next.Generation++
	next.Change = &change
	return &next, nil
}

// errAdmissionBusy is a deploy that lost its write to concurrent ones too often.
var errAdmissionBusy = errors.New("too many concurrent deploys")
