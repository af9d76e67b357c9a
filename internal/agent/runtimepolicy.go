package agent

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/policy"
)

// runtimePolicies is the node's last line of defence: before a version starts, the
// runtime-target policies check what the artifact needs (imports, capabilities,
// limits, read from the verified artifact itself) against what this node allows
// (NodeConfig.Allow), whatever the control plane decided. The policies are the node's
// own files (NodeConfig.RuntimePolicies, always enforced) plus those the control plane
// sends; a control-plane policy with the name of a local one is ignored, so a
// compromised or stale control plane can add checks but not remove the node's.
type runtimePolicies struct {
	log   *slog.Logger
	local []*policy.Policy

	mu     sync.Mutex // leaf
	remote []v1.RuntimePolicy
	set    *policy.Set
}

func newRuntimePolicies(log *slog.Logger, local []*policy.Policy) (*runtimePolicies, error) {
	for _, p := range local {
		if p.Spec.Target != policy.TargetRuntime {
			return nil, fmt.Errorf("runtime policy %s (%s): its target is %s, want runtime", p.Name(), p.File, p.Spec.Target)
		}
	}
	r := &runtimePolicies{log: log, local: local}
	set, err := policy.NewSet(policy.Options{}, local...)
	if err != nil {
		return nil, fmt.Errorf("runtime policies: %w", err)
	}
	r.set = set
	return r, nil
}

// update takes the control plane's runtime policies and reports whether they changed.
// nil (an older server) keeps the current ones. A set that does not compile keeps the
// previous one in force.
func (r *runtimePolicies) update(ps []v1.RuntimePolicy) bool {
	if ps == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if slices.EqualFunc(ps, r.remote, func(a, b v1.RuntimePolicy) bool {
		return a.Name == b.Name && a.Version == b.Version && a.Mode == b.Mode
	}) && r.remote != nil {
		return false
	}
	all := slices.Clone(r.local)
	for _, rp := range ps {
		if slices.ContainsFunc(r.local, func(p *policy.Policy) bool { return p.Name() == rp.Name }) {
			continue
		}
		p, err := policy.ParseApplied(rp.Name+".yaml", []byte(rp.Source), policy.Mode(rp.Mode), rp.Version)
		if err != nil {
			r.log.Error("runtime policy from the control plane does not parse; keeping the previous set", "policy", rp.Name, "err", err)
			return false
		}
		all = append(all, p)
	}
	set, err := policy.NewSet(policy.Options{}, all...)
	if err != nil {
		r.log.Error("runtime policies from the control plane do not compile; keeping the previous set", "err", err)
		return false
	}
	r.remote, r.set = slices.Clone(ps), set
	return true
}

// check decides whether a version may start on this node.
func (r *runtimePolicies) check(config []byte, digest string, node policy.RuntimeNode) error {
	r.mu.Lock()
	set := r.set
	r.mu.Unlock()
	if set.Len() == 0 {
		return nil
	}
	cfg, err := policy.ParseArtifactConfig(config)
	if err != nil {
		return err
	}
	d := set.RuntimeCheck(policy.RuntimeInput{Artifact: cfg.RuntimeArtifact(digest), Node: node})
	for _, v := range d.Warnings {
		r.log.Warn("runtime policy warning", "digest", digest, "policy", v.Policy, "message", v.Message)
	}
	for _, v := range d.Audits {
		r.log.Info("runtime policy audit", "digest", digest, "policy", v.Policy, "message", v.Message)
	}
	if d.Allowed {
		return nil
	}
	msgs := make([]string, len(d.Denials))
	for i, v := range d.Denials {
		msgs[i] = fmt.Sprintf("policy %s: %s", v.Policy, v.Message)
	}
	return fmt.Errorf("refused by this node's runtime policies: %s", strings.Join(msgs, "; "))
}

// runtimePoliciesFile keeps the control plane's runtime policies, so that an agent
// restarted while the control plane is away still enforces them.
const runtimePoliciesFile = "runtime-policies.json"

// updateRuntimePolicies takes the control plane's runtime policies and keeps them.
func (n *Node) updateRuntimePolicies(ps []v1.RuntimePolicy) {
	if !n.rules.update(ps) {
		return
	}
	if err := writeJSON(n.cfg.DataDir, runtimePoliciesFile, ps); err != nil {
		n.log.Error("runtime policies not saved", "err", err)
	}
}

// loadRuntimePolicies applies the runtime policies kept from the control plane.
func (n *Node) loadRuntimePolicies() {
	var ps []v1.RuntimePolicy
	if ok, err := readJSON(n.cfg.DataDir, runtimePoliciesFile, &ps); err != nil {
		n.log.Error("kept runtime policies unreadable; enforcing the node's own until the control plane answers", "err", err)
	} else if ok {
		n.rules.update(ps)
	}
}
