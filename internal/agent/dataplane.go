// Package agent is the node role: the data plane (sandbox engine, gateway, admin
// endpoints) that `fermion run` uses alone, and the Node that runs it under the control
// plane: it joins, registers and heartbeats over NATS, pulls its assignments through the
// node cache and keeps serving the last ones it knew while the control plane is away.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"fermion.dev/fermion/internal/gateway"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/telemetry"
)

// DataPlaneConfig configures a DataPlane.
type DataPlaneConfig struct {
	CacheDir     string // compilation cache ("" in memory)
	Logger       *slog.Logger
	Telemetry    bool // metrics, spans and request logs
	Version      string
	Tracing      *telemetry.Tracing // nil: no-op
	DrainTimeout time.Duration
	// RouteDrain is how long a route this node stopped serving answers 503 with
	// Retry-After, and /readyz?route= reports it not ready, before it answers 404
	// (0: gateway.DefaultRouteDrain; negative: 404 at once).
	RouteDrain time.Duration
	// Labels are added to every guest log line (node name, region...).
	Labels map[string]string
	// Profiling serves Go's profiles at /debug/pprof/ on the admin address.
	Profiling bool
	// TLSCert and TLSKey, PEM files, make the gateway serve HTTPS; renewed files are
	// picked up without a restart.
	TLSCert, TLSKey string
	// Limits bound what the gateway's clients can hold (zero fields: defaults).
	Limits gateway.Limits
	// RequestLog says which requests get a log line (zero: telemetry's defaults, the
	// production ones: every request up to DefaultRequestLogRate lines per second).
	RequestLog telemetry.RequestLogConfig
	// MemoryBytes is the memory the node offers to functions, the capacity it advertises
	// (0: no limit): the live instances of all functions together hold at most this
	// much, each its limits.memory (sandbox.EngineConfig.MemoryBytes).
	MemoryBytes int64
	// LoadLimits, CompileWorker and CompileMemory are the engine's (sandbox.EngineConfig).
	LoadLimits    manifest.LoadLimits
	CompileWorker []string
	CompileMemory int64
	// SLIs aggregates the SLIs a Node sends the control plane (sli.go). Nil: with
	// Telemetry, the data plane makes one for Labels["node"] with SLIInterval.
	SLIs        *sli.Aggregator
	SLIInterval time.Duration // default sli.DefaultInterval
}

// DataPlane runs function versions behind one gateway.
type DataPlane struct {
	cfg     DataPlaneConfig
	Metrics *telemetry.Metrics
	Engine  *sandbox.Engine
	Gateway *gateway.Gateway
	tls     *telemetry.TLS // nil: plain HTTP

	slis *sliSource // nil: no SLIs (sli.go)

	mu        sync.Mutex           // guards functions, routes and ready; leaf
	functions map[string]*deployed // by deployment name (the app name for Deploy)
	ready     func() error         // /readyz's check (SetReadiness); nil: ready while serving

	// retired holds the timelines of the last replaced versions, by deployment name
	// (instances.go); under mu.
	retired map[string][]retiredVersion
}

type deployed struct {
	fn     *sandbox.Function
	routes []manifest.Route
	canary *canary // nil: no weight split (canary.go)
}

// NewDataPlane creates the engine and gateway.
func NewDataPlane(cfg DataPlaneConfig) (*DataPlane, error) {
	if cfg.Logger == nil {
		cfg.Logger = telemetry.Discard
	}
	d := &DataPlane{cfg: cfg, functions: map[string]*deployed{}}
	if cfg.Telemetry {
		d.Metrics = telemetry.NewMetrics(cfg.Version)
	}
	ecfg := sandbox.EngineConfig{CacheDir: cfg.CacheDir, Logger: cfg.Logger, Metrics: d.Metrics, MemoryBytes: cfg.MemoryBytes,
		LoadLimits: cfg.LoadLimits, CompileWorker: cfg.CompileWorker, CompileMemory: cfg.CompileMemory}
	if err := cfg.Limits.Validate(); err != nil {
		return nil, fmt.Errorf("gateway limits: %w", err)
	}
	gcfg := gateway.Config{Logger: cfg.Logger, Metrics: d.Metrics, Telemetry: cfg.Telemetry, DrainTimeout: cfg.DrainTimeout, RouteDrain: cfg.RouteDrain, Limits: cfg.Limits,
		RequestLog: cfg.RequestLog}
	d.slis = newSLISource(cfg, d.Metrics) // hook: SLI aggregation (sli.go)
	gcfg.SLIs = d.slis.aggregator()
	if cfg.Tracing != nil && cfg.Telemetry {
		ecfg.Tracer = cfg.Tracing.Tracer("fermion/sandbox")
		gcfg.Tracer = cfg.Tracing.Tracer("fermion/gateway")
		for _, c := range cfg.Tracing.Collectors() {
			if err := d.Metrics.Registry.Register(c); err != nil {
				return nil, fmt.Errorf("register telemetry export metrics: %w", err)
			}
		}
	}
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		var reg prometheus.Registerer
		if d.Metrics != nil {
			reg = d.Metrics.Registry
		}
		t, err := telemetry.NewTLS(reg, cfg.Logger, "gateway", cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("gateway TLS: %w", err)
		}
		d.tls = t
		gcfg.TLS = t.Listener
	}
	e, err := sandbox.NewEngine(ecfg)
	if err != nil {
		return nil, err
	}
	d.Engine = e
	d.Gateway = gateway.New(gcfg)
	return d, nil
}

// Deploy loads a function version and routes its manifest's routes to it, under the
// app's name. A function with the same name is replaced: the new version is loaded and
// prewarmed first, the routes switch atomically, then the old version drains (in the
// background) once the requests the gateway routed to it have finished.
func (d *DataPlane) Deploy(ctx context.Context, m *manifest.Manifest, wasm []byte) (*sandbox.Function, error) {
	return d.DeployAs(ctx, m.App.Name, m, wasm)
}

// DeployAs is Deploy under name (a deployment's name, which may differ from its app's)
// instead of the app's name. Remove and Unroute take the same name. A failure is a
// *LoadError (module or routes), counted in fermion_load_failures_total; what was
// deployed under name before keeps serving.
func (d *DataPlane) DeployAs(ctx context.Context, name string, m *manifest.Manifest, wasm []byte) (*sandbox.Function, error) {
	spec := sandbox.SpecFromManifest(m, wasm)
	d.slis.name(name, m.App.Name, m.App.Version) // before Load: its instances' events carry the deployment
	spec.Labels = d.cfg.Labels
	fn, err := d.Engine.Load(ctx, spec)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err // canceled: no failure of the module's
		}
		return nil, loadFailed(d.Metrics, moduleLoadReason(err), err) // warmup.go
	}
	d.mu.Lock()
	old := d.functions[name]
	d.functions[name] = &deployed{fn: fn, routes: m.Routes}
	err = d.applyRoutesLocked()
	if err != nil {
		if old != nil {
			d.functions[name] = old
		} else {
			delete(d.functions, name)
		}
		d.applyRoutesLocked()
	}
	d.mu.Unlock()
	if err != nil {
		fn.Close(ctx)
		return nil, loadFailed(d.Metrics, telemetry.LoadRoutes, err)
	}
	if old != nil {
		go func() {
			d.retire(context.WithoutCancel(ctx), old.fn)
			d.keepTimelines(name, old.fn) // instances.go
		}()
		if old.canary != nil {
			// A new stable version ends the split; the canary drains with the old one.
			d.retireLater(ctx, old.canary.fn)
		}
	}
	return fn, nil
}

// retire closes a function that is no longer routed once the gateway has no request in
// flight that was routed to it (such a request would otherwise find it closed), waiting
// at most the drain timeout for them.
func (d *DataPlane) retire(ctx context.Context, fn *sandbox.Function) error {
	qctx, cancel := context.WithTimeout(ctx, d.drainTimeout())
	err := d.Gateway.Quiesce(qctx)
	cancel()
	if err != nil {
		d.cfg.Logger.Warn("closing a function with requests still in flight", "function", fn.Name(), "version", fn.Version(), "err", err)
	}
	return fn.Close(ctx)
}

func (d *DataPlane) drainTimeout() time.Duration {
	if d.cfg.DrainTimeout > 0 {
		return d.cfg.DrainTimeout
	}
	return 30 * time.Second
}

// Remove stops routing to a function and drains it.
func (d *DataPlane) Remove(ctx context.Context, name string) error {
	drain, err := d.Unroute(name)
	if drain == nil {
		return err
	}
	return errors.Join(err, drain(ctx))
}

// Unroute stops routing to the function deployed under name at once and returns drain,
// which waits (at most the drain timeout) for the requests already routed to it and
// closes it: the caller chooses where that wait happens. Remove is Unroute then drain.
// drain is nil when nothing is deployed under name.
func (d *DataPlane) Unroute(name string) (drain func(context.Context) error, err error) {
	d.mu.Lock()
	old, ok := d.functions[name]
	delete(d.functions, name)
	err = d.applyRoutesLocked()
	d.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("remove %s: not deployed", name)
	}
	d.forgetTimelines(name) // instances.go
	return func(ctx context.Context) error {
		if old.canary != nil {
			defer old.canary.fn.Close(ctx) // quiesced with the stable version below
		}
		return d.retire(ctx, old.fn)
	}, err
}

// Serving reports whether a version is deployed and routed under name.
func (d *DataPlane) Serving(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.functions[name]
	return ok
}

// SetReadiness makes check answer /readyz on the admin address. Without one the data
// plane is ready whenever Serve runs, which suits fermion run: it serves only once its
// functions are loaded. A Node sets its own Ready when it takes the data plane.
func (d *DataPlane) SetReadiness(check func() error) {
	d.mu.Lock()
	d.ready = check
	d.mu.Unlock()
}

func (d *DataPlane) checkReady() error {
	d.mu.Lock()
	check := d.ready
	d.mu.Unlock()
	if check == nil {
		return nil
	}
	return check()
}

// Functions returns the deployed functions by name.
func (d *DataPlane) Functions() []*sandbox.Function {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*sandbox.Function, 0, len(d.functions))
	for _, dep := range d.functions {
		out = append(out, dep.fn)
		if dep.canary != nil {
			out = append(out, dep.canary.fn)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name() != out[j].Name() {
			return out[i].Name() < out[j].Name()
		}
		return out[i].Version() < out[j].Version()
	})
	return out
}

func (d *DataPlane) applyRoutesLocked() error {
	var routes []gateway.Route
	for name, dep := range d.functions {
		for _, r := range dep.routes {
			routes = append(routes, gateway.Route{Host: r.Host, Prefix: r.Path, Target: dep.fn, Deployment: name, Split: dep.split()}) // [hotpath hook: Deployment]
		}
	}
	return d.Gateway.SetRoutes(routes)
}

// Scheme is the gateway's URL scheme: "https" with TLSCert, else "http".
func (d *DataPlane) Scheme() string {
	if d.tls != nil {
		return "https"
	}
	return "http"
}

// Serve serves the gateway on gw (over TLS with TLSCert, under Limits) and the admin endpoints (/metrics, /healthz, /readyz,
// /readyz?route=, and /debug/pprof/ with Profiling) on admin (nil: none) until ctx is done, then drains
// and closes every function.
func (d *DataPlane) Serve(ctx context.Context, gw, admin net.Listener) error {
	var wg sync.WaitGroup
	var adminSrv *http.Server
	if admin != nil {
		h := telemetry.AdminHandler(telemetry.Admin{Gatherer: d.Metrics.Gatherer(), Ready: d.checkReady, Profiling: d.cfg.Profiling})
		adminSrv = &http.Server{Handler: d.routeReadiness(h), ReadHeaderTimeout: 10 * time.Second}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := adminSrv.Serve(admin); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.cfg.Logger.Error("admin server", "err", err)
			}
		}()
	}
	err := d.Gateway.Serve(ctx, gw)
	if adminSrv != nil {
		adminSrv.Close()
	}
	wg.Wait()
	return errors.Join(err, d.Close(context.WithoutCancel(ctx)))
}

// Close drains and closes every function and the engine.
func (d *DataPlane) Close(ctx context.Context) error {
	d.mu.Lock()
	fns := d.functions
	d.functions = map[string]*deployed{}
	d.mu.Unlock()
	var errs []error
	for _, dep := range fns {
		errs = append(errs, dep.fn.Close(ctx))
		if dep.canary != nil {
			errs = append(errs, dep.canary.fn.Close(ctx))
		}
	}
	errs = append(errs, d.Engine.Close(ctx))
	return errors.Join(errs...)
}
