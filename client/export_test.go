package client

// SetLimits lowers the read limits for a test and returns a function restoring them.
func SetLimits(response int64, event int) (restore func()) {
	r, e := maxResponseBytes, maxEventBytes
	maxResponseBytes, maxEventBytes = response, event
	return func() { maxResponseBytes, maxEventBytes = r, e }
}
