package telemetry

import "github.com/prometheus/client_golang/prometheus"

// ReasonWarmup is an instance discarded because it failed its version's warmup hook
// (manifest component.warmup) before it took any traffic, and a request refused (503)
// because the new instance it waited for failed it.
const ReasonWarmup = "warmup"

// LoadWarmup is a version that failed to load because the instances it prewarms failed
// their warmup hook (fermion_load_failures_total's reason; the node's status for the
// version then starts "warmup:").
const LoadWarmup = "warmup"

// Results of fermion_instance_warmups_total.
const (
	WarmupOK     = "ok"
	WarmupFailed = "failed"
)

// newWarmupMetrics makes fermion_instance_warmups_total: a version's series appear with
// its first warmup, so versions without a hook export none.
func (m *Metrics) newWarmupMetrics() prometheus.Collector {
	m.warmups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fermion_instance_warmups_total",
		Help: "Warmup hook calls on new instances, by result (ok, failed: the instance was discarded).",
	}, []string{"function", "version", "result"})
	return m.warmups
}

// Warmup counts one warmup hook call on a new instance: result WarmupOK or WarmupFailed.
func (f *FunctionMetrics) Warmup(result string) {
	if f == nil {
		return
	}
	f.m.warmups.WithLabelValues(f.name, f.version, result).Inc()
}
