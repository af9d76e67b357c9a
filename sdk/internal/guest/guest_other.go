//go:build !wasip1

package guest

import "errors"

// Send is only available inside a Fermion host; natively the SDK compiles so that
// function code can be vetted and unit-tested, but outbound calls fail.
func Send([]byte) ([]byte, error) {
	return nil, errors.New("outbound HTTP is only available when running inside Fermion (GOOS=wasip1)")
}
