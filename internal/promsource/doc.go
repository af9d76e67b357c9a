// Package promsource reads canary-analysis samples from a Prometheus server: a
// rollout.Metrics for operators who already scrape their nodes, in place of the
// control plane's fleet SLI store.
//
// It works like Flagger's metric templates. Each field of a rollout.Sample (requests,
// 5xx errors, cold starts, traps and timeouts, the latency histogram) has a PromQL
// query written as a Go text/template over the app, the version and the window; the
// defaults read Fermion's own metrics (docs/telemetry.md), and an operator overrides
// them in a small TOML file (ParseConfig). Samples runs each query through the HTTP
// API's instant query endpoint (/api/v1/query) at the window's end, so an increase(…[w])
// covers exactly the window.
//
// The latency histogram comes back as cumulative counts per `le` bound; they are turned
// into an sli.Sketch by spreading each bucket's count evenly over the bucket, which is
// the assumption Prometheus's own histogram_quantile makes (histogram.go says what that
// costs the analysis' quantile checks).
//
// Nothing here keeps state between calls; a Source is safe for concurrent use.
package promsource
