//go:build race

package sandbox_test

// raceEnabled: the race detector's runtime needs memory of its own, which a compile
// worker's rlimit refuses before Go's runtime gets to say it is out of memory.
const raceEnabled = true
