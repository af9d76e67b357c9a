// Package dashboards is the one definition of Fermion's three dashboards — executive,
// on-call and debug, as the seed names them — and renders it two ways: Grafana JSON
// (deploy/grafana) and the PromQL tables of docs/telemetry.md. Both are generated, so
// they cannot drift from each other; a test fails when the committed files differ
// from what this package renders, and says the command that regenerates them:
//
//	go generate ./internal/dashboards
//
// The package is pure: it renders bytes and leaves reading and writing files to gen.
package dashboards

//go:generate go run ./gen -root ../..
