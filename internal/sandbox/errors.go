package sandbox

import (
	"fmt"
	"net/http"
)

// Error is a request failure the gateway turns into an HTTP status. Reason is one of the
// bounded telemetry reasons (telemetry.Reason* or telemetry.Limit*).
type Error struct {
	Status int    // HTTP status for the client
	Reason string // metric label value
	Msg    string // safe to show the client
	// RetryAfter, when positive, is sent as Retry-After (seconds).
	RetryAfter int
	Err        error
	// Cold is true when the request waited for a new instance (which then failed to
	// start, or failed the request): the gateway's SLIs count it as a cold start.
	Cold bool
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Msg, e.Err)
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

func errOverloaded(id string, n int) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Reason: "concurrency", RetryAfter: 1,
		Msg: fmt.Sprintf("function %s is at its concurrency limit (%d); retry later", id, n)}
}

func errClosed(id string) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Reason: "closed", RetryAfter: 1,
		Msg: fmt.Sprintf("function %s is shutting down", id)}
}
