// Package threadusage reads what the calling OS thread has used so far: its CPU time and
// its page faults. Benchmarks (the sandbox's and fermion-bench's) measure with them
// because, on a machine shared with other work, a thread's own CPU clock leaves out the
// time it waited for a core, which wall time counts. Lock the goroutine to its thread
// (runtime.LockOSThread) around the work measured, and take differences of two reads.
//
// Where the platform has no per-thread counters, Measured is false and both readers
// return zero, so callers print zeros or leave the figure out rather than a wrong one.
package threadusage
