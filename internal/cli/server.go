package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"fermion.dev/fermion/internal/controlplane"
	"fermion.dev/fermion/internal/telemetry"
)

type serverOptions struct {
	data, name                      string
	listen, natsListen, adminListen string
	registryListen, registryHost    string
	registryMaxBlob                 string
	nats, natsUser, natsPassword    string
	clusterName, clusterListen      string
	clusterSecret                   string
	routes, trust                   []string
	leaseRenew, leaseLost           time.Duration
	leaderTTL                       time.Duration
	logLevel                        string
	saveContext, requireSigned      bool
	trustMatchRepository            bool
	profiling                       bool
	tlsCert, tlsKey                 string // fermion server only
	caFile                          string // fermion server only
	// SLO engine (sloengine): evaluation interval and alert receivers.
	sloInterval                  time.Duration
	alertmanagers, alertWebhooks []string
	// Web console (console).
	traceUIURL string
	noConsole  bool
	// Rollout analysis' metric source (rollint).
	rolloutMetrics rolloutMetricsOptions
}

func (o *serverOptions) flags(c *cobra.Command, defaultData string) {
	f := c.Flags()
	f.StringVar(&o.data, "data", defaultData, "data directory: JetStream store and the admin token")
	f.StringVar(&o.name, "name", "", "this replica's name, unique in a cluster (default: the host name)")
	f.StringVar(&o.listen, "listen", "127.0.0.1:7070", "HTTP API address")
	f.StringVar(&o.natsListen, "nats-listen", "127.0.0.1:4222", "address agents connect to (NATS)")
	f.StringVar(&o.registryListen, "registry-listen", "127.0.0.1:5000", "built-in OCI registry address (empty: no registry)")
	f.StringVar(&o.registryHost, "registry-host", "", "host:port clients and agents reach the registry at (default: the registry listen address, localhost for a wildcard one)")
	f.StringVar(&o.registryMaxBlob, "registry-max-blob-size", maxBlobSizeDefault, maxBlobSizeUsage)
	f.StringVar(&o.adminListen, "admin-listen", "127.0.0.1:9091", "metrics and health address (empty: off)")
	f.BoolVar(&o.profiling, "profiling", false, profilingUsage)
	f.StringVar(&o.nats, "nats", "", "use this external NATS cluster (nats://host:port,…) instead of the embedded one")
	f.StringVar(&o.natsUser, "nats-user", "", "user for --nats")
	f.StringVar(&o.natsPassword, "nats-password", "", "password for --nats (or FERMION_NATS_PASSWORD)")
	f.StringVar(&o.clusterName, "cluster-name", "fermion", "cluster name (with --cluster-listen)")
	f.StringVar(&o.clusterListen, "cluster-listen", "", "route address for a 3-server cluster (empty: a single server)")
	f.StringVar(&o.clusterSecret, "cluster-secret", "", "secret every replica presents on its routes (or FERMION_CLUSTER_SECRET); required with --cluster-listen")
	f.StringSliceVar(&o.routes, "route", nil, "another replica's route URL, nats://host:port (repeat, or comma-separate)")
	f.StringArrayVar(&o.trust, "trust", nil, "public key (PEM) signatures are verified against, as [name=]path (repeat); policies see the name as artifact.signer")
	f.BoolVar(&o.requireSigned, "require-signed", false, "refuse artifacts without a signature by a trusted key everywhere (without it, policies such as require-signed decide)")
	f.BoolVar(&o.trustMatchRepository, "trust-match-repository", false, "also require a signature to name the repository the artifact is deployed from (off: a signature binds the digest, so mirrors and other host names verify, as with cosign verify --key)")
	f.DurationVar(&o.leaseRenew, "lease-renew", 10*time.Second, "how often agents renew their lease")
	f.DurationVar(&o.leaseLost, "lease-lost", 40*time.Second, "how long without a renewal before a node is lost and its work moves")
	f.DurationVar(&o.leaderTTL, "leader-ttl", 10*time.Second, "how long the controllers' leader lease lasts without renewal; a leader that cannot prove it for 3/4 of this steps down, and another takes over after it expires")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.BoolVar(&o.saveContext, "save-context", true, "save the API URL and admin token as the CLI's default context")
	o.sloFlags(c)             // sloengine
	o.consoleFlags(c)         // console
	o.rolloutMetrics.flags(c) // rollint
}

func newServerCmd() *cobra.Command {
	o := serverOptions{}
	c := &cobra.Command{
		Use:   "server",
		Short: "Run a control-plane replica: API, registry, scheduler and embedded NATS JetStream",
		Long: `Server runs the control plane: the HTTP API (/v1, token-authenticated), the built-in
OCI registry, the agent protocol over NATS, and the controllers (scheduler, node
lifecycle, drain) on whichever replica holds the leader lease. State lives in NATS
JetStream, embedded and stored under --data (or an external cluster with --nats).

The first start writes an admin token to <data>/admin.token and, unless
--save-context=false, saves the API URL and that token as the CLI's default context.

Three servers form a cluster with --cluster-listen and --route (each given every
replica's route URL); buckets are then replicated three ways and the API answers on
every replica.`,
		Example: `  fermion server --data ./cp
  FERMION_CLUSTER_SECRET=… fermion server --data ./cp1 --name cp1 --cluster-listen 10.0.0.1:6222 \
      --route nats://10.0.0.1:6222 --route nats://10.0.0.2:6222 --route nats://10.0.0.3:6222`,
		Args: exactArgs(0),
		RunE: func(c *cobra.Command, _ []string) error {
			ctx := c.Context()
			logger, done, err := serviceLogger(c.ErrOrStderr(), o.logLevel)
			if err != nil {
				return err
			}
			defer done()
			srv, err := startServerRole(ctx, o, logger, c.OutOrStdout())
			if err != nil {
				return err
			}
			<-ctx.Done()
			srv.close()
			fmt.Fprintln(c.OutOrStdout(), "stopped")
			return nil
		},
	}
	o.flags(c, "fermion-data")
	c.Flags().StringVar(&o.tlsCert, "tls-cert", "", "serve the API, the registry, agents' NATS connections and (with --cluster-listen) the routes between replicas over TLS with this PEM certificate (chain), reloaded when the file changes")
	c.Flags().StringVar(&o.caFile, "ca-file", "", "PEM CA certificates to trust besides the system's for the other replicas' certificates on TLS routes (or FERMION_CA_FILE)")
	c.Flags().StringVar(&o.tlsKey, "tls-key", "", "the PEM private key for --tls-cert")
	c.AddCommand(newServerBackupCmd(), newServerRestoreCmd()) // backup.go
	return c
}

// serverRole is a running control-plane replica with its listeners.
type serverRole struct {
	cp       *controlplane.Server
	apiURL   string
	registry string // host:port, "" without
	servers  []*http.Server
	wg       sync.WaitGroup
}

func listen(addr, what, flag string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listen: %w; choose another address with --%s", what, err, flag)
	}
	return ln, nil
}

func startServerRole(ctx context.Context, o serverOptions, logger *slog.Logger, stdout io.Writer) (*serverRole, error) {
	if err := checkListens("listen", o.listen, "nats-listen", o.natsListen, "registry-listen", o.registryListen,
		"admin-listen", o.adminListen, "cluster-listen", o.clusterListen); err != nil {
		return nil, err
	}
	if o.leaseLost <= o.leaseRenew {
		return nil, usageError{fmt.Errorf("--lease-lost (%s) must be longer than --lease-renew (%s)", o.leaseLost, o.leaseRenew)}
	}
	if err := o.checkSLOFlags(); err != nil { // sloengine
		return nil, err
	}
	if err := o.checkConsoleFlags(); err != nil { // console
		return nil, err
	}
	rolloutMetrics, err := o.rolloutMetrics.source(logger) // rollint
	if err != nil {
		return nil, err
	}
	if o.leaderTTL < 400*time.Millisecond {
		return nil, usageError{fmt.Errorf("--leader-ttl (%s) is too short to renew (every 1/4 of it) over a network; give at least 400ms, 10s by default", o.leaderTTL)}
	}
	var trusted [][]byte
	var names []string
	for _, t := range o.trust {
		name, p, ok := strings.Cut(t, "=")
		if !ok {
			name, p = "", t
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("--trust: %w", err)
		}
		trusted, names = append(trusted, b), append(names, name)
	}
	if o.requireSigned && len(trusted) == 0 {
		return nil, usageError{errors.New("--require-signed needs at least one --trust key")}
	}
	var maxBlobBytes int64 // 0: the registry's default
	if o.registryMaxBlob != "" {
		n, err := parseMaxBlobSize("--registry-max-blob-size", o.registryMaxBlob)
		if err != nil {
			return nil, err
		}
		maxBlobBytes = n
	}
	if o.natsPassword == "" {
		o.natsPassword = os.Getenv("FERMION_NATS_PASSWORD")
	}
	if o.clusterSecret == "" {
		o.clusterSecret = os.Getenv("FERMION_CLUSTER_SECRET")
	}
	if o.clusterListen != "" && o.clusterSecret == "" {
		return nil, usageError{errors.New("--cluster-listen needs --cluster-secret (or FERMION_CLUSTER_SECRET): without it anyone who reaches the route port could join the cluster and read its state")}
	}
	var lns []net.Listener
	closeAll := func() {
		for _, ln := range lns {
			ln.Close()
		}
	}
	reg := prometheus.NewRegistry()
	var apiTLS, regTLS *telemetry.TLS
	var natsTLS, clusterTLS *tls.Config
	if o.tlsCert != "" || o.tlsKey != "" {
		if o.tlsCert == "" || o.tlsKey == "" {
			return nil, usageError{errors.New("--tls-cert and --tls-key go together")}
		}
		var err error
		if apiTLS, err = telemetry.NewTLS(reg, logger, "api", o.tlsCert, o.tlsKey); err != nil {
			return nil, usageError{fmt.Errorf("--tls-cert, --tls-key: %w", err)}
		}
		if o.registryListen != "" {
			if regTLS, err = telemetry.NewTLS(reg, logger, "registry", o.tlsCert, o.tlsKey); err != nil {
				return nil, usageError{fmt.Errorf("--tls-cert, --tls-key: %w", err)}
			}
		}
		natsTLS = apiTLS.Config()
		if o.clusterListen != "" {
			// The routes: each replica serves its certificate to the others and checks
			// theirs; the cluster secret still authenticates them.
			clusterTLS = apiTLS.Config()
			if clusterTLS.RootCAs, err = loadCA(o.caFile); err != nil {
				return nil, err
			}
		}
	} else if o.caFile != "" {
		return nil, usageError{errors.New("--ca-file is for the routes' TLS: give --tls-cert and --tls-key too")}
	}
	apiLn, err := listen(o.listen, "API", "listen")
	if err != nil {
		return nil, err
	}
	lns = append(lns, apiLn)
	apiScheme := "http://"
	if apiTLS != nil {
		apiLn, apiScheme = apiTLS.Listener(apiLn), "https://"
	}
	var regLn, adminLn net.Listener
	regNote := "" // the registry's host came from a wildcard listen address
	if o.registryListen != "" {
		if regLn, err = listen(o.registryListen, "registry", "registry-listen"); err != nil {
			closeAll()
			return nil, err
		}
		lns = append(lns, regLn)
		if o.registryHost == "" {
			// Image references name this host, and agents pull from it: a wildcard
			// one ([::]:5000) is neither dialable nor seen as loopback (plain HTTP).
			o.registryHost, regNote = reachable(regLn.Addr().String())
		}
		if regTLS != nil {
			regLn = regTLS.Listener(regLn)
		}
	}
	if o.adminListen != "" {
		if adminLn, err = listen(o.adminListen, "admin", "admin-listen"); err != nil {
			closeAll()
			return nil, err
		}
		lns = append(lns, adminLn)
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), telemetry.BuildInfo(Version))
	cp, err := controlplane.Start(ctx, controlplane.Config{
		Name: o.name, DataDir: o.data, Version: Version,
		NATSListen: o.natsListen, NATSTLS: natsTLS, NATS: o.nats, NATSUser: o.natsUser, NATSPassword: o.natsPassword,
		ClusterName: o.clusterName, ClusterListen: o.clusterListen, Routes: o.routes, ClusterSecret: o.clusterSecret, ClusterTLS: clusterTLS,
		Registry: regLn != nil, RegistryHost: o.registryHost, RegistryMaxBlobBytes: maxBlobBytes, RegistryTLS: regTLS != nil, TrustedKeys: trusted, TrustedKeyNames: names, RequireSigned: o.requireSigned, TrustMatchRepository: o.trustMatchRepository,
		LeaseRenew: o.leaseRenew, LeaseLost: o.leaseLost, LeaderTTL: o.leaderTTL, Logger: logger, Metrics: reg,
		SLOInterval: o.sloInterval, Alertmanagers: o.alertmanagers, AlertWebhooks: o.alertWebhooks, // sloengine
		TraceUIURL: o.traceUIURL, NoConsole: o.noConsole, // console
		RolloutMetrics: rolloutMetrics, // rollint
	})
	if err != nil {
		closeAll()
		return nil, err
	}
	apiHost, apiNote := reachable(apiLn.Addr().String())
	r := &serverRole{cp: cp, apiURL: apiScheme + apiHost, registry: o.registryHost}
	serve := func(ln net.Listener, h http.Handler) {
		hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		r.servers = append(r.servers, hs)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("serve", "addr", ln.Addr().String(), "err", err)
			}
		}()
	}
	serve(apiLn, cp.Handler())
	if regLn != nil {
		serve(regLn, cp.Registry())
	}
	if adminLn != nil {
		serve(adminLn, telemetry.AdminHandler(telemetry.Admin{Gatherer: reg, Ready: cp.Ready, Profiling: o.profiling}))
	}
	tokenPath, _ := filepath.Abs(filepath.Join(o.data, "admin.token"))
	// Save the context before printing anything, so that whoever reads the API line can
	// use the CLI at once.
	var contextPath string
	if o.saveContext {
		path, err := saveContext(r.apiURL, cp.AdminToken())
		if err != nil {
			logger.Warn("save the CLI context", "err", err)
		}
		contextPath = path
	}
	fmt.Fprintf(stdout, "control plane %s: API %s%s\n", cp.Name(), r.apiURL, apiNote)
	if !o.noConsole { // console
		fmt.Fprintf(stdout, "web console %s/ui/ (sign in with a token)\n", r.apiURL)
	}
	natsURL, natsNote := reachableURL(cp.NATSURL())
	fmt.Fprintf(stdout, "agents connect to %s%s\n", natsURL, natsNote)
	if r.registry != "" {
		fmt.Fprintf(stdout, "registry %s%s\n", r.registry, regNote)
	}
	if adminLn != nil {
		h, note := reachable(adminLn.Addr().String())
		fmt.Fprintf(stdout, "metrics on http://%s/metrics%s\n", h, note)
	}
	fmt.Fprintf(stdout, "admin token in %s\n", tokenPath)
	if contextPath != "" {
		fmt.Fprintf(stdout, "saved the API URL and admin token to %s for the fermion CLI\n", displayPath(contextPath))
	}
	caHint := ""
	if natsTLS != nil {
		caHint = " (and --ca-file <CA> for a private CA)"
	}
	fmt.Fprintf(stdout, "join agents with: fermion token create --role node, then fermion agent --server %s --token <token>%s\n",
		strings.Split(natsURL, ",")[0], caHint)
	return r, nil
}

func (r *serverRole) close() {
	for _, hs := range r.servers {
		hs.Close()
	}
	r.wg.Wait()
	r.cp.Close()
}
