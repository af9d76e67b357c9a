package sloctl

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"fermion.dev/fermion/internal/slo"
)

type metrics struct {
	alerts      *prometheus.GaugeVec   // severity, phase
	transitions *prometheus.CounterVec // severity, to
	budget      *prometheus.GaugeVec   // slo, app, scope
	evaluation  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		alerts: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fermion_slo_alerts", Help: "SLO alerts in the leader's state by severity and phase (pending, firing, resolved within the last 15 min).",
		}, []string{"severity", "phase"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fermion_slo_alert_transitions_total", Help: "SLO alerts moving to a phase, by severity and phase reached.",
		}, []string{"severity", "phase"}),
		budget: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fermion_slo_error_budget_remaining", Help: "Unspent share of an SLO's error budget over its window (1 = untouched, below 0 = overspent); the lowest across the app's versions.",
		}, []string{"slo", "app", "scope"}),
		evaluation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "fermion_slo_evaluation_seconds", Help: "Time one SLO engine tick takes (read state, evaluate every SLO, write state).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	for _, sev := range []slo.Severity{slo.Page, slo.Ticket} {
		for _, ph := range []slo.Phase{slo.Pending, slo.Firing, slo.Resolved} {
			m.alerts.WithLabelValues(string(sev), string(ph))
			m.transitions.WithLabelValues(string(sev), string(ph))
		}
		m.transitions.WithLabelValues(string(sev), string(slo.Inactive))
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{m.alerts, m.transitions, m.budget, m.evaluation} {
			if err := reg.Register(col); err != nil {
				return nil, fmt.Errorf("register SLO metrics: %w", err)
			}
		}
	}
	return m, nil
}

// observe sets the gauges from a tick's state and budgets.
func (m *metrics) observe(st slo.State, specs []slo.Spec, src slo.Source, now time.Time) {
	counts := map[[2]string]int{}
	for _, a := range st.Alerts {
		counts[[2]string{string(a.Severity), string(a.Phase)}]++
	}
	for _, sev := range []slo.Severity{slo.Page, slo.Ticket} {
		for _, ph := range []slo.Phase{slo.Pending, slo.Firing, slo.Resolved} {
			m.alerts.WithLabelValues(string(sev), string(ph)).Set(float64(counts[[2]string{string(sev), string(ph)}]))
		}
	}
	low := map[[3]string]float64{}
	for _, b := range slo.Budgets(specs, src, now) {
		k := [3]string{b.SLO, b.Series.App, b.Series.Scope}
		if cur, ok := low[k]; !ok || b.Remaining < cur {
			low[k] = b.Remaining
		}
	}
	// Series that stopped reporting (or SLOs deleted) leave the gauge.
	m.budget.Reset()
	for k, v := range low {
		m.budget.WithLabelValues(k[0], k[1], k[2]).Set(v)
	}
}
