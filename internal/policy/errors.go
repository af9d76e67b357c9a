package policy

import (
	"fermion.dev/fermion/internal/diag"

	"errors"
	"reflect"
)

// Problem is one thing wrong with a policy or case file.
type Problem = diag.Problem

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
	return diag.Join(e.Problems)
}

// Errors Set.With and NewSet return (wrapped, with the policy named), for errors.Is.
var (
	// ErrConflict: the set already holds this policy name at this version with a
	// different mode or content. A change of mode is applied as a new version.
	ErrConflict = errors.New("conflicting policy")
	// ErrStale: the set holds a newer version of this policy.
	ErrStale = errors.New("stale policy version")
)

func reflectValue(p any) reflect.Value { return reflect.ValueOf(p).Elem() }
