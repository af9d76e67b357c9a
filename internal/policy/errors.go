package policy

import (
	"errors"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a policy or case file. Line and Col are 1-based and
// zero when unknown.
type Problem struct {
	File  string
	Line  int
	Col   int
	Field string // path such as "spec.validations[0].expression"
	Msg   string // what is wrong and how to fix it; may span lines (a CEL excerpt)
}

// String renders the problem as "file:line:col: field: msg", the form editors jump to.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteString(":" + strconv.Itoa(p.Line))
		if p.Col > 0 {
			b.WriteString(":" + strconv.Itoa(p.Col))
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error carries every problem found in one file, so a user fixes them in one edit.
// Kind says which stage found them.
type Error struct {
	Kind     ErrorKind
	Problems []Problem
}

// ErrorKind classifies an *Error, for the API's stable error codes.
type ErrorKind int

const (
	// KindInvalid: the file is not a well-formed policy (YAML, fields, values, sizes).
	KindInvalid ErrorKind = iota
	// KindCompile: an expression does not parse, type-check or fit the cost limit.
	KindCompile
)

func (e *Error) Error() string {
	if e == nil || len(e.Problems) == 0 {
		return "invalid policy"
	}
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Errors Set.With and NewSet return (wrapped, with the policy named), for errors.Is.
var (
	// ErrConflict: the set already holds this policy name at this version with a
	// different mode or content. A change of mode is applied as a new version.
	ErrConflict = errors.New("conflicting policy")
	// ErrStale: the set holds a newer version of this policy.
	ErrStale = errors.New("stale policy version")
)

// sortProblems orders problems by position; those without a line go last.
func sortProblems(ps []Problem) {
	key := func(p Problem) int {
		if p.Line == 0 {
			return int(^uint(0) >> 1)
		}
		return p.Line
	}
	sort.SliceStable(ps, func(i, j int) bool {
		li, lj := key(ps[i]), key(ps[j])
		if li != lj {
			return li < lj
		}
		return ps[i].Col < ps[j].Col
	})
}

func reflectValue(p any) reflect.Value { return reflect.ValueOf(p).Elem() }
