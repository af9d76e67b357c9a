package telemetry

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Pool is a function version's pool at one moment: warm (idle, ready) and busy (serving
// a request, or starting) instances, the size the autoscaler aims for, and the linear
// memory of the live instances in bytes.
type Pool struct {
	Warm, Busy, Desired int
	MemoryBytes         int64
}

// InstanceCounts reports a function version's pool.
type InstanceCounts func() Pool

// instanceGauges is fermion_instances and fermion_instance_memory_bytes, read from the
// pools when scraped. Gauges kept by adding and subtracting on every request cost four
// contended atomic updates per request (taken from and returned to the pool), and could
// drift from the pool if a path forgot one; the pool's own count is exact and free until
// someone asks.
type instanceGauges struct {
	desc    *prometheus.Desc
	memory  *prometheus.Desc
	desired *prometheus.Desc
	mu      sync.Mutex
	src     map[[2]string][]InstanceCounts
}

func newInstanceGauges() *instanceGauges {
	return &instanceGauges{
		desc: prometheus.NewDesc("fermion_instances",
			"Live instances by state: warm (idle, ready) or busy (serving a request, or starting).",
			[]string{"function", "version", "state"}, nil),
		memory: prometheus.NewDesc("fermion_instance_memory_bytes",
			"Linear memory of the live reactor instances, the size limits.memory caps, as of each instance's last request (seed M7).",
			[]string{"function", "version"}, nil),
		desired: prometheus.NewDesc("fermion_instances_desired",
			"Live instances the node's autoscaler aims for: the highest concurrency within idle_timeout over target_utilization_percentage, within min_warm and max_instances.",
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
	ch <- g.desired
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
		var sum Pool
		for _, c := range e.srcs {
			p := c()
			sum.Warm, sum.Busy, sum.Desired, sum.MemoryBytes = sum.Warm+p.Warm, sum.Busy+p.Busy, sum.Desired+p.Desired, sum.MemoryBytes+p.MemoryBytes
		}
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(sum.Warm), e.key[0], e.key[1], "warm")
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(sum.Busy), e.key[0], e.key[1], "busy")
		ch <- prometheus.MustNewConstMetric(g.memory, prometheus.GaugeValue, float64(sum.MemoryBytes), e.key[0], e.key[1])
		ch <- prometheus.MustNewConstMetric(g.desired, prometheus.GaugeValue, float64(sum.Desired), e.key[0], e.key[1])
	}
}
