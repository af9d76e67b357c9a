package telemetry

import (
	"net/http"
	"net/http/pprof"

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
	// Profiling serves the Go runtime's profiles under /debug/pprof/ (CPU, heap,
	// allocations, goroutines, threads, execution trace) for go tool pprof. Off by
	// default: profiles show the process's code paths and goroutine stacks, and a CPU
	// profile or trace keeps the profiler busy while it runs.
	Profiling bool
}

// AdminHandler serves /metrics (Prometheus text, or OpenMetrics when the scraper asks
// for it), /healthz (the process is up), /readyz (a.Ready returned nil) and, with
// a.Profiling, /debug/pprof/.
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
	if a.Profiling {
		// Not /debug/pprof/cmdline: flags such as --nats-password would be readable by
		// anyone who can reach the admin address. (Importing net/http/pprof also
		// registers its handlers on http.DefaultServeMux, which no Fermion server uses.)
		mux.HandleFunc("GET /debug/pprof/", pprofIndex)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	}
	return mux
}

// pprofIndex is pprof.Index (the list, and the named runtime profiles such as heap and
// goroutine) except for the command line.
func pprofIndex(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/debug/pprof/cmdline" {
		http.Error(w, "the command line is not served: it may hold secrets", http.StatusNotFound)
		return
	}
	pprof.Index(w, r)
}

// Gatherer is m's registry as a prometheus.Gatherer, or nil when m is nil, so a
// switched-off Metrics gives an Admin without /metrics.
func (m *Metrics) Gatherer() prometheus.Gatherer {
	if m == nil {
		return nil
	}
	return m.Registry
}
