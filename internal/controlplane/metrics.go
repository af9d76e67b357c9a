package controlplane

import (
	"github.com/prometheus/client_golang/prometheus"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/controlplane/state"
	"fermion.dev/fermion/internal/policy"
)

type metrics struct {
	leader            prometheus.Gauge
	acting            prometheus.GaugeFunc
	terms             prometheus.Counter
	pauses            prometheus.Counter
	placements        *prometheus.CounterVec
	reconciles        *prometheus.CounterVec
	reconcileSeconds  prometheus.Histogram
	heartbeats        prometheus.Counter
	agentAuthFailures prometheus.Counter
	events            *prometheus.CounterVec
	eventFailures     prometheus.Counter
	apiRequests       *prometheus.CounterVec
	apiSeconds        *prometheus.HistogramVec
	policyEvaluations *prometheus.CounterVec   // policy, mode, result
	policyViolations  *prometheus.CounterVec   // policy, mode
	policySeconds     *prometheus.HistogramVec // policy
	rollouts          *prometheus.CounterVec   // outcome (rollouts.go)
}

func newMetrics(reg prometheus.Registerer, s *Server) *metrics {
	m := &metrics{
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "fermion_controlplane_leader",
			Help: "1 while this replica holds the leader lease and runs the controllers."}),
		acting: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "fermion_controlplane_acting_leader",
			Help: "1 while this replica's controllers may decide: it leads, its fences are in place and its lease is provably current on its own monotonic clock (evaluated at scrape time)."},
			func() float64 {
				if s.Acting() {
					return 1
				}
				return 0
			}),
		terms: prometheus.NewCounter(prometheus.CounterOpts{Name: "fermion_controlplane_leader_terms_total",
			Help: "Times this replica became leader and fenced the controllers' buckets."}),
		pauses: prometheus.NewCounter(prometheus.CounterOpts{Name: "fermion_controlplane_pauses_total",
			Help: "Times this process noticed it had not run for a while (paused or starved); each restarts the wait before any node is judged lost."}),
		placements: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fermion_controlplane_placements_total",
			Help: "Scheduler decisions by result (placed, unplaceable)."}, []string{"result"}),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fermion_controlplane_reconciles_total",
			Help: "Controller passes over every node and deployment, by result."}, []string{"result"}),
		reconcileSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "fermion_controlplane_reconcile_duration_seconds",
			Help: "Time one controller pass takes.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)}),
		heartbeats: prometheus.NewCounter(prometheus.CounterOpts{Name: "fermion_controlplane_heartbeats_total",
			Help: "Lease renewals answered by this replica."}),
		agentAuthFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "fermion_controlplane_agent_auth_failures_total",
			Help: "Agent connections refused for a bad join token or node credentials."}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fermion_controlplane_events_total",
			Help: "Lifecycle events recorded, by type."}, []string{"type"}),
		eventFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "fermion_controlplane_event_failures_total",
			Help: "Lifecycle events that could not be recorded."}),
		apiRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fermion_controlplane_api_requests_total",
			Help: "HTTP API requests by route and status code."}, []string{"route", "code"}),
		apiSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "fermion_controlplane_api_request_duration_seconds",
			Help: "HTTP API latency by route.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)}, []string{"route"}),
		policyEvaluations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fermion_policy_evaluations_total",
			Help: "Admission policy evaluations by policy, mode and result (pass, violation, error, ignored, skipped)."}, []string{"policy", "mode", "result"}),
		policyViolations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fermion_policy_violations_total",
			Help: "Admission policy evaluations that objected (a violation, or an error under failurePolicy Fail), by policy and mode."}, []string{"policy", "mode"}),
		policySeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "fermion_policy_evaluation_duration_seconds",
			Help: "Time one policy takes to evaluate one input.", Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10)}, []string{"policy"}),
		rollouts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fermion_rollouts_total",
			Help: "Rollouts that ended, by outcome (succeeded, rolled_back, aborted, failed); counted once, by the leader that ended them."}, []string{"outcome"}),
	}
	for _, o := range rolloutOutcomes {
		m.rollouts.WithLabelValues(o)
	}
	// Exported at 0, so panels show 0 rather than no data until the first error.
	for _, r := range []string{"placed", "unplaceable"} {
		m.placements.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "error"} {
		m.reconciles.WithLabelValues(r)
	}
	if reg == nil {
		return m
	}
	reg.MustRegister(m.leader, m.acting, m.terms, m.pauses, m.placements, m.reconciles, m.reconcileSeconds, m.heartbeats, m.agentAuthFailures,
		m.events, m.eventFailures, m.apiRequests, m.apiSeconds, m.policyEvaluations, m.policyViolations, m.policySeconds,
		m.rollouts, &stateCollector{s: s})
	if err := reg.Register(state.CASConflicts); err != nil {
		if _, ok := err.(prometheus.AlreadyRegisteredError); !ok {
			panic(err)
		}
	}
	return m
}

// policyResults are every result of fermion_policy_evaluations_total.
var policyResults = []policy.Result{policy.ResultPass, policy.ResultViolation, policy.ResultError, policy.ResultIgnored, policy.ResultSkipped}

// zeroPolicy exports a policy's evaluation and violation counters at 0 for its mode, from
// when it is in force: a policy nothing has violated shows 0, not no data.
func (m *metrics) zeroPolicy(name string, mode policy.Mode) {
	for _, r := range policyResults {
		m.policyEvaluations.WithLabelValues(name, string(mode), string(r))
	}
	m.policyViolations.WithLabelValues(name, string(mode))
}

// forgetPolicy drops a deleted policy's series.
func (m *metrics) forgetPolicy(name string) {
	l := prometheus.Labels{"policy": name}
	m.policyEvaluations.DeletePartialMatch(l)
	m.policyViolations.DeletePartialMatch(l)
	m.policySeconds.DeletePartialMatch(l)
}

// stateCollector reports the state tables' sizes at scrape time.
type stateCollector struct{ s *Server }

var (
	nodesDesc       = prometheus.NewDesc("fermion_controlplane_nodes", "Nodes by state.", []string{"state"}, nil)
	deploymentsDesc = prometheus.NewDesc("fermion_controlplane_deployments", "Deployments recorded.", nil, nil)
	assignmentsDesc = prometheus.NewDesc("fermion_controlplane_assignments", "Assignments of a deployment to a node.", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- nodesDesc
	ch <- deploymentsDesc
	ch <- assignmentsDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	if c.s.st == nil {
		return
	}
	counts := map[string]int{v1.NodeReady: 0, v1.NodeDraining: 0, v1.NodeDrained: 0, v1.NodeLost: 0}
	c.s.st.Nodes.Each(func(_ string, n *v1.Node, _ uint64) { counts[n.State]++ })
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(nodesDesc, prometheus.GaugeValue, float64(n), state)
	}
	ch <- prometheus.MustNewConstMetric(deploymentsDesc, prometheus.GaugeValue, float64(c.s.st.Deployments.Len()))
	ch <- prometheus.MustNewConstMetric(assignmentsDesc, prometheus.GaugeValue, float64(c.s.st.Assignments.Len()))
}
