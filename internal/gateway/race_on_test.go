//go:build race

package gateway_test

// raceEnabled: under the race detector sync.Pool drops a share of what is put back, so
// the pooled log buffers are allocated anew and allocation counts mean nothing.
const raceEnabled = true
