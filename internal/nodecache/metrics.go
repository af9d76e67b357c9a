package nodecache

import (
	"github.com/prometheus/client_golang/prometheus"

	"fermion.dev/fermion/internal/telemetry"
)

type metrics struct {
	verifyFailures *prometheus.CounterVec // reason
	hits           prometheus.Counter
	misses         prometheus.Counter
	evictions      prometheus.Counter
	staleServed    prometheus.Counter
	bytes          prometheus.Gauge
}

// newMetrics creates the collectors and registers them on reg (nil: not exported). A
// collector already registered there, by an earlier Cache of this process, is reused.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		verifyFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fermion_artifact_verify_failures_total",
			Help: "Artifacts refused before reaching the sandbox, by reason (digest_mismatch, tampered_layer, signature or the verifier's reason, corrupt_cache).",
		}, []string{"reason"}),
		hits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fermion_artifact_cache_hits_total",
			Help: "Artifact requests served from the node cache (stale ones included).",
		}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fermion_artifact_cache_misses_total",
			Help: "Artifact requests that had to download the module.",
		}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fermion_artifact_cache_evictions_total",
			Help: "Unpinned artifacts evicted, least recently used first, to stay within the cache size.",
		}),
		staleServed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fermion_artifact_cache_stale_served_total",
			Help: "Tag requests served from the cache because the registry was unreachable.",
		}),
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fermion_artifact_cache_bytes",
			Help: "Bytes of blobs (modules and their configs) held in the node cache.",
		}),
	}
	for _, r := range []string{ReasonDigestMismatch, ReasonTamperedLayer, ReasonSignature, ReasonCorruptCache} {
		m.verifyFailures.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.verifyFailures, err = register(reg, m.verifyFailures); err != nil {
		return nil, err
	}
	for _, c := range []*prometheus.Counter{&m.hits, &m.misses, &m.evictions, &m.staleServed} {
		if *c, err = register(reg, *c); err != nil {
			return nil, err
		}
	}
	if m.bytes, err = register(reg, m.bytes); err != nil {
		return nil, err
	}
	return m, nil
}

func register[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	return telemetry.Register(reg, c)
}
