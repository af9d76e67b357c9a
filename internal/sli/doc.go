// Package sli aggregates service-level indicators on an agent into per-interval
// summaries the control plane can merge: requests by status class, a mergeable latency
// sketch, cold starts, instance starts and discards by reason, memory, CPU time, limit
// rejections, outbound errors, policy denials and the node's telemetry backlog, per
// (deployment, version, route).
//
// It is pure: no clocks, no I/O, no goroutines. The caller owns the ticker and the
// transport:
//
//	agg := sli.NewAggregator(sli.Config{Node: "n1", Start: sli.Boundary(now, 10*time.Second)})
//	h := agg.Series(key)                       // once per route of a version
//	h.Record(200, latency, cold)               // request path: no allocation in the steady state
//	for _, s := range agg.Flush(next) { buf.Push(sli.EncodeSummary(nil, s)) }
//	for _, b := range buf.Oldest(64) { publish(b) } ; buf.Ack(n)   // backfill in order
//
// The latency sketch ([Sketch]) has fixed logarithmic buckets with a relative accuracy of
// [RelativeAccuracy], so merging sketches from many nodes and intervals and then asking
// for a quantile is exact to that bound: fleet p99 is never an average of percentiles.
// Counts merge exactly; [Downsample] folds raw intervals into coarser ones for long SLO
// windows. The wire format ([EncodeSummary], [DecodeSummary]) is a versioned, compact
// binary encoding described in docs/sli.md; its decoder refuses malformed, inconsistent
// or oversized input with an error that says which field is wrong.
package sli
