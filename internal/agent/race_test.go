//go:build race

package agent_test

// raceEnabled: the race detector slows the wasm compiler tenfold or more.
const raceEnabled = true
