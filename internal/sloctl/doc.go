// Package sloctl is the control plane's SLO adapter: it stores SLO specs (versioned,
// like policies), runs the leader's SLO engine around the pure internal/slo, and
// answers the SLO and alert views of the API.
//
// Every tick (default 10 s) the replica acting as leader reads the SLO specs (a watched
// copy of the fermion_slos bucket), the last alert state and the expected marks,
// calls slo.Evaluate over the SLI store (a slo.Source given at construction), and
// writes the new state to fermion_slo_state BEFORE anything is told: the write is a
// compare-and-swap on the record's revision and carries the leader's term, and a record
// holding a newer term is never overwritten, so a deposed leader cannot write over its
// successor's state. Only then do the transitions become events, metrics and
// notifications. A new leader starts from the stored state: an alert that was firing
// stays firing (no second page: no transition), and it re-sends every firing alert,
// which Alertmanager deduplicates by its labels. Budgets come from the SLI store, never
// from a leader's memory, so a failover loses none.
//
// The package holds narrow dependencies passed in at construction (a JetStream handle,
// the Source, the leader's term, an event recorder, the deployments' names and labels),
// so it can be tested against an embedded NATS server with slo.Intervals as its SLIs.
package sloctl
