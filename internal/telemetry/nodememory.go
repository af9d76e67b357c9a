package telemetry

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// NodeMemory publishes the memory a node offers to functions (0: no limit) and what its
// live instances hold of it, read from held when scraped. Only the first engine
// recording into m is published: a data plane has one.
func (m *Metrics) NodeMemory(offered int64, held func() int64) {
	if m == nil {
		return
	}
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "fermion_node_memory_offered_bytes",
			Help: "Memory the node offers to functions (its advertised capacity; 0: no limit).",
		}, func() float64 { return float64(offered) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "fermion_node_memory_held_bytes",
			Help: "Memory the node's live instances hold against what it offers: limits.memory for each, warm, busy or a command run.",
		}, func() float64 { return float64(held()) }),
	} {
		if err := m.Registry.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				panic(err) // a malformed collector: a programming error
			}
		}
	}
}
