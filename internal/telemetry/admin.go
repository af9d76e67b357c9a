package telemetry

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Admin is what a process's admin address serves. Every Fermion process that has one
// (run, agent, server, registry, up) builds it here, so they answer the same paths.
type Admin struct {
	// Gatherer is served at /metrics; nil serves no /metrics (telemetry switched off).
	Gatherer prometheus.Gatherer
	// Ready is /readyz's check; nil means ready whenever the process is up.
	Ready func() error
}

// AdminHandler serves /metrics (Prometheus text, or OpenMetrics when the scraper asks
// for it), /healthz (the process is up) and /readyz (a.Ready returned nil).
func AdminHandler(a Admin) http.Handler {
	mux := http.NewServeMux()
	if a.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(a.Gatherer, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if a.Ready != nil {
			if err := a.Ready(); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		w.Write([]byte("ready\n"))
	})
	return mux
}

// Gatherer is m's registry as a prometheus.Gatherer, or nil when m is nil, so a
// switched-off Metrics gives an Admin without /metrics.
func (m *Metrics) Gatherer() prometheus.Gatherer {
	if m == nil {
		return nil
	}
	return m.Registry
}
