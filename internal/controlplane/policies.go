package controlplane

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/controlplane/state"
	"fermion.dev/fermion/internal/policy"
	"fermion.dev/fermion/internal/rollout"
	"fermion.dev/fermion/internal/scheduler"
)

// policies is the compiled policy set in force on this replica, and what admission
// and placement do with it. The bucket is the truth; the set follows the policies
// table lazily: policySet rebuilds it when the table changed since the last build. A
// stored version that does not compile here (say, written by a newer replica) leaves
// the previous version in force and is logged once and shown as the policy's Error.
//
// Lock order: mu, then the table's lock (a leaf).
type policies struct {
	cfg     *Config
	logger  *slog.Logger
	metrics *metrics
	st      *state.Store
	event   func(context.Context, v1.Event)

	built atomic.Pointer[builtPolicies]

	mu      sync.Mutex
	inForce map[string]v1.RuntimePolicy // name → the version in force (any target)
	broken  map[string]brokenPolicy     // name → why its stored version is not in force
}

type brokenPolicy struct {
	version int
	err     string
}

// builtPolicies is one build of the set, valid until the table's changes channel
// closes.
type builtPolicies struct {
	set       *policy.Set
	runtime   []v1.RuntimePolicy // runtime-target policies in force, by name; never nil
	placement bool               // whether any placement policy is in force
	changes   <-chan struct{}
}

// init starts with the empty set; the first policySet builds the one in force.
func (s *policies) init() {
	set, _ := policy.NewSet(policy.Options{Observer: policyObserver{s.metrics}, Now: time.Now})
	s.inForce = map[string]v1.RuntimePolicy{}
	s.broken = map[string]brokenPolicy{}
	s.built.Store(&builtPolicies{set: set, runtime: []v1.RuntimePolicy{}, changes: closedChan})
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// policySet returns the set in force, rebuilding it if the policies changed.
func (s *policies) policySet() *policy.Set { return s.currentPolicies().set }

func (s *policies) currentPolicies() *builtPolicies {
	b := s.built.Load()
	select {
	case <-b.changes:
	default:
		return b
	}
	ps := s
	ps.mu.Lock()
	defer ps.mu.Unlock()
	b = ps.built.Load()
	select {
	case <-b.changes:
	default:
		return b // another caller rebuilt it
	}
	// Take the channel before reading the records: a change after this read closes
	// it, and the next call builds again.
	changes := s.st.Policies.Changes()
	recs := map[string]v1.Policy{}
	s.st.Policies.Each(func(name string, p *v1.Policy, _ uint64) { recs[name] = *p })
	set := b.set
	for name := range ps.inForce {
		if _, ok := recs[name]; !ok {
			set = set.Without(name)
			delete(ps.inForce, name)
			s.metrics.forgetPolicy(name)
			s.logger.Info("policy removed", "policy", name)
		}
	}
	for name := range ps.broken {
		if _, ok := recs[name]; !ok {
			delete(ps.broken, name)
		}
	}
	names := make([]string, 0, len(recs))
	for name := range recs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		rec := recs[name]
		if cur, ok := ps.inForce[name]; ok && cur.Version == rec.Version && cur.Mode == rec.Mode {
			continue
		}
		if br, ok := ps.broken[name]; ok && br.version == rec.Version {
			continue // failed before; logged then
		}
		p, err := policy.ParseApplied(name+".yaml", []byte(rec.Source), policy.Mode(rec.Mode), rec.Version)
		if err == nil && p.Name() != name {
			err = fmt.Errorf("the source names policy %s", p.Name())
		}
		var next *policy.Set
		if err == nil {
			// The store is the truth: replace whatever version the set holds.
			next, err = set.Without(name).With(p)
		}
		if err != nil {
			ps.broken[name] = brokenPolicy{version: rec.Version, err: err.Error()}
			s.logger.Error("policy stored in the bucket does not compile here; the previous version stays in force",
				"policy", name, "version", rec.Version, "err", err)
			continue
		}
		set = next
		delete(ps.broken, name)
		ps.inForce[name] = v1.RuntimePolicy{Name: name, Version: rec.Version, Mode: string(p.Spec.Mode), Source: rec.Source}
		s.metrics.zeroPolicy(name, p.Spec.Mode)
		s.logger.Info("policy in force", "policy", name, "version", rec.Version, "mode", p.Spec.Mode, "target", p.Spec.Target)
	}
	b = &builtPolicies{set: set, runtime: []v1.RuntimePolicy{}, changes: changes}
	for _, p := range set.Policies() {
		switch p.Spec.Target {
		case policy.TargetRuntime:
			b.runtime = append(b.runtime, ps.inForce[p.Name()])
		case policy.TargetPlacement:
			b.placement = true
		}
	}
	ps.built.Store(b)
	return b
}

// runtimePolicies is what agents are sent: the runtime policies in force.
func (s *policies) runtimePolicies() []v1.RuntimePolicy { return s.currentPolicies().runtime }

// policyError is why the stored version of a policy is not in force here, or "".
func (s *policies) policyError(name string, version int) string {
	s.currentPolicies()
	s.mu.Lock()
	defer s.mu.Unlock()
	if br, ok := s.broken[name]; ok && br.version == version {
		return "not in force on server " + s.cfg.Name + ": " + br.err
	}
	return ""
}

// policyObserver counts policy evaluations in the server's metrics.
type policyObserver struct{ m *metrics }

func (o policyObserver) Evaluated(name string, mode policy.Mode, result policy.Result, seconds float64) {
	o.m.policyEvaluations.WithLabelValues(name, string(mode), string(result)).Inc()
	if result == policy.ResultViolation || result == policy.ResultError {
		o.m.policyViolations.WithLabelValues(name, string(mode)).Inc()
	}
	o.m.policySeconds.WithLabelValues(name).Observe(seconds)
}

// --- admission ---

// admit runs the admission policies on a deployment's resolved image. Every objection
// is recorded as an event; warnings are returned for the caller; a denial is the
// policy_denied error, and nothing is to be written.
func (s *policies) admit(ctx context.Context, deployment string, img *resolvedImage, strategy rollout.Spec, caller cred) ([]string, *v1.Error) {
	set := s.policySet()
	if set.Len() == 0 {
		return nil, nil
	}
	in := policy.AdmissionInput{Artifact: img.artifact, Manifest: img.config.Manifest, Caller: policy.Caller{Subject: caller.ID, Role: caller.Role},
		Deployment: policy.Deployment{Name: deployment, Strategy: policyStrategy(strategy)}}
	d := set.Admit(in)
	s.recordViolations(ctx, deployment, caller.ID, policy.TargetAdmission, d.Violations())
	warnings := make([]string, 0, len(d.Warnings))
	for _, v := range d.Warnings {
		warnings = append(warnings, v.String())
	}
	if !d.Allowed {
		msgs := make([]string, len(d.Denials))
		for i, v := range d.Denials {
			msgs[i] = v.String()
		}
		return warnings, &v1.Error{Code: v1.CodePolicyDenied, Message: strings.Join(msgs, "; ")}
	}
	return warnings, nil
}

func (s *policies) recordViolations(ctx context.Context, deployment, subject string, target policy.Target, vs []policy.Violation) {
	for _, v := range vs {
		typ := v1.EventPolicyDenied
		switch v.Mode {
		case policy.ModeWarn:
			typ = v1.EventPolicyWarned
		case policy.ModeAudit:
			typ = v1.EventPolicyAudited
		}
		s.event(ctx, v1.Event{Type: typ, Deployment: deployment, Message: v.String(),
			Violation: &v1.PolicyViolation{Policy: v.Policy, Version: v.Version, Mode: string(v.Mode), Target: string(target), Subject: subject, Error: v.Error}})
	}
}

// --- placement ---

// appInput is what placement policies see of a deployment's app.
func appInput(deployment string, ver v1.Version) policy.AppInput {
	name := ver.App
	if name == "" {
		name = deployment
	}
	labels := ver.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return policy.AppInput{Name: name, Labels: labels}
}

func nodeInput(n *scheduler.Node) *policy.NodeInput {
	labels := n.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	return &policy.NodeInput{Name: n.Name, Labels: labels, Capacity: policy.Capacity{
		Memory: n.Capacity.MemoryBytes, MilliCPU: n.Capacity.MilliCPU, Instances: int64(n.Capacity.Instances)}}
}

// policyNodes is the policy package's view of the nodes of one placement, converted
// once and shared by every policy constraint and preference of it.
type policyNodes map[*scheduler.Node]*policy.NodeInput

func newPolicyNodes(nodes []*scheduler.Node) policyNodes {
	m := make(policyNodes, len(nodes))
	for _, n := range nodes {
		m[n] = nodeInput(n)
	}
	return m
}

func (m policyNodes) get(n *scheduler.Node) *policy.NodeInput {
	if in, ok := m[n]; ok {
		return in
	}
	return nodeInput(n) // a node the caller did not list: correct, only slower
}

// policyConstraint adapts a placement policy's constraint to the scheduler. Its
// reason names the policy ("policy data-residency: node region not in EU list"), so
// an unplaceable deployment's explanation counts what each policy excluded.
type policyConstraint struct {
	c     policy.NodeConstraint
	nodes policyNodes
}

func (a policyConstraint) Name() string { return a.c.Name() }
func (a policyConstraint) Match(n *scheduler.Node) (bool, string) {
	return a.c.Match(a.nodes.get(n))
}

type policyPreference struct {
	p     policy.NodePreference
	nodes policyNodes
}

func (a policyPreference) Name() string                    { return a.p.Name() }
func (a policyPreference) Weight() float64                 { return a.p.Weight() }
func (a policyPreference) Score(n *scheduler.Node) float64 { return a.p.Score(a.nodes.get(n)) }

// withPlacementPolicies adds what the placement policies in force (mode deny) impose
// on the app to req, as filters and scores over nodes.
func withPlacementPolicies(req *scheduler.Request, set *policy.Set, app policy.AppInput, nodes []*scheduler.Node) {
	cs, ps := set.Placement(app)
	if len(cs) == 0 && len(ps) == 0 {
		return
	}
	pn := newPolicyNodes(nodes)
	for _, c := range cs {
		req.Constraints = append(req.Constraints, policyConstraint{c, pn})
	}
	for _, p := range ps {
		req.Preferences = append(req.Preferences, policyPreference{p, pn})
	}
}

// stagePlacement reports, at deploy time, what placement policies would exclude: in
// mode warn and audit (which do not constrain placement) as warnings and audit
// events, and in mode deny as denial events when the deployment could not be placed.
func (s *policies) stagePlacement(ctx context.Context, deployment string, ver v1.Version, nodes []*scheduler.Node, unplaceable bool, caller cred) []string {
	b := s.currentPolicies()
	if !b.placement || len(nodes) == 0 {
		return nil
	}
	set, app := b.set, appInput(deployment, ver)
	ins := make([]policy.NodeInput, len(nodes))
	for i, n := range nodes {
		ins[i] = *nodeInput(n)
	}
	var warnings []string
	var vs []policy.Violation
	for _, x := range set.ExplainPlacement(app, ins) {
		n := x.Excluded + x.Errors
		if n == 0 || (x.Mode == policy.ModeDeny && !unplaceable) {
			continue
		}
		verb := "would exclude"
		if x.Mode == policy.ModeDeny {
			verb = "excludes"
		}
		reason := strings.TrimPrefix(x.Reason, "policy "+x.Policy+": ")
		v := policy.Violation{Policy: x.Policy, Version: x.Version, Mode: x.Mode,
			Message: fmt.Sprintf("%s %d of %s (%s)", verb, n, v1.Count(len(nodes), "node"), reason), Error: x.Errors > 0 && x.Excluded == 0}
		vs = append(vs, v)
		if x.Mode == policy.ModeWarn {
			warnings = append(warnings, v.String())
		}
	}
	s.recordViolations(ctx, deployment, caller.ID, policy.TargetPlacement, vs)
	return warnings
}

// setWarningHeader sends each warning as an RFC 7234 Warning header (code 299, as
// Kubernetes does), for clients that read headers rather than the body.
func setWarningHeader(w http.ResponseWriter, warnings []string) {
	for _, m := range warnings {
		m = strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return ' '
			}
			return r
		}, m)
		w.Header().Add("Warning", "299 fermion "+strconv.Quote(m))
	}
}
