package controlplane

import (
	"cmp"
	"hash/fnv"
	"slices"
	"strings"
	"sync"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/controlplane/state"
	"fermion.dev/fermion/internal/policy"
	"fermion.dev/fermion/internal/scheduler"
)

// placer states the scheduler's problem for a deployment from the tables and the
// policies in force: the same at the deploy-time dry run (admission) and in the
// deployment controller, so that what was admitted is what gets placed. It reads;
// it never writes.
type placer struct {
	st       *state.Store
	policies *policies
}

// reconcileOrder is the order the controllers place deployments in: by the revision of
// their last write, oldest first. Admission simulates the deployments not yet placed
// in the same order (admission.go), so what it admitted is what gets placed.
func (s *placer) reconcileOrder() []string {
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
func (s *placer) schedNodes() []*scheduler.Node {
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
func (s *placer) routeConstraint(name string, routes []string, ov *overlay) scheduler.Constraint {
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
func (s *placer) placementFor(name string, spec *v1.DeploymentSpec, ver v1.Version, cur map[string]v1.Assignment, ov *overlay) (scheduler.Request, []*scheduler.Node, error) {
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
	withPlacementPolicies(&req, s.policies.policySet(), appInput(name, ver), fleet)
	return req, fleet, nil
}

// current returns a deployment's assignments by node.
func (s *placer) current(name string) map[string]v1.Assignment {
	out := map[string]v1.Assignment{}
	suffix := "." + name
	s.st.Assignments.Each(func(key string, a *v1.Assignment, _ uint64) {
		if node, ok := strings.CutSuffix(key, suffix); ok && !strings.Contains(node, ".") {
			out[node] = *a
		}
	})
	return out
}
