package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"fermion.dev/fermion/internal/agent"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/telemetry"
)

type runOptions struct {
	listen, adminListen string
	tlsCert, tlsKey     string
	cacheDir            string
	noBuild             bool
	noTelemetry         bool
	profiling           bool
	spoolDir, spoolMax  string
	logLevel            string
	drainTimeout        time.Duration
	limits              gatewayLimitOptions
	requestLog          requestLogOptions
	load                loadFlags
}

func newRunCmd() *cobra.Command {
	o := runOptions{}
	c := &cobra.Command{
		Use:   "run [DIR|fermion.toml ...]",
		Short: "Build and serve functions from local manifests on one node (no control plane)",
		Long: `Run builds each function's guest (per its fermion.toml), loads it into the sandbox,
prewarms min_warm instances and serves every route through one HTTP gateway.
A function that fails to build or load is reported and left out; the others are
served. Run exits non-zero only when none of them can be served.
Metrics are served on the admin address at /metrics, with /healthz and /readyz.
Traces are exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set.`,
		Example: `  fermion run .
  fermion run examples/hello examples/echo --listen 127.0.0.1:8080`,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{"."}
			}
			return runFunctions(c.Context(), o, args, c.OutOrStdout(), c.ErrOrStderr())
		},
	}
	f := c.Flags()
	f.StringVar(&o.listen, "listen", "127.0.0.1:8080", "gateway address")
	f.StringVar(&o.adminListen, "admin-listen", "127.0.0.1:9090", "metrics and health address (empty: off)")
	gatewayTLSFlags(f, "", &o.tlsCert, &o.tlsKey)
	o.limits.flags(f, "")
	o.requestLog.flags(f, "")
	f.StringVar(&o.cacheDir, "cache-dir", defaultCacheDir(), "compilation cache directory (empty: in memory; default under $FERMION_HOME when set)")
	f.BoolVar(&o.noBuild, "no-build", false, "do not run build commands; use the existing modules")
	f.BoolVar(&o.noTelemetry, "no-telemetry", false, "switch off metrics, spans and request logs")
	f.BoolVar(&o.profiling, "profiling", false, profilingUsage)
	f.StringVar(&o.spoolDir, "telemetry-spool", defaultSpoolDir(), spoolUsage+" (default under $FERMION_HOME when set)")
	f.StringVar(&o.spoolMax, "telemetry-spool-max", "1GiB", spoolMaxUsage)
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.DurationVar(&o.drainTimeout, "drain-timeout", 30*time.Second, "how long to wait for in-flight requests at shutdown")
	o.load.add(f, "")
	return c
}

func runFunctions(ctx context.Context, o runOptions, paths []string, stdout, stderr io.Writer) error {
	logger, done, err := serviceLogger(stderr, o.logLevel)
	if err != nil {
		return err
	}
	defer done()
	// Before the builds: a typo in an address must not cost one.
	if err := checkListens("listen", o.listen, "admin-listen", o.adminListen); err != nil {
		return err
	}
	if err := tlsPair("", o.tlsCert, o.tlsKey); err != nil {
		return err
	}
	limits, err := o.limits.limits()
	if err != nil {
		return err
	}
	requestLog, err := o.requestLog.config()
	if err != nil {
		return err
	}
	loadLimits, worker, compileMemory, err := o.load.config()
	if err != nil {
		return err
	}
	manifests := make([]*manifest.Manifest, 0, len(paths))
	byName := map[string]*manifest.Manifest{}
	// One function that cannot be served does not keep the others from serving.
	var failures []loadFailure
	for _, p := range paths {
		m, err := manifest.Load(p)
		if err != nil {
			failures = append(failures, loadFailure{what: p, reason: telemetry.LoadManifest, err: &agent.LoadError{Reason: telemetry.LoadManifest, Err: err}})
			continue
		}
		// A node runs one version of each function: a second manifest with the same
		// name would silently replace the first.
		if prev, dup := byName[m.App.Name]; dup {
			return fmt.Errorf("function %q is defined by both %s and %s; give each app its own name", m.App.Name, displayPath(prev.Path), displayPath(m.Path))
		}
		byName[m.App.Name] = m
		manifests = append(manifests, m)
	}
	tracing, err := newTracing(ctx, logger, !o.noTelemetry, o.spoolDir, o.spoolMax)
	if err != nil {
		return err
	}
	defer shutdownTracing(tracing)

	dp, err := agent.NewDataPlane(agent.DataPlaneConfig{
		CacheDir: o.cacheDir, Logger: logger, Telemetry: !o.noTelemetry, Version: Version,
		Tracing: tracing, DrainTimeout: o.drainTimeout, Profiling: o.profiling, TLSCert: o.tlsCert, TLSKey: o.tlsKey,
		Limits: limits, RequestLog: requestLog,
		LoadLimits: loadLimits, CompileWorker: worker, CompileMemory: compileMemory,
	})
	if err != nil {
		return err
	}
	for _, f := range failures {
		dp.Metrics.LoadFailure(f.reason)
	}
	served := manifests[:0:0]
	for _, m := range manifests {
		wasm, err := buildGuest(ctx, m, o.noBuild, stderr)
		if err != nil {
			if ctx.Err() != nil {
				dp.Close(ctx)
				return err
			}
			dp.Metrics.LoadFailure(telemetry.LoadBuild)
			failures = append(failures, loadFailure{what: displayPath(m.Path), reason: telemetry.LoadBuild, err: &agent.LoadError{Reason: telemetry.LoadBuild, Err: err}})
			continue
		}
		if _, err := dp.Deploy(ctx, m, wasm); err != nil {
			if ctx.Err() != nil {
				dp.Close(ctx)
				return err
			}
			failures = append(failures, loadFailure{what: displayPath(m.Path), reason: agent.LoadReason(err), err: err})
			continue
		}
		served = append(served, m)
	}
	for _, f := range failures {
		fmt.Fprintf(stderr, "not serving %s: %s\n", f.what, f.err)
	}
	if len(served) == 0 {
		dp.Close(ctx)
		return noneServed(failures)
	}
	gw, err := net.Listen("tcp", o.listen)
	if err != nil {
		dp.Close(ctx)
		return fmt.Errorf("gateway listen: %w; choose another address with --listen", err)
	}
	var admin net.Listener
	if o.adminListen != "" {
		admin, err = net.Listen("tcp", o.adminListen)
		if err != nil {
			gw.Close()
			dp.Close(ctx)
			return fmt.Errorf("admin listen: %w; choose another address with --admin-listen", err)
		}
	}
	gwHost, gwNote := reachable(gw.Addr().String())
	base := dp.Scheme() + "://" + gwHost
	fmt.Fprintf(stdout, "gateway listening on %s%s\n", base, gwNote)
	if admin != nil {
		h, note := reachable(admin.Addr().String())
		fmt.Fprintf(stdout, "metrics on http://%s/metrics%s\n", h, note)
	}
	for _, m := range served {
		for _, r := range m.Routes {
			host := ""
			if r.Host != "" {
				host = " (host " + r.Host + ")"
			}
			fmt.Fprintf(stdout, "serving %s at %s%s%s\n", m.ID(), base, r.Path, host)
		}
	}
	err = dp.Serve(ctx, gw, admin)
	fmt.Fprintln(stdout, "stopped")
	return err
}

// loadFailure is a function run could not serve, and why.
type loadFailure struct {
	what   string // the manifest's path
	reason string // telemetry.Load*
	err    error
}

// noneServed is run's error when no function could be served: each one's reason.
func noneServed(failures []loadFailure) error {
	if len(failures) == 1 {
		// Alone, the reason adds nothing; manifest and build errors name their file.
		f := failures[0]
		if err := errors.Unwrap(f.err); f.reason == telemetry.LoadManifest || f.reason == telemetry.LoadBuild {
			return err
		}
		return fmt.Errorf("%s: %w", f.what, errors.Unwrap(f.err))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "none of the %d functions can be served:", len(failures))
	for _, f := range failures {
		fmt.Fprintf(&b, "\n  %s: %v", f.what, f.err)
	}
	return errors.New(b.String())
}

func displayPath(p string) string {
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(rel, "..") {
			return rel
		}
	}
	return p
}
