package telemetry

import "github.com/prometheus/client_golang/prometheus"

// Results of fermion_instance_snapshots_total: a snapshot taken, or why a reactor
// function version's instances run _initialize instead (the sandbox's snapshot.go says
// what each means).
const (
	SnapshotTaken         = "taken"
	SnapshotDisabled      = "disabled"
	SnapshotNotRewritten  = "not_rewritten"
	SnapshotStartFunction = "start_function"
	SnapshotTableWrites   = "table_writes"
	SnapshotGlobalType    = "global_type"
	SnapshotInitFailed    = "init_failed"
	SnapshotInitFiles     = "init_opened_files"
	SnapshotNodeMemory    = "node_memory"
)

// SnapshotResults are the result values of fermion_instance_snapshots_total.
var SnapshotResults = []string{SnapshotTaken, SnapshotDisabled, SnapshotNotRewritten, SnapshotStartFunction,
	SnapshotTableWrites, SnapshotGlobalType, SnapshotInitFailed, SnapshotInitFiles, SnapshotNodeMemory}

// newSnapshotMetrics makes fermion_instance_snapshots_total with every result at 0.
func (m *Metrics) newSnapshotMetrics() prometheus.Collector {
	m.snapshots = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fermion_instance_snapshots_total",
		Help: "Reactor function versions loaded, by whether new instances start from a snapshot (taken) or why they run _initialize instead.",
	}, []string{"result"})
	for _, r := range SnapshotResults {
		m.snapshots.WithLabelValues(r)
	}
	return m.snapshots
}

// InstanceSnapshot counts a reactor function version loaded with its instances starting
// from a snapshot (SnapshotTaken) or without one (why not). The counter has no function
// label, so it needs no forgetting; the node's log line names the function.
func (m *Metrics) InstanceSnapshot(result string) {
	if m == nil {
		return
	}
	m.snapshots.WithLabelValues(result).Inc()
}
