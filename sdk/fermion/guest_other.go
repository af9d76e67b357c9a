//go:build !wasip1

package fermion

import (
	"errors"
	"os"
)

var stderr = os.Stderr

// send is only available inside a Fermion host; natively the SDK compiles so that
// function code can be vetted and unit-tested, but outbound calls fail.
func send([]byte) ([]byte, error) {
	return nil, errors.New("outbound HTTP is only available when running inside Fermion (GOOS=wasip1)")
}
