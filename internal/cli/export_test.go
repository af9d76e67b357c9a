package cli

import "io"

// SetTerminal makes the verbs that prompt take their input for a terminal or not,
// until the test ends.
func SetTerminal(cleanup func(func()), is bool) {
	old := isTerminal
	isTerminal = func(io.Reader) bool { return is }
	cleanup(func() { isTerminal = old })
}
