// Package bench holds Fermion's benchmarks: Go micro-benchmarks of the request path
// (this package's tests) and the fermion-bench harness (cmd/fermion-bench) that measures
// the DESIGN.md budgets against baselines in the same run. Results: RESULTS.md.
package bench
