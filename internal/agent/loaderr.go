package agent

import (
	"errors"

	"fermion.dev/fermion/internal/telemetry"
)

// LoadError is a function version that could not be made to serve. Reason, one of
// telemetry.Load*, is the step that failed: what fermion_load_failures_total counts and
// what decides how soon the agent tries again.
type LoadError struct {
	Reason string
	Err    error
}

func (e *LoadError) Error() string { return e.Reason + ": " + e.Err.Error() }

func (e *LoadError) Unwrap() error { return e.Err }

// LoadReason is the Reason of the LoadError in err's chain; telemetry.LoadModule when
// there is none (the sandbox refused the module).
func LoadReason(err error) string {
	var le *LoadError
	if errors.As(err, &le) {
		return le.Reason
	}
	return telemetry.LoadModule
}

// loadFailed wraps err as a LoadError for reason (unless it is one already, whose reason
// stands) and counts it in m.
func loadFailed(m *telemetry.Metrics, reason string, err error) error {
	var le *LoadError
	if errors.As(err, &le) {
		m.LoadFailure(le.Reason)
		return err
	}
	m.LoadFailure(reason)
	return &LoadError{Reason: reason, Err: err}
}
