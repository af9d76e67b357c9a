package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/controlplane/state"
)

// lifecycleController judges the nodes by their leases: it marks nodes whose lease
// lapsed lost, nodes that renew again ready, and draining nodes with no work left
// drained.
type lifecycleController struct {
	cfg    *Config
	logger *slog.Logger
	st     *state.Store
	lead   *state.Fence
	event  func(context.Context, v1.Event)

	// leaseWatches is the leases table's watch count the last pass saw, and
	// lastLifecycle when the last pass ran (controller goroutine only).
	leaseWatches  int64
	lastLifecycle time.Time
}

func (s *lifecycleController) Name() string { return "node lifecycle" }

// Reconcile runs a lifecycle pass when it is due. The pass walks every node and
// lease. Lapsed leases are found by the clock, so it runs on the tick; changes (a
// node back, a drain emptied) run it too, but at most every lifecycleMinGap, or a
// thousand nodes joining at once would cost a thousand walks of the fleet.
func (s *lifecycleController) Reconcile(ctx context.Context, pass Pass) error {
	if !pass.Ticked && pass.Start.Sub(s.lastLifecycle) < lifecycleMinGap {
		return nil
	}
	s.lastLifecycle = pass.Start
	return s.nodeLifecycle(ctx)
}

// lifecycleMinGap is the least time between two lifecycle passes that a change asked for.
const lifecycleMinGap = 250 * time.Millisecond

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
func (s *lifecycleController) nodeLifecycle(ctx context.Context) error {
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
func confirmLost[C any](ctx context.Context, s *lifecycleController, changes []C, what func(C) (node, to string)) []C {
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
func (s *lifecycleController) assignedCount() map[string]int {
	out := map[string]int{}
	s.st.Assignments.Each(func(key string, _ *v1.Assignment, _ uint64) {
		node, _, _ := strings.Cut(key, ".")
		out[node]++
	})
	return out
}
