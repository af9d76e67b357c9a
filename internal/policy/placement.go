package policy

import (
	"maps"
	"math"
	"strings"

	"cel.dev/cel-go/common/types"
)

// NodeConstraint is a hard placement filter, shaped like the scheduler's Constraint
// but over a NodeInput, so that this package need not import the scheduler. Match
// reports false with a reason that is the same for every node it excludes (e.g.
// "policy data-residency: node region not in EU list"), so the scheduler's counted
// explanation groups them. It is safe for concurrent use.
type NodeConstraint interface {
	Name() string
	Match(n *NodeInput) (ok bool, reason string)
}

// NodePreference is a soft placement score in [0,1] weighed by Weight, shaped like the
// scheduler's Preference but over a NodeInput. It is safe for concurrent use.
type NodePreference interface {
	Name() string
	Weight() float64
	Score(n *NodeInput) float64
}

// Placement returns the constraints and preferences that the placement policies of s
// in mode deny impose on app, for the scheduler's filter and score steps. A policy
// whose matchConditions are false for app contributes nothing; one whose
// matchConditions fail to evaluate applies anyway under failurePolicy Fail and not at
// all under Ignore. A constraint that fails to evaluate on a node excludes it under
// Fail (with reason "policy P: constraint C failed to evaluate") and lets it pass
// under Ignore; a preference that fails scores 0.
//
// Placement policies in mode warn or audit impose nothing here: ExplainPlacement
// reports what they would exclude, which is how they are staged.
func (s *Set) Placement(app AppInput) (constraints []NodeConstraint, prefs []NodePreference) {
	if s == nil {
		return nil, nil
	}
	a := copyApp(app)
	for _, c := range s.byTarget[1] {
		if c.p.Spec.Mode != ModeDeny || !c.appliesTo(a) {
			continue
		}
		ignore := c.p.Spec.FailurePolicy == Ignore
		for i := range c.constraints {
			k := &c.constraints[i]
			constraints = append(constraints, &celConstraint{
				name:   "policy:" + c.p.Metadata.Name + "/" + k.name,
				c:      k,
				app:    a,
				ignore: ignore,
				memo:   newMemo[matchResult](k.reads),
			})
		}
		for i := range c.preferences {
			pr := &c.preferences[i]
			prefs = append(prefs, &celPreference{name: "policy:" + c.p.Metadata.Name + "/" + pr.name, c: pr, app: a, memo: newMemo[float64](pr.reads)})
		}
	}
	return constraints, prefs
}

// copyApp keeps the constraints independent of the caller's later changes to app.
func copyApp(app AppInput) *AppInput {
	app.Labels = maps.Clone(app.Labels)
	return &app
}

// appliesTo evaluates the matchConditions, which see only app. A failure counts as a
// match under Fail (the policy is enforced) and as no match under Ignore.
func (c *compiled) appliesTo(app *AppInput) bool {
	act := &placementVars{app: app}
	for i := range c.match {
		ok, err := evalBool(c.match[i].prg, act)
		if err != nil {
			return c.p.Spec.FailurePolicy != Ignore
		}
		if !ok {
			return false
		}
	}
	return true
}

type celConstraint struct {
	name   string
	c      *compiledConstraint
	app    *AppInput
	ignore bool
	memo   *memo[matchResult] // nil when the expression is not memoizable
}

type matchResult struct {
	ok     bool
	reason string
}

func (k *celConstraint) Name() string { return k.name }

func (k *celConstraint) Match(n *NodeInput) (bool, string) {
	r := k.memo.get(n, func() matchResult { return k.match(n) })
	return r.ok, r.reason
}

func (k *celConstraint) match(n *NodeInput) matchResult {
	ok, err := evalBool(k.c.prog.prg, &placementVars{app: k.app, node: n})
	switch {
	case err != nil && k.ignore:
		return matchResult{ok: true}
	case err != nil:
		return matchResult{reason: k.c.errMsg}
	case !ok:
		return matchResult{reason: k.c.reason}
	}
	return matchResult{ok: true}
}

type celPreference struct {
	name string
	c    *compiledPreference
	app  *AppInput
	memo *memo[float64]
}

func (p *celPreference) Name() string    { return p.name }
func (p *celPreference) Weight() float64 { return p.c.weight }

func (p *celPreference) Score(n *NodeInput) float64 {
	return p.memo.get(n, func() float64 { return p.score(n) })
}

func (p *celPreference) score(n *NodeInput) float64 {
	out, _, err := p.c.prog.prg.Eval(&placementVars{app: p.app, node: n})
	if err != nil {
		return 0
	}
	var f float64
	switch v := out.(type) {
	case types.Bool:
		if v {
			f = 1
		}
	case types.Int:
		f = float64(v)
	case types.Uint:
		f = float64(v)
	case types.Double:
		f = float64(v)
	}
	if math.IsNaN(f) {
		return 0
	}
	return min(max(f, 0), 1)
}

// Exclusion counts the nodes one placement constraint excludes, for explaining an
// unsatisfiable placement or staging a policy in audit mode.
type Exclusion struct {
	Policy     string
	Version    int
	Mode       Mode
	Constraint string
	Reason     string // as Match gives it
	Excluded   int    // nodes for which the constraint was false
	Errors     int    // nodes on which it failed to evaluate (excluded under Fail)
}

// ExplainPlacement evaluates every constraint of every placement policy that applies
// to app, whatever its mode, against nodes and counts what each excludes. Constraints
// are listed by policy name, in file order.
func (s *Set) ExplainPlacement(app AppInput, nodes []NodeInput) []Exclusion {
	if s == nil {
		return nil
	}
	a := copyApp(app)
	var out []Exclusion
	for _, c := range s.byTarget[1] {
		if !c.appliesTo(a) {
			continue
		}
		for i := range c.constraints {
			k := &c.constraints[i]
			e := Exclusion{Policy: c.p.Metadata.Name, Version: c.p.Version, Mode: c.p.Spec.Mode, Constraint: k.name, Reason: k.reason}
			type result struct{ ok, failed bool }
			m := newMemo[result](k.reads)
			for j := range nodes {
				r := m.get(&nodes[j], func() result {
					ok, err := evalBool(k.prog.prg, &placementVars{app: a, node: &nodes[j]})
					return result{ok: ok, failed: err != nil}
				})
				switch {
				case r.failed:
					e.Errors++
				case !r.ok:
					e.Excluded++
				}
			}
			out = append(out, e)
		}
	}
	return out
}

// CheckNode is the placement decision for one node as a Decision: a violation, in
// the policy's mode, for each constraint node fails. Case files use it; so can an
// operator asking why a node was left out.
func (s *Set) CheckNode(app AppInput, node NodeInput) Decision {
	d := Decision{Allowed: true}
	if s == nil {
		return d
	}
	a := copyApp(app)
	for _, c := range s.byTarget[1] {
		if !c.appliesTo(a) {
			continue
		}
		for i := range c.constraints {
			k := &c.constraints[i]
			ok, err := evalBool(k.prog.prg, &placementVars{app: a, node: &node})
			if err == nil && ok || err != nil && c.p.Spec.FailurePolicy == Ignore {
				continue
			}
			msg := k.reason
			if err != nil {
				msg = k.errMsg + ": " + err.Error()
			}
			d.add(Violation{
				Policy:  c.p.Metadata.Name,
				Version: c.p.Version,
				Mode:    c.p.Spec.Mode,
				Message: strings.TrimPrefix(msg, "policy "+c.p.Metadata.Name+": "),
				Reason:  "Forbidden",
				Field:   k.prog.field,
				Error:   err != nil,
			})
		}
	}
	d.Allowed = len(d.Denials) == 0
	return d
}
