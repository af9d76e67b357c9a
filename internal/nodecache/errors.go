package nodecache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
)

// ErrUnavailable is what a Fetcher returns (wrapped) when the registry cannot be reached.
// Network errors (net.Error), context.DeadlineExceeded and io.ErrUnexpectedEOF (a
// connection lost mid-answer) count as unavailability too; any other error, such as
// "manifest unknown" or "unauthorized", does not.
var ErrUnavailable = errors.New("registry unavailable")

// Code classifies a Get failure. Callers branch on it, never on the message text.
type Code string

const (
	// CodeInvalid: the Ref is malformed (no repository, no tag or digest, bad digest).
	CodeInvalid Code = "invalid"
	// CodeUnavailable: the registry is unreachable and nothing usable is cached.
	CodeUnavailable Code = "unavailable"
	// CodeRejected: the artifact failed verification; Reason says which check.
	CodeRejected Code = "rejected"
	// CodeTooLarge: the artifact alone is bigger than the cache.
	CodeTooLarge Code = "too_large"
	// CodeCacheFull: pinned artifacts leave no room for this one.
	CodeCacheFull Code = "cache_full"
)

// Verification failure reasons, the values of the reason label of
// fermion_artifact_verify_failures_total. A Verifier may add its own through a
// Reason() string method on its errors (see Verifier).
const (
	ReasonDigestMismatch = "digest_mismatch" // layer or config bytes (or the resolved manifest) do not match the digest
	ReasonTamperedLayer  = "tampered_layer"  // layer or config longer or shorter than its descriptor's size
	ReasonSignature      = "signature"       // the Verifier refused the manifest
	ReasonCorruptCache   = "corrupt_cache"   // a cached blob failed its re-check on read
)

// Error is a Get failure with a stable Code.
type Error struct {
	Code   Code
	Reason string // for CodeRejected: one of the Reason* values or the Verifier's reason
	Msg    string
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Msg, e.Err)
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// CodeOf returns the Code of the *Error in err's chain, or "" if there is none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func rejected(reason, format string, args ...any) *Error {
	return &Error{Code: CodeRejected, Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// isUnavailable reports whether err means the registry could not be reached, as opposed
// to the registry answering no. context.Canceled is not unavailability: the caller left.
func isUnavailable(err error) bool {
	if errors.Is(err, ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// registryErr wraps a Resolve or Fetch failure, marking unavailability with a Code so the
// tag path can fall back to the cache.
func registryErr(op string, err error) error {
	if isUnavailable(err) {
		return &Error{Code: CodeUnavailable, Msg: "registry is unreachable and nothing is cached",
			Err: fmt.Errorf("%s: %w", op, err)}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// reasonPattern bounds the label values a Verifier can introduce.
var reasonPattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// verifyReason is the metric reason for a Verifier error: its Reason() when it has a
// well-formed one, "signature" otherwise.
func verifyReason(err error) string {
	var r interface{ Reason() string }
	if errors.As(err, &r) && reasonPattern.MatchString(r.Reason()) {
		return r.Reason()
	}
	return ReasonSignature
}
