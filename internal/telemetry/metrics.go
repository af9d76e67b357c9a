// Package telemetry holds Fermion's metrics, tracing and logging set-up: the Prometheus
// collectors every component records into, the OpenTelemetry tracer provider (OTLP/HTTP
// when the standard OTEL_EXPORTER_OTLP_* variables name an endpoint, no-op otherwise),
// the JSON slog logger and the request log's sampler (requestlog.go). Label sets are
// bounded: function, version, status class and small fixed enums, never request ids or
// paths.
package telemetry

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Label values used across metrics. Keeping them here keeps the label sets bounded.
const (
	// Discard and error reasons.
	ReasonTrap        = "trap"
	ReasonPanic       = "panic"
	ReasonTimeout     = "timeout"
	ReasonOOM         = "oom"
	ReasonRecycled    = "recycled"
	ReasonIdle        = "idle"
	ReasonClosed      = "closed"
	ReasonCanceled    = "canceled"
	ReasonBadResponse = "bad_response"
	// ReasonBadRequest: reading the request body failed (400).
	ReasonBadRequest = "bad_request"
	// ReasonInternal: an unexpected runtime error (500).
	ReasonInternal = "internal"

	// Limits that reject requests.
	LimitConcurrency  = "concurrency"
	LimitRequestBody  = "request_body"
	LimitResponseBody = "response_body"
	LimitTimeout      = "timeout"
	LimitMemory       = "memory"
	// LimitNodeMemory: a new instance would take the node's live instances past the
	// memory it offers to functions.
	LimitNodeMemory = "node_memory"

	// Outbound call results.
	OutboundOK      = "ok"
	OutboundDenied  = "denied"
	OutboundError   = "error"
	OutboundTimeout = "timeout"
	// OutboundTLS: the destination's certificate did not verify, or its TLS handshake
	// failed (the seed's F7 from the calling side).
	OutboundTLS = "tls"
)

// The label values every function version's labelled counters are exported with, at 0,
// from the moment it loads: a panel or a rate() over them shows 0, not "no data", until
// the first event. A value outside these lists is still counted; it appears with it.
var (
	// RequestErrorReasons are the reason values of fermion_request_errors_total: every
	// reason the gateway and the sandbox give a failed request.
	RequestErrorReasons = []string{ReasonBadRequest, LimitRequestBody, ReasonCanceled, ReasonTrap, ReasonPanic,
		ReasonOOM, ReasonInternal, ReasonBadResponse, LimitResponseBody, LimitConcurrency, LimitNodeMemory,
		ReasonClosed, ReasonTimeout, RejectBodyTimeout, RejectWriteTimeout, ReasonWarmup}
	// DiscardReasons are the reason values of fermion_instance_discards_total.
	DiscardReasons = []string{ReasonTrap, ReasonPanic, ReasonOOM, ReasonTimeout, ReasonCanceled,
		ReasonRecycled, ReasonIdle, ReasonClosed, ReasonWarmup}
	// OutboundResults are the result values of fermion_outbound_requests_total.
	OutboundResults = []string{OutboundOK, OutboundDenied, OutboundError, OutboundTimeout, OutboundTLS}
)

// Metrics is the set of collectors Fermion records into. A nil *Metrics is valid and
// records nothing: telemetry can be switched off without branches at every call site
// (the methods that hand out per-function children check for nil).
type Metrics struct {
	Registry *prometheus.Registry

	// requests is fermion_requests_total (function, version, code) and
	// fermion_request_duration_seconds (function, version), striped (requests.go).
	requests        *requestMetrics
	RequestErrors   *prometheus.CounterVec   // function, version, reason
	ColdStarts      *prometheus.CounterVec   // function, version
	InstanceStart   *prometheus.HistogramVec // function, version, phase (instantiate|init)
	InstanceStarts  *prometheus.CounterVec   // function, version, reason (StartReasons)
	instances       *instanceGauges          // function, version, state (warm|busy)
	Discards        *prometheus.CounterVec   // function, version, reason
	Traps           *prometheus.CounterVec   // function, version
	LimitRejections *prometheus.CounterVec   // function, version, limit
	Outbound        *prometheus.CounterVec   // function, version, result
	GuestLogDropped *prometheus.CounterVec   // function, version
	Compile         *prometheus.HistogramVec // function, version
	// InFlight is fermion_gateway_in_flight_requests, the sum of inFlight's stripes at
	// each scrape: an integer add per request edge on the request's stripe instead of a
	// Gauge's compare-and-swap loop on one float, which two cores serving requests
	// contend on (InFlightAdd).
	InFlight prometheus.GaugeFunc
	inFlight StripedCount
	// requestLogSkipped is fermion_request_log_skipped_total (requestlog.go), striped as
	// inFlight is: above the log rate nearly every request adds to it.
	requestLogSkipped StripedCount

	// Client limits, malformed responses and load failures (rejections.go).
	GatewayRejections      *prometheus.CounterVec // reason
	GatewayConnections     prometheus.Gauge
	GatewayConnectionLimit prometheus.Gauge
	GatewayIdleClosed      prometheus.Counter
	BadResponses           *prometheus.CounterVec // function, version, reason
	LoadFailures           *prometheus.CounterVec // reason

	mu      sync.Mutex
	holders map[[2]string]int // function version -> Function calls not yet forgotten

	sliSink   atomic.Pointer[sliSinkBox] // SetSLISink (slisink.go)
	guestCPU  *guestCPU                  // fermion_guest_cpu_seconds_total (guestcpu.go)
	snapshots *prometheus.CounterVec     // result (snapshot.go)
	warmups   *prometheus.CounterVec     // function, version, result (warmup.go)
}

// NewMetrics creates the collectors and registers them, with the Go and process
// collectors, in a new registry.
func NewMetrics(version string) *Metrics {
	fv := []string{"function", "version"}
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: newRequestMetrics(),
		RequestErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fermion_request_errors_total",
			Help: "Requests that failed in the runtime (not errors the guest chose to return), by reason.",
		}, append(fv, "reason")),
		ColdStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fermion_cold_starts_total",
			Help: "Requests that had to wait for a new instance to be created.",
		}, fv),
		InstanceStart: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fermion_instance_start_seconds",
			Help:    "Time to create an instance, by phase: instantiate (wazero) and init (guest _initialize).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, append(fv, "phase")),
		InstanceStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fermion_instance_starts_total",
			Help: "Instances started, by reason (prewarm, scale, request, replace).",
		}, append(fv, "reason")),
		instances: newInstanceGauges(),
		guestCPU:  newGuestCPU(),
		Discards: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fermion_instance_discards_total",
			Help: "Instances closed, by reason (trap, panic, timeout, oom, recycled, idle, closed, canceled).",
		}, append(fv, "reason")),
		Traps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fermion_traps_total",
			Help: "Guest executions that trapped (runtime error, panic, out of memory, exit).",
		}, fv),
		LimitRejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fermion_limit_rejections_total",
			Help: "Requests refused or cut short by a limit (concurrency, request_body, response_body, timeout, memory, node_memory).",
		}, append(fv, "limit")),
		Outbound: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fermion_outbound_requests_total",
			Help: "Outbound HTTP calls made by guests, by result (ok, denied, error, timeout).",
		}, append(fv, "result")),
		GuestLogDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fermion_guest_log_dropped_bytes_total",
			Help: "Guest stdout/stderr bytes dropped past the per-request log cap.",
		}, fv),
		Compile: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fermion_compile_seconds",
			Help:    "Time to compile a module (near zero when the on-disk compilation cache has it).",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, fv),
	}
	m.inFlight = NewStripedCount()
	m.requestLogSkipped = NewStripedCount()
	m.InFlight = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "fermion_gateway_in_flight_requests",
		Help: "Requests the gateway is serving now.",
	}, m.inFlightNow)
	build := BuildInfo(version)
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		build, m.requests, m.RequestErrors, m.ColdStarts, m.InstanceStart,
		m.instances, m.Discards, m.Traps, m.LimitRejections, m.Outbound, m.GuestLogDropped,
		m.Compile, m.InFlight, m.InstanceStarts, m.guestCPU,
	)
	m.Registry.MustRegister(m.newRejectionMetrics()...)
	m.Registry.MustRegister(m.newSnapshotMetrics())   // snapshot.go
	m.Registry.MustRegister(m.newWarmupMetrics())     // warmup.go
	m.Registry.MustRegister(m.newRequestLogMetrics()) // requestlog.go
	return m
}

// Function returns the collectors of one function version with their labels bound, so
// the request path does no label lookups, and holds its series until a matching Forget.
// A nil Metrics gives a FunctionMetrics that records nothing.
func (m *Metrics) Function(name, version string) *FunctionMetrics {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	if m.holders == nil {
		m.holders = map[[2]string]int{}
	}
	m.holders[[2]string{name, version}]++
	m.mu.Unlock()
	m.zeroFunctionSeries(name, version)
	f := m.Series(name, version)
	// Only the function's owner records guest CPU time; Series' other users (the
	// gateway) must not bring a forgotten version's series back.
	f.cpu = m.guestCPU.counter([2]string{name, version})
	return f
}

// Series is Function without holding the series: for code that records for a function
// version it does not own (the gateway), whose series go when its owner forgets them.
func (m *Metrics) Series(name, version string) *FunctionMetrics {
	if m == nil {
		return nil
	}
	f := &FunctionMetrics{
		m:           m,
		name:        name,
		version:     version,
		requests:    m.requests.get([2]string{name, version}),
		coldStarts:  m.ColdStarts.WithLabelValues(name, version),
		instantiate: m.InstanceStart.WithLabelValues(name, version, "instantiate"),
		init:        m.InstanceStart.WithLabelValues(name, version, "init"),
		traps:       m.Traps.WithLabelValues(name, version),
		logDropped:  m.GuestLogDropped.WithLabelValues(name, version),
		compile:     m.Compile.WithLabelValues(name, version),
		sli:         m.sliEventsFor(name, version),
	}
	return f
}

// Forget releases a Function hold and, when it was the last, removes the function
// version's series so label sets do not grow without bound as versions come and go. A
// version loaded again while its predecessor is closing (a redeploy of the same version)
// keeps its series.
func (m *Metrics) Forget(name, version string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	key := [2]string{name, version}
	if n := m.holders[key] - 1; n > 0 {
		m.holders[key] = n
		m.mu.Unlock()
		return
	}
	delete(m.holders, key)
	m.mu.Unlock()
	l := prometheus.Labels{"function": name, "version": version}
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.RequestErrors, m.ColdStarts, m.InstanceStarts, m.Discards, m.Traps, m.LimitRejections, m.Outbound, m.GuestLogDropped, m.BadResponses} {
		v.DeletePartialMatch(l)
	}
	m.instances.forget(key)
	m.guestCPU.forget(key)
	m.requests.forget(key)
	m.InstanceStart.DeletePartialMatch(l)
	m.Compile.DeletePartialMatch(l)
	m.warmups.DeletePartialMatch(l) // warmup.go
}

// FunctionMetrics records for one function version. All methods are safe on nil.
type FunctionMetrics struct {
	m                 *Metrics
	name, version     string
	requests          *requestSeries
	coldStarts        prometheus.Counter
	instantiate, init prometheus.Observer
	traps             prometheus.Counter
	logDropped        prometheus.Counter
	compile           prometheus.Observer
	sli               SLIEvents // nil: no SLI sink (slisink.go)
	cpu               *cpuCount // guest CPU nanoseconds; nil outside Function (guestcpu.go)
}

// Request records one served request on stripe (any value; the gateway gives each
// connection its own, so that requests on different cores write different cache
// lines: requests.go).
func (f *FunctionMetrics) Request(stripe uint32, status int, seconds float64) {
	if f == nil {
		return
	}
	i := status/100 - 1
	if i < 0 || i > 4 {
		i = 4
	}
	f.requests.record(stripe, i, seconds)
}

// Error counts a runtime failure of a request.
func (f *FunctionMetrics) Error(reason string) {
	if f == nil {
		return
	}
	f.m.RequestErrors.WithLabelValues(f.name, f.version, reason).Inc()
}

// ColdStart counts a request that waited for a new instance.
func (f *FunctionMetrics) ColdStart() {
	if f == nil {
		return
	}
	f.coldStarts.Inc()
}

// InstanceStarted records an instance started for reason (a StartXxx value) and how
// long instantiation and guest init took.
func (f *FunctionMetrics) InstanceStarted(reason string, instantiate, init float64) {
	if f == nil {
		return
	}
	f.instantiate.Observe(instantiate)
	f.init.Observe(init)
	f.m.InstanceStarts.WithLabelValues(f.name, f.version, reason).Inc()
	if f.sli != nil {
		f.sli.InstanceStarted(reason)
	}
}

// Instances makes c the source of fermion_instances, fermion_instance_memory_bytes and
// fermion_instances_desired for this function version, read at
// each scrape; the series exist from now until the version's last holder forgets it.
// Several sources of one version (a redeploy of the same version, loaded while its
// predecessor closes) are summed.
func (f *FunctionMetrics) Instances(c InstanceCounts) {
	if f == nil {
		return
	}
	f.m.instances.add([2]string{f.name, f.version}, c)
}

// Discard counts an instance closed for reason.
func (f *FunctionMetrics) Discard(reason string) {
	if f == nil {
		return
	}
	f.m.Discards.WithLabelValues(f.name, f.version, reason).Inc()
	if f.sli != nil {
		f.sli.Discarded(reason)
	}
}

// Trap counts a guest execution that trapped.
func (f *FunctionMetrics) Trap() {
	if f == nil {
		return
	}
	f.traps.Inc()
}

// LimitRejection counts a request refused or cut short by limit.
func (f *FunctionMetrics) LimitRejection(limit string) {
	if f == nil {
		return
	}
	f.m.LimitRejections.WithLabelValues(f.name, f.version, limit).Inc()
	if f.sli != nil {
		f.sli.LimitRejected(limit)
	}
}

// Outbound counts an outbound call by result.
func (f *FunctionMetrics) Outbound(result string) {
	if f == nil {
		return
	}
	f.m.Outbound.WithLabelValues(f.name, f.version, result).Inc()
	if f.sli != nil {
		f.sli.Outbound(result)
	}
}

// LogDropped counts guest output bytes dropped past the per-request cap.
func (f *FunctionMetrics) LogDropped(n int) {
	if f == nil || n <= 0 {
		return
	}
	f.logDropped.Add(float64(n))
}

// Compiled records a module compile time.
func (f *FunctionMetrics) Compiled(seconds float64) {
	if f == nil {
		return
	}
	f.compile.Observe(seconds)
}

// InFlightAdd adds delta to the gateway's in-flight gauge, on stripe (any value; the
// gateway gives each connection its own). A request must add and take away on the
// same stripe.
//
// Why stripes? One word that every request writes at its start and end moves between
// the cores at each write when two cores serve requests (~150 ns a time; bench/
// RESULTS.md, "Gateway server step (connstep)"). Each stripe is on cache lines of its
// own, so connections served on different cores write different lines; a scrape sums
// them. No stripe goes below zero (a request takes away where it added), so the sum
// counts every request in flight throughout the scrape's reading of the stripes.
func (m *Metrics) InFlightAdd(stripe uint32, delta int64) {
	if m == nil {
		return
	}
	m.inFlight.Add(stripe, delta)
}

// inFlightNow is the in-flight gauge's value: the sum of its stripes.
func (m *Metrics) inFlightNow() float64 { return float64(m.inFlight.Sum()) }

// BuildInfo is fermion_build_info{version, goversion} 1, which every Fermion process
// exports: alerts use it to tell Fermion targets from others.
func BuildInfo(version string) prometheus.Collector {
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "fermion_build_info",
		Help: "Build information; always 1.",
	}, []string{"version", "goversion"})
	build.WithLabelValues(version, runtime.Version()).Set(1)
	return build
}

// Register registers c on reg, or returns the collector already registered there under
// the same description (a second Node or Cache in one process shares the first's).
func Register[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(T); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("register metrics: %w", err)
}
