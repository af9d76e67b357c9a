// Package notify delivers alerts to the tools on-call people already use: Alertmanager
// through its v2 API (POST /api/v2/alerts) and generic JSON webhooks.
//
// A Notifier owns one goroutine per receiver, started by Run and stopped by cancelling
// its context (Close waits for them). Each receiver has a bounded queue of alert states,
// one entry per alert (a newer state of the same alert replaces the queued one), so a
// receiver that is down costs memory bounded by the queue, not by how long it is down;
// past the bound the oldest entry is dropped and counted. Failed posts are retried with
// exponential backoff. While an alert fires, Alertmanager receivers get it again every
// ResendInterval with endsAt four intervals ahead, as Prometheus does, so Alertmanager
// resolves it on its own if Fermion goes away; a resolution carries endsAt.
//
// The Alert type is this package's own (labels, annotations, start and end); FromSLO
// adapts the SLO engine's transitions to it.
package notify
