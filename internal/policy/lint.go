package policy

import (
	"fermion.dev/fermion/internal/diag"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
)

// Finding is something valid but probably wrong in a policy.
type Finding = Problem

// Lint compiles p (returning the compile error, if any) and reports what is valid
// but suspicious: an expression that is constant after folding, such as a
// matchCondition that is always false (the policy matches nothing) or a validation
// that is always true (it never objects), and a deny policy that fails open.
func Lint(p *Policy) ([]Finding, error) {
	refuse, warn, err := Vet(p)
	if err != nil {
		return nil, err
	}
	out := append(refuse, warn...)
	diag.Sort(out)
	return out, nil
}

// Vet is Lint for applying a policy. It splits the findings into those that make the
// policy pointless to apply — a matchCondition that is always false, so the policy
// never applies to anything — which the control plane refuses, and the rest, which
// it reports as warnings. err is the compile error, if any.
func Vet(p *Policy) (refuse, warn []Finding, err error) {
	p = p.clone()
	c, err := compile(p, 0)
	if err != nil {
		return nil, nil, err
	}
	add := func(prog program, msg string) {
		warn = append(warn, p.exprProblem(prog.field, msg))
	}
	s := p.Spec
	matchScope, exprScope := scopeAdmission, scopeAdmission
	switch s.Target {
	case TargetPlacement:
		matchScope, exprScope = scopePlacementApp, scopePlacementNode
	case TargetRuntime:
		matchScope, exprScope = scopeRuntime, scopeRuntime
	}
	for _, m := range c.match {
		switch constant(matchScope, m.ast) {
		case types.False:
			refuse = append(refuse, p.exprProblem(m.field, "matches nothing: this matchCondition is always false, so the policy never applies"))
		case types.True:
			add(m, "is always true; remove it")
		}
	}
	for _, v := range c.validations {
		switch constant(exprScope, v.expr.ast) {
		case types.False:
			add(v.expr, "is always false: every input the policy matches is a violation")
		case types.True:
			add(v.expr, "is always true: the validation never objects")
		}
	}
	for _, k := range c.constraints {
		switch constant(scopePlacementNode, k.prog.ast) {
		case types.False:
			add(k.prog, "is always false: the constraint excludes every node")
		case types.True:
			add(k.prog, "is always true: the constraint excludes no node")
		}
	}
	if s.Mode == ModeDeny && s.FailurePolicy == Ignore && s.Target != TargetPlacement {
		warn = append(warn, Finding{File: p.File, Field: "spec.failurePolicy",
			Msg: "Ignore in mode deny fails open: an expression that errors lets the request through; use Fail unless that is intended"})
	}
	diag.Sort(refuse)
	diag.Sort(warn)
	return refuse, warn, nil
}

// constant folds a checked expression and returns its value if it is a constant
// bool, or nil.
func constant(s scope, a *cel.Ast) any {
	if a == nil {
		return nil
	}
	env := envFor(s)
	folder, err := cel.NewConstantFoldingOptimizer()
	if err != nil {
		return nil
	}
	opt, err := cel.NewStaticOptimizer(folder)
	if err != nil {
		return nil
	}
	folded, iss := opt.Optimize(env, a)
	if iss != nil && iss.Err() != nil {
		return nil
	}
	e := folded.NativeRep().Expr()
	if e.Kind() != celast.LiteralKind {
		return nil
	}
	switch e.AsLiteral() {
	case types.True:
		return types.True
	case types.False:
		return types.False
	}
	return nil
}
