package policy

import (
	"fmt"
	"slices"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/ext"
)

// Selector is a deployment's node selector: a CEL expression over the node's labels,
// each label a string variable (`region == "eu-west" && tier in ["edge", "core"]`).
// A node that lacks a label the expression names does not match.
type Selector struct {
	src    string
	labels []string // the identifiers the expression reads
	prg    cel.Program
}

// maxSelectorBytes bounds a selector's source.
const maxSelectorBytes = 4096

// CompileSelector compiles a selector; the error names the position of the fault.
func CompileSelector(src string) (*Selector, error) {
	if len(src) > maxSelectorBytes {
		return nil, fmt.Errorf("selector: longer than %d bytes", maxSelectorBytes)
	}
	base, err := cel.NewEnv(ext.Strings())
	if err != nil {
		return nil, fmt.Errorf("selector: %w", err)
	}
	parsed, iss := base.Parse(src)
	if iss.Err() != nil {
		return nil, fmt.Errorf("selector %q: %s", src, iss.Err())
	}
	// Every free identifier is a label: declare each as a string.
	var idents []string
	nav := ast.NavigateAST(parsed.NativeRep())
	for _, e := range ast.MatchDescendants(nav, ast.KindMatcher(ast.IdentKind)) {
		if name := e.AsIdent(); !slices.Contains(idents, name) {
			idents = append(idents, name)
		}
	}
	slices.Sort(idents)
	opts := []cel.EnvOption{}
	for _, id := range idents {
		opts = append(opts, cel.Variable(id, cel.StringType))
	}
	env, err := base.Extend(opts...)
	if err != nil {
		return nil, fmt.Errorf("selector: %w", err)
	}
	checked, iss := env.Compile(src)
	if iss.Err() != nil {
		return nil, fmt.Errorf("selector %q: %s", src, iss.Err())
	}
	if checked.OutputType() != cel.BoolType {
		return nil, fmt.Errorf("selector %q: evaluates to %s, want a bool", src, checked.OutputType())
	}
	prg, err := env.Program(checked, cel.CostLimit(DefaultCostLimit))
	if err != nil {
		return nil, fmt.Errorf("selector %q: %w", src, err)
	}
	return &Selector{src: src, labels: idents, prg: prg}, nil
}

// String is the selector's source.
func (s *Selector) String() string { return s.src }

// Match reports whether a node with these labels matches. A missing label, or an
// evaluation error, is no match.
func (s *Selector) Match(labels map[string]string) bool {
	vars := make(map[string]any, len(s.labels))
	for _, l := range s.labels {
		v, ok := labels[l]
		if !ok {
			return false
		}
		vars[l] = v
	}
	out, _, err := s.prg.Eval(vars)
	if err != nil {
		return false
	}
	return out == types.True
}
