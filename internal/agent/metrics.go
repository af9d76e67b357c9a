package agent

import (
	"github.com/prometheus/client_golang/prometheus"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/telemetry"
)

// Label values, fixed sets so cardinality stays bounded.
const (
	resultOK          = "ok"
	resultRejected    = "rejected"    // the control plane answered with an error
	resultUnreachable = "unreachable" // no answer (disconnected, timeout, no responder)
	resultFailed      = "failed"
)

var instanceStates = []string{v1.InstancePulling, v1.InstanceStarting, v1.InstanceReady, v1.InstanceFailed}

type nodeMetrics struct {
	connected     prometheus.Gauge
	registrations *prometheus.CounterVec // result
	heartbeats    *prometheus.CounterVec // result
	reconciles    *prometheus.CounterVec // result
	assignments   prometheus.Gauge
	revision      prometheus.Gauge
	deployments   *prometheus.GaugeVec // state
	// runtimeDenials counts versions the node's runtime policies refused to start.
	runtimeDenials prometheus.Counter
	// refusedSets counts assignment sets refused for an invalid canary (canary_reconcile.go).
	refusedSets prometheus.Counter
	// info is 1 for this node's name, region, zone and agent version: Prometheus joins
	// it on (job, instance) to group the data plane's series by node and region.
	info *prometheus.GaugeVec // node, region, zone, version
}

// newNodeMetrics creates the collectors and registers them on reg (nil: not exported).
// A collector already registered there, by an earlier Node of this process, is reused.
func newNodeMetrics(reg prometheus.Registerer) (*nodeMetrics, error) {
	m := &nodeMetrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fermion_agent_control_plane_connected",
			Help: "1 while the agent is connected to the control plane, registered and renewing its lease, else 0.",
		}),
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fermion_agent_registrations_total",
			Help: "Registrations with the control plane, by result (ok, rejected, unreachable).",
		}, []string{"result"}),
		heartbeats: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fermion_agent_heartbeats_total",
			Help: "Heartbeats sent to the control plane, by result (ok, rejected, unreachable).",
		}, []string{"result"}),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fermion_agent_reconciles_total",
			Help: "Attempts to start an assigned version, by result (ok, failed).",
		}, []string{"result"}),
		assignments: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fermion_agent_assignments",
			Help: "Deployments in the assignment set the agent applied.",
		}),
		revision: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fermion_agent_assignment_revision",
			Help: "Revision of the assignment set the agent applied.",
		}),
		deployments: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fermion_agent_deployments",
			Help: "Assigned deployments by state (pulling, starting, ready, failed).",
		}, []string{"state"}),
		runtimeDenials: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fermion_agent_runtime_policy_denials_total",
			Help: "Versions this node's runtime policies refused to start.",
		}),
		refusedSets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fermion_agent_assignments_refused_total",
			Help: "Assignment sets the agent refused (an invalid canary), keeping the previous ones.",
		}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fermion_node_info",
			Help: "Always 1: this node's name, its region and zone labels and the agent's version, to join on (job, instance) for per-node and per-region views (seed M5).",
		}, []string{"node", "region", "zone", "version"}),
	}
	for _, r := range []string{resultOK, resultRejected, resultUnreachable} {
		m.registrations.WithLabelValues(r)
		m.heartbeats.WithLabelValues(r)
	}
	for _, r := range []string{resultOK, resultFailed} {
		m.reconciles.WithLabelValues(r)
	}
	for _, s := range instanceStates {
		m.deployments.WithLabelValues(s)
	}
	if reg == nil {
		return m, nil
	}
	var err error
	for _, c := range []*prometheus.Gauge{&m.connected, &m.assignments, &m.revision} {
		if *c, err = register(reg, *c); err != nil {
			return nil, err
		}
	}
	for _, c := range []**prometheus.CounterVec{&m.registrations, &m.heartbeats, &m.reconciles} {
		if *c, err = register(reg, *c); err != nil {
			return nil, err
		}
	}
	if m.deployments, err = register(reg, m.deployments); err != nil {
		return nil, err
	}
	if m.runtimeDenials, err = register(reg, m.runtimeDenials); err != nil {
		return nil, err
	}
	if m.refusedSets, err = register(reg, m.refusedSets); err != nil {
		return nil, err
	}
	if m.info, err = register(reg, m.info); err != nil {
		return nil, err
	}
	return m, nil
}

func register[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	return telemetry.Register(reg, c)
}
