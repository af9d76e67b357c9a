package telemetry

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// InstanceCounts reports a function version's pool: warm (idle, ready) and busy (serving
// a request, or starting) instances, and the linear memory of them all in bytes.
type InstanceCounts func() (warm, busy int, memoryBytes int64)

// instanceGauges is fermion_instances and fermion_instance_memory_bytes, read from the
// pools when scraped. Gauges kept by adding and subtracting on every request cost four
// contended atomic updates per request (taken from and returned to the pool), and could
// drift from the pool if a path forgot one; the pool's own count is exact and free until
// someone asks.
type instanceGauges struct {
	desc   *prometheus.Desc
	memory *prometheus.Desc
	mu     sync.Mutex
	src    map[[2]string][]InstanceCounts
}

func newInstanceGauges() *instanceGauges {
	return &instanceGauges{
		desc: prometheus.NewDesc("fermion_instances",
			"Live instances by state: warm (idle, ready) or busy (serving a request, or starting).",
			[]string{"function", "version", "state"}, nil),
		memory: prometheus.NewDesc("fermion_instance_memory_bytes",
			"Linear memory of the live reactor instances, the size limits.memory caps, as of each instance's last request (seed M7).",
			[]string{"function", "version"}, nil),
		src: map[[2]string][]InstanceCounts{},
	}
}

func (g *instanceGauges) add(key [2]string, c InstanceCounts) {
	g.mu.Lock()
	g.src[key] = append(g.src[key], c)
	g.mu.Unlock()
}

func (g *instanceGauges) forget(key [2]string) {
	g.mu.Lock()
	delete(g.src, key)
	g.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (g *instanceGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.desc
	ch <- g.memory
}

// Collect implements prometheus.Collector. The sources are called without g.mu held:
// they take their pool's lock.
func (g *instanceGauges) Collect(ch chan<- prometheus.Metric) {
	type entry struct {
		key  [2]string
		srcs []InstanceCounts
	}
	g.mu.Lock()
	all := make([]entry, 0, len(g.src))
	for k, s := range g.src {
		all = append(all, entry{k, s})
	}
	g.mu.Unlock()
	for _, e := range all {
		warm, busy, memory := 0, 0, int64(0)
		for _, c := range e.srcs {
			w, b, m := c()
			warm, busy, memory = warm+w, busy+b, memory+m
		}
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(warm), e.key[0], e.key[1], "warm")
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(busy), e.key[0], e.key[1], "busy")
		ch <- prometheus.MustNewConstMetric(g.memory, prometheus.GaugeValue, float64(memory), e.key[0], e.key[1])
	}
}
