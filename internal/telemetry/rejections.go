package telemetry

import "github.com/prometheus/client_golang/prometheus"

// Gateway rejection reasons: the reason label of fermion_gateway_rejections_total, for
// connections and requests the gateway cut or refused before (or instead of) a
// function answering them.
const (
	// RejectConnections: the listener was at its open-connection cap with no idle
	// keep-alive connection to close; the newcomer got a 503 with Retry-After.
	RejectConnections = "connections"
	// RejectHeaderTimeout: the client did not send a complete request header in time.
	RejectHeaderTimeout = "header_timeout"
	// RejectBodyTimeout: the client went silent mid-body, or sent it slower than the
	// minimum rate (408).
	RejectBodyTimeout = "body_timeout"
	// RejectWriteTimeout: the client stopped reading the response.
	RejectWriteTimeout = "write_timeout"
)

// GatewayRejectReasons are every RejectXxx value, exported at 0 from the start.
var GatewayRejectReasons = []string{RejectConnections, RejectHeaderTimeout, RejectBodyTimeout, RejectWriteTimeout}

// Bad response reasons: the reason label of fermion_bad_responses_total, saying what was
// wrong with a response a function produced (a command module's CGI output, a reactor's
// encoded response).
const (
	BadResponseEmpty          = "empty"            // no output at all
	BadResponseNoHeaderEnd    = "no_header_end"    // no blank line after the headers
	BadResponseHeaderTooLarge = "header_too_large" // header section over 64 KiB
	BadResponseHeaderSyntax   = "header_syntax"    // a line without a colon, a bad name or value
	BadResponseStatus         = "status"           // a Status outside 100–999, or not a number
	BadResponseNoContentType  = "no_content_type"  // none of Content-Type, Location, Status
	BadResponseEncoding       = "encoding"         // a reactor's response buffer did not decode
)

// BadResponseReasons are every BadResponseXxx value, exported at 0 for each function
// version.
var BadResponseReasons = []string{BadResponseEmpty, BadResponseNoHeaderEnd, BadResponseHeaderTooLarge,
	BadResponseHeaderSyntax, BadResponseStatus, BadResponseNoContentType, BadResponseEncoding}

// Load failure reasons: the reason label of fermion_load_failures_total, the step at
// which a function version could not be made to serve.
const (
	LoadBuild       = "build"       // fermion run: the build command or reading the module failed
	LoadManifest    = "manifest"    // the manifest (fermion.toml, or the artifact's config) is invalid
	LoadUnavailable = "unavailable" // the registry is unreachable and nothing usable is cached
	LoadRejected    = "rejected"    // the artifact failed verification (digest, signature, trust)
	LoadPull        = "pull"        // any other pull failure: not found, unauthorized, cache full
	LoadPolicy      = "policy"      // the node's runtime policies refused it
	LoadModule      = "module"      // the sandbox refused or could not start the module
	LoadRoutes      = "routes"      // its routes conflict with another function's
)

// LoadFailureReasons are every LoadXxx value, exported at 0 from the start.
var LoadFailureReasons = []string{LoadBuild, LoadManifest, LoadUnavailable, LoadRejected, LoadPull, LoadPolicy, LoadModule, LoadRoutes, LoadWarmup}

// newRejectionMetrics creates the collectors of this file; NewMetrics registers them.
func (m *Metrics) newRejectionMetrics() []prometheus.Collector {
	m.GatewayRejections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fermion_gateway_rejections_total",
		Help: "Connections and requests the gateway cut or refused for a client limit, by reason (connections, header_timeout, body_timeout, write_timeout).",
	}, []string{"reason"})
	m.GatewayConnections = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "fermion_gateway_connections",
		Help: "Client connections the gateway holds open now.",
	})
	m.GatewayConnectionLimit = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "fermion_gateway_connection_limit",
		Help: "The gateway's cap on open connections (0: none).",
	})
	m.GatewayIdleClosed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "fermion_gateway_idle_connections_closed_total",
		Help: "Idle keep-alive connections closed early to make room for a new connection at the cap.",
	})
	m.BadResponses = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fermion_bad_responses_total",
		Help: "Malformed responses from functions (answered 502), by what was wrong.",
	}, []string{"function", "version", "reason"})
	m.LoadFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fermion_load_failures_total",
		Help: "Function versions that could not be made to serve, by the step that failed.",
	}, []string{"reason"})
	for _, r := range GatewayRejectReasons {
		m.GatewayRejections.WithLabelValues(r)
	}
	for _, r := range LoadFailureReasons {
		m.LoadFailures.WithLabelValues(r)
	}
	return []prometheus.Collector{m.GatewayRejections, m.GatewayConnections, m.GatewayConnectionLimit,
		m.GatewayIdleClosed, m.BadResponses, m.LoadFailures}
}

// GatewayRejection counts a connection or request the gateway cut or refused.
func (m *Metrics) GatewayRejection(reason string) {
	if m == nil {
		return
	}
	m.GatewayRejections.WithLabelValues(reason).Inc()
}

// GatewayConnectionsAdd adds delta to the open-connection gauge.
func (m *Metrics) GatewayConnectionsAdd(delta float64) {
	if m == nil {
		return
	}
	m.GatewayConnections.Add(delta)
}

// SetGatewayConnectionLimit exports the open-connection cap (0: none).
func (m *Metrics) SetGatewayConnectionLimit(n int) {
	if m == nil {
		return
	}
	m.GatewayConnectionLimit.Set(float64(n))
}

// GatewayIdleClose counts an idle connection closed to make room at the cap.
func (m *Metrics) GatewayIdleClose() {
	if m == nil {
		return
	}
	m.GatewayIdleClosed.Inc()
}

// LoadFailure counts a function version that could not be made to serve.
func (m *Metrics) LoadFailure(reason string) {
	if m == nil {
		return
	}
	m.LoadFailures.WithLabelValues(reason).Inc()
}

// BadResponse counts a malformed response from the function version.
func (f *FunctionMetrics) BadResponse(reason string) {
	if f == nil {
		return
	}
	f.m.BadResponses.WithLabelValues(f.name, f.version, reason).Inc()
}

// zeroFunctionSeries creates a function version's labelled counters at 0 for every known
// reason, so dashboards show 0 rather than no data until something happens.
func (m *Metrics) zeroFunctionSeries(name, version string) {
	for _, r := range BadResponseReasons {
		m.BadResponses.WithLabelValues(name, version, r)
	}
	for _, l := range LimitNames {
		m.LimitRejections.WithLabelValues(name, version, l)
	}
	for _, r := range RequestErrorReasons {
		m.RequestErrors.WithLabelValues(name, version, r)
	}
	for _, r := range DiscardReasons {
		m.Discards.WithLabelValues(name, version, r)
	}
	for _, r := range OutboundResults {
		m.Outbound.WithLabelValues(name, version, r)
	}
	for _, r := range StartReasons {
		m.InstanceStarts.WithLabelValues(name, version, r)
	}
}

// LimitNames are every LimitXxx value: the limit label of fermion_limit_rejections_total.
var LimitNames = []string{LimitConcurrency, LimitRequestBody, LimitResponseBody, LimitTimeout, LimitMemory, LimitNodeMemory}
