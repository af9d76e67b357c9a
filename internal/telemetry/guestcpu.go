package telemetry

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Instance start reasons: the reason label of fermion_instance_starts_total and the
// keys of an SLI summary's InstanceStarts.
const (
	// StartPrewarm: the pool was filled up to min_warm, at load or after it fell
	// below it (a discard no replacement made up for).
	StartPrewarm = "prewarm"
	// StartScale: the autoscaler grew the pool above min_warm ahead of demand.
	StartScale = "scale"
	// StartRequest: a request found no warm instance and waited for a new one (a cold
	// start; commands start one instance per request).
	StartRequest = "request"
	// StartReplace: an instance discarded after a request (fault, timeout, recycled)
	// was replaced at once.
	StartReplace = "replace"
)

// StartReasons are the reason values of fermion_instance_starts_total.
var StartReasons = []string{StartPrewarm, StartScale, StartRequest, StartReplace}

// guestCPU is fermion_guest_cpu_seconds_total: per function version, the time its
// guests spent executing (see FunctionMetrics.GuestCPU), kept as integer nanoseconds
// and read at each scrape. A prometheus.Counter's float Add is a compare-and-swap loop
// that the request path's cores would contend on; one atomic per version, which every
// call wrote, still moved its cache line between the cores at each call, so the count
// is striped (cpuCount).
type guestCPU struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	ns   map[[2]string]*cpuCount
}

// cpuCount is a version's guest CPU nanoseconds in stripes on cache lines of their own.
// A call adds to a random stripe, from the runtime's per-thread generator: the sandbox
// has no connection stripe to give, and a few nanoseconds for the draw cost less than
// a line shared by the cores.
type cpuCount struct{ StripedCount }

func (c cpuCount) add(d int64) { c.Add(rand.Uint32(), d) }

func (c cpuCount) load() int64 { return c.Sum() }

func newGuestCPU() *guestCPU {
	return &guestCPU{
		desc: prometheus.NewDesc("fermion_guest_cpu_seconds_total",
			"Time guests spent executing (_initialize, handler calls, command runs): wall time inside guest calls less the time spent blocked in host calls that wait (sleeps, outbound HTTP).",
			[]string{"function", "version"}, nil),
		ns: map[[2]string]*cpuCount{},
	}
}

// counter returns key's counter, made at 0 if it has none.
func (g *guestCPU) counter(key [2]string) *cpuCount {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.ns[key]
	if c == nil {
		c = &cpuCount{make(StripedCount, requestStripes())} // as a version's request counts
		g.ns[key] = c
	}
	return c
}

func (g *guestCPU) forget(key [2]string) {
	g.mu.Lock()
	delete(g.ns, key)
	g.mu.Unlock()
}

func (g *guestCPU) read(key [2]string) (time.Duration, bool) {
	g.mu.Lock()
	c := g.ns[key]
	g.mu.Unlock()
	if c == nil {
		return 0, false
	}
	return time.Duration(c.load()), true
}

// Describe implements prometheus.Collector.
func (g *guestCPU) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

// Collect implements prometheus.Collector.
func (g *guestCPU) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, c := range g.ns {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.CounterValue, time.Duration(c.load()).Seconds(), k[0], k[1])
	}
}

// GuestCPU returns the time a function version's guests have spent executing since it
// was loaded (fermion_guest_cpu_seconds_total), and false when no loaded function
// reports it. It restarts from 0 when the version's series are forgotten and made
// again.
func (m *Metrics) GuestCPU(name, version string) (time.Duration, bool) {
	if m == nil {
		return 0, false
	}
	return m.guestCPU.read([2]string{name, version})
}

// GuestCPU adds d to the version's guest CPU time: one atomic add, no allocation. d is
// measured by the sandbox as the wall time of a guest call less the time it spent
// blocked in host calls that wait; a negative d (a clock step) is ignored.
func (f *FunctionMetrics) GuestCPU(d time.Duration) {
	if f == nil || f.cpu == nil || d <= 0 {
		return
	}
	f.cpu.add(int64(d))
}
