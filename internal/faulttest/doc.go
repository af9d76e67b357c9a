// Package faulttest runs the control plane's fault suite against real `fermion`
// processes on loopback: the binary is built once per test run, three `fermion server`
// replicas form a cluster in temporary directories on random ports, and the tests kill,
// stop and resume them (SIGKILL, SIGSTOP, SIGCONT) while agents renew their leases and
// clients write. Each case logs its figures; docs/control-plane.md records them.
// The suite is skipped with -short.
package faulttest
