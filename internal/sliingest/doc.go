// Package sliingest is the control plane's receive path for SLI summaries: it answers
// an agent's v1.SLIBatch (subject v1.SubjectSLIs), checks every summary on its own —
// well-formed, from the sending node, for a version the node runs or lately ran, dated
// within the clock-skew bound — and publishes each accepted one into the JetStream
// stream v1.StreamSLIs (subject v1.SubjectSLIStream(node), header Nats-Msg-Id =
// v1.SLIMsgID) before it acknowledges it. A bad summary is refused and counted
// (fermion_sli_refused_total{reason}); the node's other summaries are kept.
//
// It holds narrow dependencies given at construction (a JetStream handle, a function
// naming what a node runs, a clock, a logger, a metrics registerer), so the control
// plane only constructs it and routes the subject to Handle. See docs/sli.md,
// "Transport, buffering and backfill".
package sliingest
