package controlplane

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/fleet"
)

// The fleet SLI store (internal/fleet) as this replica runs it: every replica consumes
// the SLI streams into its own store and answers GET /v1/slis from it; the replica
// acting as leader also writes the 5-minute rollups. Hooks elsewhere: the slis
// fields of Server and api, startSLIs in Start (before the SLO engine, which reads the
// store), the route group in Server.routeGroups.

// startSLIs opens the SLI streams and starts the store's ingest and the rollup writer;
// they stop with runCtx.
func (s *Server) startSLIs(ctx, runCtx context.Context, js jetstream.JetStream, replicas int) error {
	if err := fleet.OpenStreams(ctx, js, replicas); err != nil {
		return err
	}
	st, err := fleet.New(fleet.Config{
		Nodes: func(name string) (string, string, map[string]string, bool) {
			n, _, ok := s.st.Nodes.Get(name)
			return n.Labels["region"], n.Labels["zone"], n.Labels, ok
		},
		AppLabels: func(app string) map[string]string {
			d, _, _ := s.st.Deployments.Get(app)
			return d.Version.Labels
		},
		// Read by the ingest, which starts once the SLO engine is up (sliReady).
		Thresholds: func() []time.Duration {
			if s.slos == nil {
				return nil
			}
			return s.slos.LatencyThresholds()
		},
	})
	if err != nil {
		return err
	}
	s.slis, s.api.slis = st, st
	slowest := fleet.NewSlowest(func(node string) (string, string) {
		n, _, _ := s.st.Nodes.Get(node)
		return n.Labels["region"], n.Labels["zone"]
	})
	s.api.slowest = slowest
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fermion_controlplane_sli_refused_total",
		Help: "SLI summaries read from the SLI streams that did not decode or named another node than their subject, by stream."}, []string{"stream"})
	for _, stream := range []string{fleet.StreamRaw, fleet.StreamRollup} {
		refused.WithLabelValues(stream) // present at 0
	}
	if s.cfg.Metrics != nil {
		outcome := func(name, help string, raw bool, key string) prometheus.Collector {
			return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: prometheus.Labels{"outcome": key}},
				func() float64 {
					if raw {
						return float64(st.Stats().Raw[key])
					}
					return float64(st.Stats().Rollups[key])
				})
		}
		cs := []prometheus.Collector{refused,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "fermion_controlplane_sli_series",
				Help: "SLI series (app, version, node) the store holds."}, func() float64 { return float64(st.Stats().Series) })}
		for _, o := range []string{"accepted", "duplicate", "too_old", "future"} {
			cs = append(cs, outcome("fermion_controlplane_sli_summaries_total", "Raw SLI summaries the store was given, by outcome.", true, o))
		}
		for _, o := range []string{"accepted", "too_old", "bad"} {
			cs = append(cs, outcome("fermion_controlplane_sli_rollups_total", "SLI rollups the store was given, by outcome.", false, o))
		}
		for _, c := range cs {
			if err := s.cfg.Metrics.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
				return err
			}
		}
	}
	// The ingest waits for the SLO engine (startSLOs closes sliReady), so that the
	// store knows the latency SLOs' thresholds before it rebuilds its per-node tallies.
	s.sliReady = make(chan struct{})
	in := &fleet.Ingest{JS: js, Store: st, Logger: s.logger, Ready: s.sliReady,
		OnBad: func(stream string, _ error) { refused.WithLabelValues(stream).Inc() }, Slowest: slowest}
	s.goRun(runCtx, func(ctx context.Context) {
		if err := in.Run(ctx); err != nil {
			s.logger.Error("sli ingest stopped", "err", err)
		}
	})
	ru := &fleet.Rollups{JS: js, Store: st, Acting: s.Acting, Logger: s.logger}
	s.goRun(runCtx, ru.Run)
	return nil
}

// apiSLIs answers GET /v1/slis from this replica's store.
// sliRoutes is the fleet SLIs' route group.
func (s *api) sliRoutes(route routeFunc) {
	route("GET /v1/slis", v1.RoleViewer, s.apiSLIs)
	route("GET /v1/slis/slowest", v1.RoleViewer, s.apiSlowest)
}

// apiSlowest answers GET /v1/slis/slowest: the slowest requests the agents reported
// with their summaries over the last minutes, from this replica's ring.
func (s *api) apiSlowest(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	if s.slowest == nil {
		return nil, 0, &v1.Error{Code: v1.CodeUnavailable, Message: "the SLI store is not running"}
	}
	q, err := fleet.ParseSlowestQuery(r.URL.Query())
	if err != nil {
		var qe *fleet.QueryError
		if errors.As(err, &qe) {
			return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: qe.Param, Message: qe.Message}
		}
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Message: err.Error()}
	}
	return s.slowest.Query(q, time.Now()), http.StatusOK, nil
}

func (s *api) apiSLIs(_ http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
	if s.slis == nil {
		return nil, 0, &v1.Error{Code: v1.CodeUnavailable, Message: "the SLI store is not running"}
	}
	q, err := fleet.ParseQuery(r.URL.Query(), s.slis.Config().RollupRetention)
	if err == nil {
		err = s.slis.CheckQuery(q)
	}
	if err != nil {
		var qe *fleet.QueryError
		if errors.As(err, &qe) {
			return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Field: qe.Param, Message: qe.Message}
		}
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Message: err.Error()}
	}
	var inst []fleet.InstanceCount
	s.st.Statuses.Each(func(_ string, st *v1.InstanceStatus, _ uint64) {
		if st.Instances > 0 {
			inst = append(inst, fleet.InstanceCount{App: st.Deployment, Version: st.Version, Node: st.Node, N: st.Instances})
		}
	})
	return s.slis.Query(q, time.Now(), inst), http.StatusOK, nil
}
