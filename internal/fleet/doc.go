// Package fleet is the control plane's SLI store: it folds the SLI summaries every node
// publishes (internal/sli) into windowed aggregates per app (deployment), version and
// node, answers the fleet queries behind GET /v1/slis and `fermion top`, and implements
// slo.Source for the SLO engine.
//
// The Store is pure (no clock, no I/O: callers pass now) and keeps three tiers so that
// memory stays bounded (docs/sli.md, "The store"):
//
//   - detail: each node's raw intervals (10 s), for DetailRetention (15 min), so that
//     short windows ("the last 5 minutes") are exact to the interval;
//   - local windows: the same summaries merged into 5-minute windows per (app, version,
//     node), for RawRetention (6 h, the raw stream's age);
//   - rollups: 5-minute windows read back from the FERMION_SLIS_5M stream (30 days),
//     which the leader writes from its local windows, so that SLO windows longer than
//     the raw stream's age survive restarts and failovers.
//
// Beside them a group tier (agg.go) merges the detail tier per (app, version, region,
// zone) at ingest; queries that do not reach into nodes read it when its answer is
// provably the per-node one, so `fermion top` does not walk every node's series.
//
// The adapter in stream.go consumes both JetStream streams with ordered consumers from
// their start on every replica, so a restarted replica rebuilds the same store.
package fleet
