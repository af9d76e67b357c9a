package telemetry

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// InstanceSnapshot counts a reactor function version loaded with its instances starting
// from a snapshot (result "taken") or without one (result: why not, one of the sandbox's
// snapshot reason codes, a short fixed set). The counter has no function label, so it
// needs no forgetting; the node's log line names the function.
func (m *Metrics) InstanceSnapshot(result string) {
	if m == nil {
		return
	}
	m.snapshotOnce.Do(func() {
		m.snapshots = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fermion_instance_snapshots_total",
			Help: "Reactor function versions loaded, by whether new instances start from a snapshot (taken) or why they do not.",
		}, []string{"result"})
		if err := m.Registry.Register(m.snapshots); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				panic(err) // a malformed collector: a programming error
			}
			m.snapshots = are.ExistingCollector.(*prometheus.CounterVec)
		}
	})
	m.snapshots.WithLabelValues(result).Inc()
}
