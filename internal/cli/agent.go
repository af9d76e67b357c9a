package cli

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/agent"
	"fermion.dev/fermion/internal/gateway"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/oci"
	"fermion.dev/fermion/internal/policy"
	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/telemetry"
)

type agentOptions struct {
	servers                        []string
	token, name, data              string
	labels                         []string
	memory                         string
	instances                      int
	milliCPU                       int64
	listen, adminListen, advertise string
	tlsCert, tlsKey                string
	cacheDir, cacheMax             string
	keepRevisions                  int
	registryToken                  string
	caFile                         string
	noTelemetry, profiling         bool
	spoolDir, spoolMax             string
	drainTimeout, routeDrain       time.Duration
	logLevel                       string
	allowImports, allowOutbound    []string
	allowEnv, runtimePolicies      []string
	allowFiles                     bool
	allowMemory                    string
	limits                         gatewayLimitOptions
	requestLog                     requestLogOptions
	load                           loadFlags
	// adminAuto is set when --admin-listen was not given: the default address is then
	// a wish, and a free port replaces it when another agent on the machine holds it.
	adminAuto bool
	prefix    string // of the flags: "agent-" under up
	// SLI summaries to the control plane (internal/agent/slisend.go).
	sliInterval time.Duration
	sliBuffer   string
}

// defaultAdminListen is the agent's admin address unless --admin-listen names one.
const defaultAdminListen = "127.0.0.1:9090"

func (o *agentOptions) flags(c *cobra.Command, prefix string) {
	o.prefix = prefix
	f := c.Flags()
	f.StringSliceVar(&o.servers, prefix+"server", nil, "control plane NATS URL, nats://host:4222 (repeat or comma-separate for a cluster)")
	f.StringVar(&o.token, prefix+"token", "", "join token (role node; or FERMION_JOIN_TOKEN); needed until the node has credentials")
	f.StringVar(&o.name, prefix+"name", "", "node name, a DNS label (default: the host name)")
	f.StringVar(&o.data, prefix+"data", "", "data directory: credentials, last assignments, artifact cache (default $FERMION_HOME/agents/<name>, FERMION_HOME defaulting to ~/.fermion)")
	f.StringArrayVar(&o.labels, prefix+"label", nil, "node label key=value (repeat): region, zone, tier …")
	f.StringVar(&o.memory, prefix+"memory", "", "memory offered to functions, e.g. 4GiB (default: 3/4 of the machine's); live instances together hold at most this, each its limits.memory")
	f.IntVar(&o.instances, prefix+"max-instances", 1024, "most instances the node runs")
	f.Int64Var(&o.milliCPU, prefix+"cpu", int64(runtime.NumCPU())*1000, "CPU offered, in millicores")
	f.StringVar(&o.listen, prefix+"listen", "127.0.0.1:8080", "gateway address")
	f.StringVar(&o.advertise, prefix+"gateway-url", "", "URL the gateway is reached at, as the control plane records it (default: http://<listen>, localhost for a wildcard listen address, https:// with --"+prefix+"tls-cert)")
	gatewayTLSFlags(f, prefix, &o.tlsCert, &o.tlsKey)
	o.limits.flags(f, prefix)
	o.requestLog.flags(f, prefix)
	f.StringVar(&o.adminListen, prefix+"admin-listen", defaultAdminListen, "metrics and health address (empty: off); when not given and the default is taken (another agent on this machine), a free port, printed on start")
	f.StringVar(&o.cacheDir, prefix+"cache-dir", defaultCacheDir(), "compilation cache directory (empty: in memory; default under $FERMION_HOME when set)")
	f.StringVar(&o.cacheMax, prefix+"cache-max", "1GiB", "bound on the artifact cache")
	f.IntVar(&o.keepRevisions, prefix+"keep-revisions", agent.DefaultKeepRevisions, "revisions of each deployment whose artifacts stay pinned in the cache, the running one included, so a rollback starts while the registry is down (1: only what runs)")
	f.StringVar(&o.registryToken, prefix+"registry-token", "", "token for pulling from registries that require one (or FERMION_REGISTRY_TOKEN)")
	f.StringVar(&o.caFile, prefix+"ca-file", "", "PEM CA certificates to trust besides the system's, for a control plane (NATS, registry) with a private CA (or FERMION_CA_FILE)")
	f.BoolVar(&o.noTelemetry, prefix+"no-telemetry", false, "switch off metrics, spans and request logs")
	f.BoolVar(&o.profiling, prefix+"profiling", false, profilingUsage)
	f.StringVar(&o.spoolDir, prefix+"telemetry-spool", "", spoolUsage+" (default: telemetry-spool in the data directory)")
	f.StringVar(&o.spoolMax, prefix+"telemetry-spool-max", "1GiB", spoolMaxUsage)
	f.DurationVar(&o.drainTimeout, prefix+"drain-timeout", 30*time.Second, "how long removed versions may finish in-flight requests")
	f.DurationVar(&o.routeDrain, prefix+"route-drain", gateway.DefaultRouteDrain, "how long a route that moved away or was removed answers 503 with Retry-After (and /readyz?route= not ready) before 404 (0: 404 at once)")
	f.StringSliceVar(&o.allowImports, prefix+"allow-import", []string{"wasi_snapshot_preview1", "fermion"}, "wasm import modules this node allows (node.allow.import_modules in runtime policies)")
	f.StringSliceVar(&o.allowOutbound, prefix+"allow-outbound", nil, "outbound hosts this node allows (node.allow.outbound_hosts)")
	f.StringSliceVar(&o.allowEnv, prefix+"allow-env", nil, "environment variables a guest may be given here (node.allow.env)")
	f.BoolVar(&o.allowFiles, prefix+"allow-files", false, "allow read-only file mounts (node.allow.files)")
	f.StringVar(&o.allowMemory, prefix+"allow-memory", "", "most memory one instance may have here, e.g. 256MiB (node.allow.memory; empty: no limit)")
	o.load.add(f, prefix)
	f.StringArrayVar(&o.runtimePolicies, prefix+"runtime-policy", nil, "runtime policy file this node enforces before every start, whatever the control plane sends (repeat)")
	f.DurationVar(&o.sliInterval, prefix+"sli-interval", sli.DefaultInterval, "how often the node sends the control plane its SLI summaries (requests, latency, starts, discards… per version), 100ms–1h")
	f.StringVar(&o.sliBuffer, prefix+"sli-buffer", "8MiB", "bound on the SLI summaries kept while the control plane is away, oldest dropped past it (64KiB–1GiB)")
	if prefix == "" {
		f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	}
}

func newAgentCmd() *cobra.Command {
	o := agentOptions{}
	c := &cobra.Command{
		Use:   "agent",
		Short: "Run a node: join the control plane, run what it assigns, keep serving when it is away",
		Long: `Agent runs an edge node: the sandbox and gateway of 'fermion run', under the control
plane. It joins with a node-role token (fermion token create --role node); the server then
issues the node's own credentials, kept in --data, so later starts need no token. It
registers its labels and capacity, renews its lease every 10 s, and runs the versions the
scheduler assigns it: pulled and verified through the node cache, compiled, prewarmed,
switched in the gateway without dropping requests.

When the control plane is unreachable the agent keeps serving its last assignments (also
across restarts), retries with backoff and jitter, and converges when it is back.`,
		Example: `  fermion agent --server nats://cp:4222 --token fmn_… --label region=eu-west --label zone=a --label tier=edge`,
		Args:    exactArgs(0),
		RunE: func(c *cobra.Command, _ []string) error {
			ctx := c.Context()
			logger, done, err := serviceLogger(c.ErrOrStderr(), o.logLevel)
			if err != nil {
				return err
			}
			defer done()
			o.adminAuto = !c.Flags().Changed("admin-listen")
			a, err := startAgentRole(ctx, o, logger, c.OutOrStdout())
			if err != nil {
				return err
			}
			err = a.wait()
			fmt.Fprintln(c.OutOrStdout(), "stopped")
			return err
		},
	}
	o.flags(c, "")
	return c
}

// agentRole is a running node.
type agentRole struct {
	node    *agent.Node
	dp      *agent.DataPlane
	tracing *telemetry.Tracing
	gateway string
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	errs    [2]error
}

func parseLabels(ls []string) (map[string]string, error) {
	out := map[string]string{}
	for _, l := range ls {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--label %q: want key=value", l)
		}
		out[k] = v
	}
	return out, nil
}

// machineMemory is MemTotal from /proc/meminfo, or 0.
func machineMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func startAgentRole(ctx context.Context, o agentOptions, logger *slog.Logger, stdout io.Writer) (*agentRole, error) {
	if err := checkListens(o.prefix+"listen", o.listen, o.prefix+"admin-listen", o.adminListen); err != nil {
		return nil, err
	}
	if len(o.servers) == 0 {
		return nil, usageError{errors.New("--server is required: the control plane's NATS URL, e.g. nats://127.0.0.1:4222")}
	}
	if o.token == "" {
		o.token = os.Getenv("FERMION_JOIN_TOKEN")
	}
	if o.name == "" {
		h, _ := os.Hostname()
		o.name = strings.ToLower(strings.Split(h, ".")[0])
	}
	if err := v1.ValidName("node", o.name); err != nil {
		return nil, usageError{fmt.Errorf("%w; choose one with --name", err)}
	}
	if o.data == "" {
		// Named by the node, so two agents on one machine never share credentials.
		home, err := fermionHome()
		if err != nil {
			return nil, fmt.Errorf("agent data directory: %w; or pass --data", err)
		}
		o.data = filepath.Join(home, "agents", o.name)
	}
	labels, err := parseLabels(o.labels)
	if err != nil {
		return nil, usageError{err}
	}
	capacity := v1.Resources{MilliCPU: o.milliCPU, Instances: o.instances}
	if o.memory != "" {
		n, err := manifest.ParseSize(o.memory)
		if err != nil {
			return nil, usageError{fmt.Errorf("--memory: %w", err)}
		}
		capacity.MemoryBytes = n
	} else {
		capacity.MemoryBytes = machineMemory() / 4 * 3
	}
	cacheMax, err := manifest.ParseSize(o.cacheMax)
	if err != nil {
		return nil, usageError{fmt.Errorf("--cache-max: %w", err)}
	}
	if o.keepRevisions < 1 || o.keepRevisions > 10 {
		return nil, usageError{fmt.Errorf("--keep-revisions %d: want 1 (only the running revision) to 10", o.keepRevisions)}
	}
	sliBuffer, err := o.sliConfig()
	if err != nil {
		return nil, err
	}
	if o.registryToken == "" {
		o.registryToken = os.Getenv("FERMION_REGISTRY_TOKEN")
	}
	allow := policy.NodeAllow{ImportModules: o.allowImports, OutboundHosts: o.allowOutbound, Env: o.allowEnv, Files: o.allowFiles}
	if o.allowMemory != "" {
		if allow.Memory, err = manifest.ParseSize(o.allowMemory); err != nil {
			return nil, usageError{fmt.Errorf("--allow-memory: %w", err)}
		}
	}
	loadLimits, worker, compileMemory, err := o.load.config()
	if err != nil {
		return nil, err
	}
	var rules []*policy.Policy
	for _, path := range o.runtimePolicies {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("--runtime-policy: %w", err)
		}
		p, err := policy.ParseFile(path, b)
		if err != nil {
			return nil, err
		}
		rules = append(rules, p)
	}
	if err := tlsPair("", o.tlsCert, o.tlsKey); err != nil {
		return nil, err
	}
	limits, err := o.limits.limits()
	if err != nil {
		return nil, err
	}
	requestLog, err := o.requestLog.config()
	if err != nil {
		return nil, err
	}
	roots, err := loadCA(o.caFile)
	if err != nil {
		return nil, err
	}
	gw, err := listen(o.listen, "gateway", "listen")
	if err != nil {
		return nil, err
	}
	var admin net.Listener
	if o.adminListen != "" {
		if admin, err = listenAdmin(o.adminListen, o.adminAuto); err != nil {
			gw.Close()
			return nil, err
		}
	}
	gwNote := ""
	if o.advertise == "" {
		scheme := "http://"
		if o.tlsCert != "" {
			scheme = "https://"
		}
		// What the control plane records as where this node answers (fermion nodes, up):
		// a wildcard listen address is no URL to give anyone, localhost at least works here.
		var h string
		h, gwNote = reachable(gw.Addr().String())
		o.advertise = scheme + h
	}
	if o.spoolDir == "" {
		o.spoolDir = filepath.Join(o.data, "telemetry-spool")
	}
	tracing, err := newTracing(ctx, logger, !o.noTelemetry, o.spoolDir, o.spoolMax)
	if err != nil {
		gw.Close()
		if admin != nil {
			admin.Close()
		}
		return nil, err
	}
	dp, err := agent.NewDataPlane(agent.DataPlaneConfig{CacheDir: o.cacheDir, Logger: logger, Telemetry: !o.noTelemetry,
		Version: Version, DrainTimeout: o.drainTimeout, RouteDrain: routeDrainConfig(o.routeDrain), Labels: map[string]string{"node": o.name}, Profiling: o.profiling,
		Tracing: tracing, TLSCert: o.tlsCert, TLSKey: o.tlsKey, Limits: limits, MemoryBytes: capacity.MemoryBytes,
		LoadLimits: loadLimits, CompileWorker: worker, CompileMemory: compileMemory,
		SLIInterval: o.sliInterval, RequestLog: requestLog})
	if err != nil {
		gw.Close()
		if admin != nil {
			admin.Close()
		}
		shutdownTracing(tracing)
		return nil, err
	}
	ncfg := agent.NodeConfig{Name: o.name, DataDir: o.data, Servers: o.servers, JoinToken: o.token, Labels: labels,
		Capacity: capacity, GatewayURL: o.advertise, AgentVersion: Version, DataPlane: dp, CacheMaxBytes: cacheMax, KeepRevisions: o.keepRevisions,
		Registry: &oci.Client{Token: o.registryToken, RootCAs: roots}, Logger: logger, Allow: allow, RuntimePolicies: rules,
		SLIBufferBytes: sliBuffer, TelemetryBacklog: tracing.Backlog, TelemetryHealth: tracing.Health}
	if dp.Metrics != nil {
		ncfg.Metrics = dp.Metrics.Registry
	}
	if roots != nil {
		ncfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	}
	node, err := agent.NewNode(ncfg)
	if err != nil {
		gw.Close()
		if admin != nil {
			admin.Close()
		}
		dp.Close(ctx)
		shutdownTracing(tracing)
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	a := &agentRole{node: node, dp: dp, tracing: tracing, gateway: o.advertise, cancel: cancel}
	a.wg.Add(2)
	go func() {
		defer a.wg.Done()
		if a.errs[0] = node.Run(rctx); a.errs[0] != nil {
			cancel() // the node gave up (a refused join token): stop serving too, and exit
		}
	}()
	go func() {
		defer a.wg.Done()
		a.errs[1] = dp.Serve(rctx, gw, admin)
	}()
	fmt.Fprintf(stdout, "node %s: gateway %s%s\n", o.name, o.advertise, gwNote)
	if admin != nil {
		if o.adminAuto && admin.Addr().String() != o.adminListen {
			fmt.Fprintf(stdout, "admin address %s is taken (another agent on this machine?): using a free port; pin one with --%sadmin-listen\n", o.adminListen, o.prefix)
		}
		h, note := reachable(admin.Addr().String())
		fmt.Fprintf(stdout, "metrics on http://%s/metrics%s\n", h, note)
	}
	servers, _ := reachableURL(strings.Join(o.servers, ","))
	fmt.Fprintf(stdout, "control plane %s\n", servers)
	return a, nil
}

// listenAdmin listens on the admin address. An address the user did not choose falls back
// to a free loopback port when taken, so a second agent on the machine starts as the
// README shows; one the user chose is an error, as they may have a scraper pointed at it.
func listenAdmin(addr string, auto bool) (net.Listener, error) {
	ln, err := listen(addr, "admin", "admin-listen")
	if err == nil || !auto || !errors.Is(err, syscall.EADDRINUSE) {
		return ln, err
	}
	host, _, serr := net.SplitHostPort(addr)
	if serr != nil {
		return nil, err
	}
	return listen(net.JoinHostPort(host, "0"), "admin", "admin-listen")
}

// wait waits until the node and data plane stop (when the context given to start is
// done) and returns their errors.
func (a *agentRole) wait() error {
	a.wg.Wait()
	shutdownTracing(a.tracing)
	var errs []error
	for _, err := range a.errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (a *agentRole) stop() error {
	a.cancel()
	return a.wait()
}

// routeDrainConfig turns --route-drain into DataPlaneConfig.RouteDrain, where zero
// means the default and a negative value none.
func routeDrainConfig(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

// SLI flag bounds: an interval short enough for tests and long enough that summaries
// stay a small load; a buffer that holds the largest summary and stays a small share
// of an edge node's memory.
const (
	minSLIInterval = 100 * time.Millisecond
	maxSLIInterval = time.Hour
	minSLIBuffer   = 64 << 10
	maxSLIBuffer   = 1 << 30
)

// sliConfig checks the SLI flags and returns the buffer bound in bytes.
func (o *agentOptions) sliConfig() (int, error) {
	if o.sliInterval < minSLIInterval || o.sliInterval > maxSLIInterval {
		return 0, usageError{fmt.Errorf("--%ssli-interval %s is out of range: give a duration from %s to %s (default %s)",
			o.prefix, o.sliInterval, minSLIInterval, maxSLIInterval, sli.DefaultInterval)}
	}
	n, err := manifest.ParseSize(o.sliBuffer)
	if err != nil {
		return 0, usageError{fmt.Errorf("--%ssli-buffer: %w", o.prefix, err)}
	}
	if n < minSLIBuffer || n > maxSLIBuffer {
		return 0, usageError{fmt.Errorf("--%ssli-buffer %s is out of range: give a size from 64KiB to 1GiB (default 8MiB)", o.prefix, o.sliBuffer)}
	}
	return int(n), nil
}
