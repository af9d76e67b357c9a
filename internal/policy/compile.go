package policy

import (
	"fermion.dev/fermion/internal/diag"

	"fmt"
	"strconv"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common"
	"cel.dev/cel-go/common/types"
)

// program is one compiled expression and where it came from.
type program struct {
	field string // "spec.validations[0].expression"
	text  string
	ast   *cel.Ast
	prg   cel.Program
}

type compiledValidation struct {
	expr    program
	msgExpr *program
	message string
	reason  string
}

type compiledConstraint struct {
	name   string
	prog   program
	reads  *nodeReads // nil: not memoizable
	reason string     // given for every node it excludes
	errMsg string     // given for every node it fails to evaluate on (failurePolicy Fail)
}

type compiledPreference struct {
	name   string
	weight float64
	prog   program
	reads  *nodeReads
}

// compiled is a policy with every expression type-checked, cost-checked and planned.
// It is immutable and shared between the sets that hold it.
type compiled struct {
	p           *Policy
	match       []program
	validations []compiledValidation
	constraints []compiledConstraint
	preferences []compiledPreference
}

// result kinds an expression must produce.
type want int

const (
	wantBool want = iota
	wantString
	wantScore // bool, int or double
)

func (w want) String() string {
	switch w {
	case wantString:
		return "a string"
	case wantScore:
		return "a number in [0, 1] or a bool"
	}
	return "a bool"
}

func (w want) accepts(t *cel.Type) bool {
	switch t.Kind() {
	case types.DynKind, types.AnyKind:
		return true // checked when evaluated
	case types.BoolKind:
		return w == wantBool || w == wantScore
	case types.StringKind:
		return w == wantString
	case types.IntKind, types.UintKind, types.DoubleKind:
		return w == wantScore
	}
	return false
}

// compile validates p as ParseFile does (applying defaults to p, which must be the
// caller's own copy), then type-checks, cost-checks and plans every expression. All
// problems are reported together as an *Error: of KindInvalid for the policy's shape,
// of KindCompile for its expressions.
func compile(p *Policy, limit uint64) (*compiled, error) {
	if limit == 0 {
		limit = DefaultCostLimit
	}
	d := &decoder{file: p.File}
	p.validate(d, nil)
	if err := d.err(); err != nil {
		return nil, err
	}
	c := &compiled{p: p}
	var probs []Problem
	build := func(s scope, field, text string, w want) program {
		prg, ps := p.compileExpr(s, field, text, w, limit)
		probs = append(probs, ps...)
		return prg
	}
	s := p.Spec
	matchScope, exprScope := scopeAdmission, scopeAdmission
	switch s.Target {
	case TargetPlacement:
		matchScope, exprScope = scopePlacementApp, scopePlacementNode
	case TargetRuntime:
		matchScope, exprScope = scopeRuntime, scopeRuntime
	}
	for i, m := range s.MatchConditions {
		c.match = append(c.match, build(matchScope, indexField("spec.matchConditions", i)+".expression", m.Expression, wantBool))
	}
	for i, v := range s.Validations {
		f := indexField("spec.validations", i)
		cv := compiledValidation{
			expr:    build(exprScope, f+".expression", v.Expression, wantBool),
			message: v.Message,
			reason:  v.Reason,
		}
		if v.MessageExpression != "" {
			m := build(exprScope, f+".messageExpression", v.MessageExpression, wantString)
			cv.msgExpr = &m
		}
		c.validations = append(c.validations, cv)
	}
	for i, k := range s.Constraints {
		f := indexField("spec.constraints", i)
		msg := k.Message
		if msg == "" {
			msg = "constraint " + k.Name + " not met"
		}
		prog := build(scopePlacementNode, f+".expression", k.Expression, wantBool)
		c.constraints = append(c.constraints, compiledConstraint{
			name:   k.Name,
			prog:   prog,
			reads:  prog.nodeReads(),
			reason: "policy " + p.Metadata.Name + ": " + msg,
			errMsg: "policy " + p.Metadata.Name + ": constraint " + k.Name + " failed to evaluate",
		})
	}
	for i, pr := range s.Preferences {
		f := indexField("spec.preferences", i)
		prog := build(scopePlacementNode, f+".expression", pr.Expression, wantScore)
		c.preferences = append(c.preferences, compiledPreference{
			name:   pr.Name,
			weight: pr.Weight,
			prog:   prog,
			reads:  prog.nodeReads(),
		})
	}
	if len(probs) > 0 {
		diag.Sort(probs)
		return nil, &Error{Kind: KindCompile, Problems: probs}
	}
	return c, nil
}

// compileExpr compiles one expression in scope s and checks its type and worst-case
// cost. Problems point into the policy file when p came from one.
func (p *Policy) compileExpr(s scope, field, text string, w want, limit uint64) (program, []Problem) {
	env := envFor(s)
	prog := program{field: field, text: text}
	ast, iss := env.Compile(text)
	if iss != nil && iss.Err() != nil {
		var probs []Problem
		for _, e := range iss.Errors() {
			probs = append(probs, p.celProblem(field, text, e, s))
		}
		return prog, probs
	}
	prog.ast = ast
	if t := ast.OutputType(); !w.accepts(t) {
		return prog, []Problem{p.exprProblem(field, fmt.Sprintf("must evaluate to %s, but its type is %s", w, cel.FormatCELType(t)))}
	}
	est, err := env.EstimateCost(ast, sizeEstimator{})
	if err != nil {
		return prog, []Problem{p.exprProblem(field, "cannot estimate its cost: "+err.Error())}
	}
	if est.Max > limit {
		return prog, []Problem{p.exprProblem(field, fmt.Sprintf(
			"worst-case cost %s exceeds the limit of %s per evaluation (lists are assumed to hold up to %d entries, artifact.imports %d); avoid nested loops over lists, or compare against a smaller list",
			costString(est.Max), costString(limit), defaultListHint, sizeHints["artifact.imports"]))}
	}
	prg, err := env.Program(ast, cel.CostLimit(limit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return prog, []Problem{p.exprProblem(field, "cannot plan: "+err.Error())}
	}
	prog.prg = prg
	return prog, nil
}

func costString(c uint64) string {
	if c == ^uint64(0) {
		return "unbounded"
	}
	s := strconv.FormatUint(c, 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// exprProblem is a problem with a whole expression, located where it starts.
func (p *Policy) exprProblem(field, msg string) Problem {
	file, line, col := p.where(field)
	if sp, ok := p.pos[field]; ok && sp.block {
		col = sp.indent + 1
	} else if ok && sp.quoted {
		col++
	}
	return Problem{File: file, Line: line, Col: col, Field: field, Msg: msg}
}

// celProblem maps a CEL error to the file: a position inside the expression becomes a
// line and column of the file, and the message quotes the expression with a caret.
func (p *Policy) celProblem(field, text string, e *common.Error, s scope) Problem {
	pr := Problem{File: p.File, Field: field}
	line, col := e.Location.Line(), e.Location.Column() // 1-based, 0-based (runes)
	msg := undeclaredHint(e.Message, s)
	if i := strings.Index(msg, " expecting {"); i > 0 && len(msg)-i > 60 {
		// The parser lists every token it could take; the caret says more.
		msg = msg[:i]
	}
	if line <= 0 {
		pr.Msg = msg
		return pr
	}
	if sp, ok := p.pos[field]; ok {
		pr.Line = sp.line + line - 1
		switch {
		case sp.block:
			pr.Col = sp.indent + col + 1
		case line == 1:
			pr.Col = sp.col + col
			if sp.quoted {
				pr.Col++
			}
		}
	}
	pr.Msg = fmt.Sprintf("%s (expression %d:%d)%s", msg, line, col+1, excerpt(text, line, col))
	return pr
}

// excerpt quotes line of text with a caret under col, as the CEL tools show errors.
func excerpt(text string, line, col int) string {
	lines := strings.Split(text, "\n")
	if line < 1 || line > len(lines) {
		return ""
	}
	l := []rune(strings.TrimRight(lines[line-1], "\r"))
	if len(l) > 160 {
		return ""
	}
	if col > len(l) {
		col = len(l)
	}
	pad := make([]rune, col)
	for i := range pad {
		pad[i] = '.'
		if l[i] == '\t' {
			pad[i] = '\t'
		}
	}
	return "\n    | " + string(l) + "\n    | " + string(pad) + "^"
}

func (p program) nodeReads() *nodeReads {
	if p.ast == nil {
		return nil
	}
	return readsOfNode(p.ast.NativeRep())
}
