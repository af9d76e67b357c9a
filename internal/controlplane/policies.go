package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/controlplane/state"
	"fermion.dev/fermion/internal/policy"
	"fermion.dev/fermion/internal/scheduler"
)

// reservedPolicyNames cannot be policies: they are routes under /v1/policies/.
var reservedPolicyNames = []string{"violations"}

// policyState is the compiled policy set in force on this replica. The bucket is the
// truth; the set follows the policies table lazily: policySet rebuilds it when the
// table changed since the last build. A stored version that does not compile here
// (say, written by a newer replica) leaves the previous version in force and is
// logged once and shown as the policy's Error.
//
// Lock order: mu, then the table's lock (a leaf).
type policyState struct {
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

func (s *Server) initPolicies() {
	set, _ := policy.NewSet(policy.Options{Observer: policyObserver{s.metrics}, Now: time.Now})
	s.policies.inForce = map[string]v1.RuntimePolicy{}
	s.policies.broken = map[string]brokenPolicy{}
	s.policies.built.Store(&builtPolicies{set: set, runtime: []v1.RuntimePolicy{}, changes: closedChan})
	// Placement policies change where deployments belong: let the controllers look.
	s.st.Policies.Watch(func(string, *v1.Policy) { s.kickControllers() })
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// policySet returns the set in force, rebuilding it if the policies changed.
func (s *Server) policySet() *policy.Set { return s.currentPolicies().set }

func (s *Server) currentPolicies() *builtPolicies {
	b := s.policies.built.Load()
	select {
	case <-b.changes:
	default:
		return b
	}
	ps := &s.policies
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
func (s *Server) runtimePolicies() []v1.RuntimePolicy { return s.currentPolicies().runtime }

// policyError is why the stored version of a policy is not in force here, or "".
func (s *Server) policyError(name string, version int) string {
	s.currentPolicies()
	s.policies.mu.Lock()
	defer s.policies.mu.Unlock()
	if br, ok := s.policies.broken[name]; ok && br.version == version {
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

// --- API ---

func (s *Server) policyView(name string) (v1.Policy, bool) {
	p, rev, ok := s.st.Policies.Get(name)
	if !ok {
		return p, false
	}
	p.Revision = rev
	p.Error = s.policyError(name, p.Version)
	return p, true
}

func (s *Server) apiListPolicies(_ http.ResponseWriter, _ *http.Request, _ cred) (any, int, *v1.Error) {
	names := s.st.Policies.Keys()
	out := v1.PolicyList{Policies: []v1.Policy{}}
	for _, name := range names {
		if p, ok := s.policyView(name); ok {
			out.Policies = append(out.Policies, p)
		}
	}
	return out, http.StatusOK, nil
}

func (s *Server) apiGetPolicy(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	p, ok := s.policyView(r.PathValue("name"))
	if !ok {
		return nil, 0, &v1.Error{Code: v1.CodeNotFound, Message: "no policy " + r.PathValue("name")}
	}
	return p, http.StatusOK, nil
}

// apiPutPolicy applies a policy: parsed, vetted and compiled against the set in force
// before anything is written, so a policy with a mistake is refused with its position
// and the version in force stays. Each apply that changes the source or the mode is
// a new version.
func (s *Server) apiPutPolicy(_ http.ResponseWriter, r *http.Request, caller cred) (any, int, *v1.Error) {
	ctx := r.Context()
	name := r.PathValue("name")
	if err := v1.ValidName("policy", name); err != nil {
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "name", Message: err.Error()}
	}
	if slices.Contains(reservedPolicyNames, name) {
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "name", Message: fmt.Sprintf("%q is reserved (it is a route under /v1/policies/); choose another metadata.name", name)}
	}
	var req v1.PolicyApply
	if e := decodeBody(r, &req); e != nil {
		return nil, 0, e
	}
	if req.Mode != "" && !slices.Contains(v1.PolicyModes, req.Mode) {
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "mode", Message: fmt.Sprintf("%q: want one of %s, or nothing to keep the file's spec.mode", req.Mode, strings.Join(v1.PolicyModes, ", "))}
	}
	file := req.File
	if file == "" {
		file = name + ".yaml"
	}
	if len(file) > 1024 || strings.ContainsAny(file, "\n\r") {
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "file", Message: "a file name of at most 1024 bytes on one line"}
	}
	if strings.TrimSpace(req.Source) == "" {
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "source", Message: "the policy file is empty"}
	}
	p, err := policy.ParseApplied(file, []byte(req.Source), policy.Mode(req.Mode), 0)
	if err != nil {
		return nil, 0, policyInvalid(name, err)
	}
	if p.Name() != name {
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: "source", Message: fmt.Sprintf("%s: metadata.name is %s but the request is for policy %s; apply it as %s or rename it", file, p.Name(), name, p.Name())}
	}
	refuse, warn, err := policy.Vet(p)
	if err != nil {
		return nil, 0, policyInvalid(name, err)
	}
	if len(refuse) > 0 {
		return nil, 0, policyInvalid(name, &policy.Error{Kind: policy.KindInvalid, Problems: refuse})
	}
	warnings := make([]string, len(warn))
	for i, f := range warn {
		warnings[i] = f.String()
	}
	mode := string(p.Spec.Mode)
	now := time.Now().UTC()
	var compileErr error
	created := false
	var same *v1.Policy // the stored record, when it is this apply already
	rec, rev, err := s.st.Policies.Update(ctx, name, func(cur *v1.Policy) (*v1.Policy, error) {
		if cur != nil && cur.Source == req.Source && cur.Mode == mode {
			same = cur
			return nil, nil
		}
		same = nil
		created = cur == nil
		version := 1
		if cur != nil {
			version = cur.Version + 1
		} else if last, err := lastPolicyVersion(ctx, s.st.Policies.KV(), name); err != nil {
			return nil, err
		} else {
			version = last + 1
		}
		// Compile it into the set in force, as the watch will when the record comes
		// back. The set may already hold a version this read has not seen (a
		// concurrent apply); the compare-and-swap orders those, so replace whatever
		// version of this policy the set holds.
		if _, err := s.policySet().Without(name).With(p.WithVersion(version)); err != nil {
			compileErr = err
			return nil, err
		}
		return &v1.Policy{Name: name, Version: version, Mode: mode, Target: string(p.Spec.Target), Source: req.Source,
			Applied: now, AppliedBy: caller.ID, Warnings: warnings}, nil
	})
	switch {
	case compileErr != nil && (errors.Is(compileErr, policy.ErrConflict) || errors.Is(compileErr, policy.ErrStale)):
		return nil, 0, &v1.Error{Code: v1.CodeConflict, Field: "source", Message: compileErr.Error()}
	case compileErr != nil:
		return nil, 0, policyInvalid(name, compileErr)
	case err != nil:
		return nil, 0, unavailable("write policy", err)
	}
	if rec == nil { // unchanged: the record read is the answer
		s.st.Policies.WaitRev(ctx, rev)
		same.Revision, same.Warnings = rev, warnings
		same.Error = s.policyError(name, same.Version)
		return same, http.StatusOK, nil
	}
	s.st.Policies.WaitRev(ctx, rev)
	rec.Revision = rev
	rec.Error = s.policyError(name, rec.Version)
	s.event(ctx, v1.Event{Type: v1.EventPolicyApplied,
		Message: fmt.Sprintf("policy %s version %d (%s) applied in mode %s by token %s", name, rec.Version, rec.Target, rec.Mode, caller.ID)})
	if created {
		return rec, http.StatusCreated, nil
	}
	return rec, http.StatusOK, nil
}

// policyInvalid is the 400 of a policy that does not parse, compile or vet: every
// problem with its file:line:col, so the user fixes them in one edit.
func policyInvalid(name string, err error) *v1.Error {
	var pe *policy.Error
	msg := err.Error()
	if errors.As(err, &pe) {
		what := "is not a valid policy"
		if pe.Kind == policy.KindCompile {
			what = "does not compile"
		}
		msg = fmt.Sprintf("policy %s %s; the version in force (if any) stays:\n%s", name, what, pe.Error())
	}
	return &v1.Error{Code: v1.CodeBadRequest, Field: "source", Message: msg}
}

// lastPolicyVersion is the highest version the bucket's history holds for a deleted
// policy, so that a re-created policy continues its numbering (0 if none).
func lastPolicyVersion(ctx context.Context, kv jetstream.KeyValue, name string) (int, error) {
	hist, err := kv.History(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the history of policy %s: %w", name, err)
	}
	last := 0
	for _, e := range hist {
		var p v1.Policy
		if e.Operation() == jetstream.KeyValuePut && json.Unmarshal(e.Value(), &p) == nil {
			last = max(last, p.Version)
		}
	}
	return last, nil
}

func (s *Server) apiDeletePolicy(_ http.ResponseWriter, r *http.Request, caller cred) (any, int, *v1.Error) {
	ctx := r.Context()
	name := r.PathValue("name")
	e, err := s.st.Policies.KV().Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, &v1.Error{Code: v1.CodeNotFound, Message: "no policy " + name}
	}
	if err != nil {
		return nil, 0, unavailable("read policy", err)
	}
	var p v1.Policy
	json.Unmarshal(e.Value(), &p)
	if err := s.st.Policies.KV().Delete(ctx, name, jetstream.LastRevision(e.Revision())); err != nil {
		if state.IsCASConflict(err) {
			return nil, 0, &v1.Error{Code: v1.CodeConflict, Message: "policy " + name + " changed while it was being deleted; check it and delete again"}
		}
		return nil, 0, unavailable("delete policy record", err)
	}
	s.st.Policies.WaitGone(ctx, name)
	s.event(ctx, v1.Event{Type: v1.EventPolicyDeleted, Message: fmt.Sprintf("policy %s (version %d, mode %s) deleted by token %s", name, p.Version, p.Mode, caller.ID)})
	return nil, http.StatusNoContent, nil
}

// policyEventTypes are the events GET /v1/policies/violations reads.
var policyEventTypes = []string{v1.EventPolicyDenied, v1.EventPolicyWarned, v1.EventPolicyAudited}

func (s *Server) apiPolicyViolations(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	f, e := parseEventFilter(r)
	if e != nil {
		return nil, 0, e
	}
	if f.Type != "" || f.Node != "" {
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Message: "violations are filtered by since, policy, deployment and limit only"}
	}
	f.Types, f.Policy = policyEventTypes, r.URL.Query().Get("policy")
	evs, err := s.events(r.Context(), f)
	if err != nil {
		return nil, 0, unavailable("read violations", err)
	}
	return v1.EventList{Events: evs}, http.StatusOK, nil
}

// --- admission ---

// admit runs the admission policies on a deployment's resolved image. Every objection
// is recorded as an event; warnings are returned for the caller; a denial is the
// policy_denied error, and nothing is to be written.
func (s *Server) admit(ctx context.Context, deployment string, img *resolvedImage, caller cred) ([]string, *v1.Error) {
	set := s.policySet()
	if set.Len() == 0 {
		return nil, nil
	}
	in := policy.AdmissionInput{Artifact: img.artifact, Manifest: img.config.Manifest, Caller: policy.Caller{Subject: caller.ID, Role: caller.Role}}
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

func (s *Server) recordViolations(ctx context.Context, deployment, subject string, target policy.Target, vs []policy.Violation) {
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
func (s *Server) stagePlacement(ctx context.Context, deployment string, ver v1.Version, nodes []*scheduler.Node, unplaceable bool, caller cred) []string {
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
			Message: fmt.Sprintf("%s %d of %d nodes (%s)", verb, n, len(nodes), reason), Error: x.Errors > 0 && x.Excluded == 0}
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
