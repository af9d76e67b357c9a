package telemetry

// SLISink takes a function version's instance and limit events for SLI aggregation
// (internal/sli, fed by the agent), besides the Prometheus counters FunctionMetrics
// keeps. Telemetry owns the interface so the sandbox records each event once, through
// FunctionMetrics, and needs no second hook: what Prometheus counts, the SLI summaries
// count.
type SLISink interface {
	// For returns the recorder of one function version's events. It is called when
	// the version's FunctionMetrics is made (at load, and when the gateway routes to it).
	For(function, version string) SLIEvents
}

// SLIEvents records one function version's events. Its methods must be cheap and safe
// for concurrent use: they run on the request path when a limit refuses a request.
type SLIEvents interface {
	// InstanceStarted counts an instance started for reason (a StartXxx value).
	InstanceStarted(reason string)
	Discarded(reason string)
	LimitRejected(limit string)
	Outbound(result string)
}

// sliSinkBox lets SetSLISink store an interface atomically.
type sliSinkBox struct{ s SLISink }

// SetSLISink makes sink receive the events of every function version whose
// FunctionMetrics is made afterwards: set it before loading functions.
func (m *Metrics) SetSLISink(sink SLISink) {
	if m == nil {
		return
	}
	m.sliSink.Store(&sliSinkBox{sink})
}

func (m *Metrics) sliEventsFor(name, version string) SLIEvents {
	b := m.sliSink.Load()
	if b == nil || b.s == nil {
		return nil
	}
	return b.s.For(name, version)
}

// Pool returns a function version's pool now (summed over its sources, as
// fermion_instances reports it), and false when no loaded function reports one.
func (m *Metrics) Pool(name, version string) (Pool, bool) {
	if m == nil {
		return Pool{}, false
	}
	g := m.instances
	g.mu.Lock()
	srcs := append([]InstanceCounts(nil), g.src[[2]string{name, version}]...)
	g.mu.Unlock()
	var sum Pool
	for _, c := range srcs { // outside g.mu: sources take their pool's lock
		p := c()
		sum.Warm, sum.Busy, sum.Desired, sum.MemoryBytes = sum.Warm+p.Warm, sum.Busy+p.Busy, sum.Desired+p.Desired, sum.MemoryBytes+p.MemoryBytes
	}
	return sum, len(srcs) > 0
}

// Backlog is the number of payloads waiting in the telemetry spool (0 without one).
func (t *Tracing) Backlog() int {
	if t == nil || t.spool == nil {
		return 0
	}
	t.spool.mu.Lock()
	defer t.spool.mu.Unlock()
	return len(t.spool.files)
}
