package gateway

import (
	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/telemetry"
)

// routeTelemetry is what a request records into, resolved once per route when the
// routing table is built, so the request path hashes no label or key: the version's
// curried Prometheus children and the route's SLI series handle. It also keeps the
// version's request body limit, so a request copies no Spec to read it.
type routeTelemetry struct {
	fm  *telemetry.FunctionMetrics // nil without metrics
	sli *sli.Series                // nil without Config.SLIs
	// key is the series' key, for the rare events recorded by key (limit rejections).
	key sli.Key
	// maxBody is the target's limits.max_request_body.
	maxBody int64
	// lines are the requests of this key skipped by the request log's sampler, by status
	// class, carried by its next line (nil with telemetry off). Kept across routing
	// tables (Gateway.lineWeights), so a canary's weight step loses none.
	lines *telemetry.LineWeights
}

// attachTelemetry resolves every route's telemetry in t and makes the table release its
// SLI handles once it is retired and drained. Targets share one FunctionMetrics.
func (g *Gateway) attachTelemetry(t *table) {
	lines := g.lineWeights(t)
	fms := make(map[Target]*telemetry.FunctionMetrics, len(t.routes))
	var handles []*sli.Series
	for i := range t.routes {
		r := &t.routes[i]
		fm, ok := fms[r.Target]
		if !ok {
			fm = g.cfg.Metrics.Series(r.Target.Name(), r.Target.Version())
			fms[r.Target] = fm
		}
		rt := &routeTelemetry{fm: fm, key: SLIKey(r), maxBody: r.Target.Spec().Limits.MaxRequestBody}
		rt.lines = lines[rt.key]
		if g.cfg.SLIs != nil {
			rt.sli = g.cfg.SLIs.Series(rt.key)
			handles = append(handles, rt.sli)
		}
		r.tel = rt
		if s := r.split; s != nil {
			// The canary side records under its own version: its own Prometheus
			// children and SLI series, what canary analysis compares.
			cfm, ok := fms[s.target]
			if !ok {
				cfm = g.cfg.Metrics.Series(s.target.Name(), s.target.Version())
				fms[s.target] = cfm
			}
			ct := &routeTelemetry{fm: cfm, key: sliKey(r, s.target), maxBody: s.target.Spec().Limits.MaxRequestBody}
			ct.lines = lines[ct.key]
			if g.cfg.SLIs != nil {
				ct.sli = g.cfg.SLIs.Series(ct.key)
				handles = append(handles, ct.sli)
			}
			s.tel = ct
		}
	}
	if len(handles) > 0 {
		t.onDrained = func() {
			for _, h := range handles {
				h.Release()
			}
		}
	}
}

// lineWeights returns the request log's weights of every key t's routes record under,
// those of the previous table kept, and makes them the gateway's: the requests skipped
// on a key the new table no longer serves are not carried by any line (the metric
// fermion_request_log_skipped_total counted them). Nil with telemetry off.
func (g *Gateway) lineWeights(t *table) map[sli.Key]*telemetry.LineWeights {
	if !g.cfg.Telemetry {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	next := make(map[sli.Key]*telemetry.LineWeights, len(t.routes))
	add := func(k sli.Key) {
		if next[k] != nil {
			return
		}
		w := g.weights[k]
		if w == nil {
			w = new(telemetry.LineWeights)
		}
		next[k] = w
	}
	for i := range t.routes {
		r := &t.routes[i]
		add(SLIKey(r))
		if r.split != nil {
			add(sliKey(r, r.split.target))
		}
	}
	g.weights = next
	return next
}

// SLIKey is the SLI key a route's requests are recorded under: its deployment (the
// target's name when Deployment is empty), the target's version, and the route's
// pattern, host and path prefix as the manifest wrote it ("/hello",
// "api.example.com/v1") — never a request's path, so the keys are as many as the routes.
func SLIKey(r *Route) sli.Key { return sliKey(r, r.Target) }

// sliKey is the key of r's requests that target serves (r's or its split's).
func sliKey(r *Route, target Target) sli.Key {
	dep := r.Deployment
	if dep == "" {
		dep = target.Name()
	}
	return sli.Key{Deployment: dep, Version: target.Version(), Route: r.Host + r.Prefix}
}

// sliLimit returns the limit a failed request's reason says refused it or cut it short
// (the function's limits, or the gateway's on slow clients), named as
// fermion_limit_rejections_total and fermion_gateway_rejections_total name it, or ""
// when the reason is not a limit. Those requests are also the SLI's limit rejections.
func sliLimit(reason string) string {
	switch reason {
	case telemetry.LimitConcurrency, telemetry.LimitRequestBody, telemetry.LimitResponseBody,
		telemetry.LimitTimeout, telemetry.LimitMemory, telemetry.LimitNodeMemory,
		telemetry.RejectBodyTimeout, telemetry.RejectWriteTimeout:
		return reason
	case telemetry.ReasonOOM: // the sandbox counts it as the memory limit's rejection
		return telemetry.LimitMemory
	}
	return ""
}
