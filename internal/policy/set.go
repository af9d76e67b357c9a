package policy

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Options configure a Set and every set derived from it with With and Without.
type Options struct {
	// CostLimit is the CEL cost one expression may spend per evaluation, checked
	// statically when a policy is compiled and enforced when it runs. 0 means
	// DefaultCostLimit.
	CostLimit uint64
	// Observer, if set, is told of every policy evaluation (see Observer).
	Observer Observer
	// Now, if set, is read before and after each policy evaluation to time it for
	// Observer. The package reads no clock of its own; leave it nil to report 0.
	Now func() time.Time
}

// Set is an immutable set of compiled policies, ordered by name. The zero value and
// nil are empty sets that allow everything. A Set is safe for concurrent use; changing
// it means deriving a new one with With or Without and swapping the pointer, so a
// policy that fails to compile never replaces the one in force.
type Set struct {
	opts     Options
	all      []*compiled // by name
	byTarget [3][]*compiled
}

// NewSet compiles policies into a new set. Two policies with the same name are a
// conflict (ErrConflict): a set holds one version of each policy, in one mode.
func NewSet(opts Options, policies ...*Policy) (*Set, error) {
	s := &Set{opts: opts}
	seen := map[string]*Policy{}
	var errs []error
	for _, p := range policies {
		if p == nil {
			continue
		}
		if prev, dup := seen[p.Metadata.Name]; dup {
			return nil, conflictError(prev, p)
		}
		seen[p.Metadata.Name] = p
		c, err := compile(p.clone(), opts.CostLimit)
		if err != nil {
			errs = append(errs, fmt.Errorf("compile policy %s: %w", p.Metadata.Name, err))
			continue
		}
		s.all = append(s.all, c)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s.index()
	return s, nil
}

func conflictError(prev, p *Policy) error {
	where := func(q *Policy) string {
		if q.File != "" {
			return q.File
		}
		return fmt.Sprintf("version %d", q.Version)
	}
	if prev.Spec.Mode != p.Spec.Mode {
		return fmt.Errorf("policy %s is given twice with conflicting modes, %s (%s) and %s (%s); keep one: a set applies one mode per policy: %w",
			p.Metadata.Name, prev.Spec.Mode, where(prev), p.Spec.Mode, where(p), ErrConflict)
	}
	return fmt.Errorf("policy %s is given twice (%s and %s); policy names must be unique: %w",
		p.Metadata.Name, where(prev), where(p), ErrConflict)
}

// With returns a new set holding p, compiled, in place of any policy of the same name.
// s is not changed, so when With fails the caller keeps s in force and nothing is
// half-applied. Versions order the changes:
//
//   - p newer than the policy in s replaces it: this is how a policy is staged from
//     audit to warn to deny, each as a new version;
//   - p at the same version with the same mode and content changes nothing;
//   - p at the same version with another mode or content is ErrConflict;
//   - p older than the policy in s is ErrStale.
func (s *Set) With(p *Policy) (*Set, error) {
	if p == nil {
		return nil, fmt.Errorf("apply policy: nil policy")
	}
	name := p.Metadata.Name
	var old *compiled
	if s != nil {
		old = s.get(name)
	}
	if old != nil {
		switch {
		case p.Version < old.p.Version:
			return nil, fmt.Errorf("apply policy %s version %d: version %d is already in force: %w", name, p.Version, old.p.Version, ErrStale)
		case p.Version == old.p.Version && old.p.Spec.Mode != p.Spec.Mode:
			return nil, fmt.Errorf("apply policy %s version %d: conflicting modes: it is in force in mode %s; apply mode %s as a new version: %w",
				name, p.Version, old.p.Spec.Mode, p.Spec.Mode, ErrConflict)
		case p.Version == old.p.Version && !sameContent(old.p, p):
			return nil, fmt.Errorf("apply policy %s version %d: a different policy is in force at the same version; apply it as a new version: %w", name, p.Version, ErrConflict)
		case p.Version == old.p.Version:
			return s, nil
		}
	}
	var opts Options
	if s != nil {
		opts = s.opts
	}
	c, err := compile(p.clone(), opts.CostLimit)
	if err != nil {
		return nil, fmt.Errorf("compile policy %s: %w", name, err)
	}
	n := &Set{opts: opts}
	if s != nil {
		n.all = make([]*compiled, 0, len(s.all)+1)
		for _, x := range s.all {
			if x.p.Metadata.Name != name {
				n.all = append(n.all, x)
			}
		}
	}
	n.all = append(n.all, c)
	n.index()
	return n, nil
}

// Without returns a new set without the named policy (s itself if it has none).
func (s *Set) Without(name string) *Set {
	if s.get(name) == nil {
		return s
	}
	n := &Set{opts: s.opts}
	for _, x := range s.all {
		if x.p.Metadata.Name != name {
			n.all = append(n.all, x)
		}
	}
	n.index()
	return n
}

func sameContent(a, b *Policy) bool {
	return reflect.DeepEqual(a.Spec, b.Spec) && reflect.DeepEqual(a.Metadata, b.Metadata)
}

func (s *Set) index() {
	slices.SortFunc(s.all, func(a, b *compiled) int { return strings.Compare(a.p.Metadata.Name, b.p.Metadata.Name) })
	s.byTarget = [3][]*compiled{}
	for _, c := range s.all {
		i := targetIndex(c.p.Spec.Target)
		s.byTarget[i] = append(s.byTarget[i], c)
	}
}

func targetIndex(t Target) int {
	switch t {
	case TargetPlacement:
		return 1
	case TargetRuntime:
		return 2
	}
	return 0
}

func (s *Set) get(name string) *compiled {
	if s == nil {
		return nil
	}
	i, ok := slices.BinarySearchFunc(s.all, name, func(c *compiled, n string) int { return strings.Compare(c.p.Metadata.Name, n) })
	if !ok {
		return nil
	}
	return s.all[i]
}

// Len is the number of policies in s.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.all)
}

// Policies returns copies of the policies in s, by name.
func (s *Set) Policies() []*Policy {
	if s == nil {
		return nil
	}
	out := make([]*Policy, len(s.all))
	for i, c := range s.all {
		out[i] = c.p.clone()
	}
	return out
}

// Policy returns a copy of the named policy, or nil.
func (s *Set) Policy(name string) *Policy {
	if c := s.get(name); c != nil {
		return c.p.clone()
	}
	return nil
}

// only returns a set of just the named policy, sharing its compiled form, for case
// files that test one policy.
func (s *Set) only(name string) (*Set, bool) {
	c := s.get(name)
	if c == nil {
		return nil, false
	}
	n := &Set{opts: s.opts, all: []*compiled{c}}
	n.index()
	return n, true
}
