package controlplane

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"oras.land/oras-go/v2/registry/remote/retry"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/atomicfile"
	"fermion.dev/fermion/internal/console"
	"fermion.dev/fermion/internal/controlplane/state"
	"fermion.dev/fermion/internal/engine"
	"fermion.dev/fermion/internal/fleet"
	"fermion.dev/fermion/internal/oci"
	"fermion.dev/fermion/internal/registry"
	"fermion.dev/fermion/internal/rollout"
	"fermion.dev/fermion/internal/slo"
	"fermion.dev/fermion/internal/sloctl"
	"fermion.dev/fermion/internal/telemetry"
)

// Config configures a control-plane replica.
type Config struct {
	// Name identifies the replica (unique in a cluster). Default: the host name.
	Name    string
	DataDir string // required: JetStream store and the bootstrap admin token
	Version string

	// NATSListen is the client address agents connect to ("" : 127.0.0.1:4222).
	NATSListen string
	// NATSTLS, when set, makes agents connect to NATSListen over TLS with this server
	// configuration (embedded NATS only).
	NATSTLS *tls.Config
	// NATS names an external NATS cluster to use instead of the embedded server
	// (nats://host:port,…). NATSUser and NATSPassword authenticate to it.
	NATS, NATSUser, NATSPassword string
	// Cluster: three or more replicas route to each other; buckets become R3.
	ClusterName   string
	ClusterListen string
	Routes        []string
	// ClusterSecret authenticates the routes between replicas (see engine.Config);
	// ClusterTLS encrypts them.
	ClusterSecret string
	ClusterTLS    *tls.Config

	// Registry serves the built-in OCI registry on the same engine; RegistryHost is
	// the host:port it is reachable at, given to clients for pushes.
	Registry     bool
	RegistryHost string
	// RegistryTLS says the registry is served over TLS at RegistryHost; agents are told
	// which, so that they pull from a loopback or private address with the right scheme.
	RegistryTLS bool
	// RegistryMaxBlobBytes caps a blob in the built-in registry (0: its default, 2 GiB).
	RegistryMaxBlobBytes int64

	// TrustedKeys are the PEM public keys signatures are verified against, at deploy
	// and on the nodes; TrustedKeyNames names them (parallel, "" for none), and a
	// policy sees artifact.signer as the name (else the key id). A signature by a
	// trusted key that does not match is always refused; an unsigned artifact is
	// refused only with RequireSigned — otherwise policies (require-signed) decide.
	TrustedKeys     [][]byte
	TrustedKeyNames []string
	RequireSigned   bool
	// TrustMatchRepository also requires a signature to name the repository the
	// artifact is deployed from (see artifact.TrustPolicy.MatchRepository).
	TrustMatchRepository bool

	// Lease timing: an agent renews every LeaseRenew and is lost after LeaseLost
	// without a renewal (defaults 10s and 40s, as Kubernetes node leases).
	LeaseRenew, LeaseLost time.Duration
	// LeaderTTL is how long a leader lease lasts without renewal (default 10s; renewed
	// every LeaderTTL/4).
	LeaderTTL time.Duration
	// MaxEvents bounds the event history (default 10000).
	MaxEvents int64
	// ResyncInterval is how often the controllers re-check everything even without a
	// change (default 5s).
	ResyncInterval time.Duration

	Logger  *slog.Logger
	Metrics prometheus.Registerer

	// The SLO engine: the SLIs it reads (nil: the replica's fleet SLI store; tests give
	// their own), how often the leader evaluates (default 10s), and where alerts go.
	SLISource     slo.Source
	SLOInterval   time.Duration
	Alertmanagers []string // Alertmanager base URLs (v2 API)
	AlertWebhooks []string // webhook URLs

	// RolloutMetrics is where canary analysis reads its samples (nil: the replica's
	// fleet SLI store); the server sets it to a Prometheus source when one is configured.
	RolloutMetrics rollout.Metrics

	// Console hook (console): the web console at / and /ui/ on the API's handler.
	// TraceUIURL is its trace link template ({trace_id}); NoConsole serves the API only.
	TraceUIURL string
	NoConsole  bool
}

func (c *Config) defaults() error {
	if c.DataDir == "" {
		return errors.New("control plane: a data directory is required")
	}
	if c.Name == "" {
		h, _ := os.Hostname()
		c.Name = strings.ToLower(h)
		if v1.ValidName("server", c.Name) != nil {
			c.Name = "fermion"
		}
	}
	if c.Logger == nil {
		c.Logger = telemetry.Discard
	}
	if c.LeaseRenew <= 0 {
		c.LeaseRenew = 10 * time.Second
	}
	if c.LeaseLost <= 0 {
		c.LeaseLost = 40 * time.Second
	}
	if c.LeaseLost <= c.LeaseRenew {
		return fmt.Errorf("control plane: the lease lost timeout (%s) must exceed the renewal interval (%s)", c.LeaseLost, c.LeaseRenew)
	}
	if c.LeaderTTL <= 0 {
		c.LeaderTTL = 10 * time.Second
	}
	if c.MaxEvents <= 0 {
		c.MaxEvents = 10000
	}
	if c.ResyncInterval <= 0 {
		c.ResyncInterval = 5 * time.Second
	}
	if err := console.ValidateTraceUIURL(c.TraceUIURL); err != nil { // console hook
		return fmt.Errorf("control plane: trace UI URL: %w", err)
	}
	if c.NATSListen == "" && c.NATS == "" {
		c.NATSListen = "127.0.0.1:4222"
	}
	return nil
}

// Server is one control-plane replica: the composition root. Start builds the state
// and the roles, each holding what it needs of the state and of each other; Close
// stops them. The roles (package doc): tokens, events, policies, placer and admitter,
// election, controllers, agent service, API.
type Server struct {
	cfg      Config
	logger   *slog.Logger
	metrics  *metrics
	eng      *engine.Engine // nil with an external NATS
	nc       *nats.Conn
	st       *state.Store
	reg      *registry.Registry
	oci      *oci.Client
	trust    artifact.TrustPolicy
	trustP   []string          // PEM, for agents
	keyNames map[string]string // key id → name

	tokens   *tokenStore
	evlog    *eventLog
	policies *policies
	election *election
	lead     *state.Fence // the election's: the lease as the controllers may use it
	ctrl     *controllers
	agents   *agentService
	api      *api
	handler  http.Handler
	slos     *sloctl.Controller // SLO hook (sloengine)
	slis     *fleet.Store       // the fleet SLI store (api_slis.go)
	rollouts *rolloutController // the rollout controller (rollouts.go)
	sliReady chan struct{}      // closed once the SLO engine is up: the store's ingest waits (api_slis.go)

	ready      atomic.Bool
	adminToken string

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// Start starts a replica: the engine (unless external), the buckets and their
// watches, the agent protocol, the controllers' leader election and the API handler.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, logger: cfg.Logger.With("component", "controlplane", "server", cfg.Name)}
	s.metrics = newMetrics(cfg.Metrics, s)
	if cfg.RequireSigned && len(cfg.TrustedKeys) == 0 {
		return nil, errors.New("control plane: requiring signatures needs at least one trusted key")
	}
	p, err := artifact.LoadTrustPolicy(cfg.TrustedKeys, cfg.RequireSigned)
	if err != nil {
		return nil, fmt.Errorf("control plane: trusted keys: %w", err)
	}
	p.MatchRepository = cfg.TrustMatchRepository
	s.trust, s.keyNames = p, map[string]string{}
	for i, k := range p.Keys {
		s.trustP = append(s.trustP, string(cfg.TrustedKeys[i]))
		if i < len(cfg.TrustedKeyNames) && cfg.TrustedKeyNames[i] != "" {
			s.keyNames[artifact.KeyID(k)] = cfg.TrustedKeyNames[i]
		}
	}
	s.oci = &oci.Client{}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("control plane: %w", err)
	}
	replicas := 1
	if cfg.NATS != "" {
		opts := []nats.Option{nats.Name("fermion-server " + cfg.Name), nats.MaxReconnects(-1)}
		if cfg.NATSUser != "" {
			opts = append(opts, nats.UserInfo(cfg.NATSUser, cfg.NATSPassword))
		}
		nc, err := nats.Connect(cfg.NATS, opts...)
		if err != nil {
			return nil, fmt.Errorf("control plane: connect to %s: %w", cfg.NATS, err)
		}
		s.nc = nc
		if len(strings.Split(cfg.NATS, ",")) >= 3 || len(nc.DiscoveredServers()) >= 2 {
			replicas = 3
		}
	} else {
		ecfg := engine.Config{Name: cfg.Name, DataDir: filepath.Join(cfg.DataDir, "jetstream"), Listen: cfg.NATSListen, TLS: cfg.NATSTLS,
			ClusterName: cfg.ClusterName, ClusterListen: cfg.ClusterListen, Routes: cfg.Routes, ClusterSecret: cfg.ClusterSecret, ClusterTLS: cfg.ClusterTLS,
			SyncAlways: cfg.ClusterListen == "", Logger: cfg.Logger, Auth: s.natsAuth}
		eng, err := engine.Start(ctx, ecfg)
		if err != nil {
			return nil, err
		}
		s.eng, s.nc = eng, eng.Conn()
		if cfg.ClusterListen != "" {
			replicas = 3
		}
	}
	js, err := jetstreamFor(s.nc)
	if err != nil {
		s.closeConn()
		return nil, err
	}
	st, err := state.OpenRetry(ctx, js, replicas, cfg.LeaderTTL, cfg.MaxEvents)
	if err != nil {
		s.closeConn()
		return nil, fmt.Errorf("control plane: %w", err)
	}
	s.st = st
	s.build()

	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = stop
	st.Run(runCtx, func(fn func(context.Context)) { s.goRun(runCtx, fn) }, func(msg string, args ...any) { s.logger.Warn(msg, args...) })
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := st.WaitReady(wctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("control plane: %w", err)
	}
	if err := s.bootstrapAdmin(wctx); err != nil {
		s.Close()
		return nil, err
	}
	if cfg.Registry {
		reg, err := registry.New(ctx, js, registry.Config{Replicas: replicas, Logger: cfg.Logger, Metrics: cfg.Metrics, MaxBlobBytes: cfg.RegistryMaxBlobBytes,
			Tokens: func(tok string) (bool, bool) {
				c, ok := s.tokens.verifyToken(tok)
				if !ok {
					return false, false
				}
				r := roleRank(c.Role)
				return r >= roleRank(v1.RoleDeployer), r >= roleRank(v1.RoleViewer)
			}})
		if err != nil {
			s.Close()
			return nil, err
		}
		s.reg = reg
		if cfg.RegistryHost != "" {
			s.oci.HTTPClient = &http.Client{Transport: &localRegistry{host: cfg.RegistryHost, h: reg,
				next: retry.NewTransport(http.DefaultTransport)}}
		}
	}
	if s.agents.slis, err = s.agents.openSLIIngest(ctx, s.st.JS, replicas); err != nil { // hook: SLI receive path (slis.go)
		s.Close()
		return nil, err
	}
	if err := s.startSLIs(ctx, runCtx, s.st.JS, replicas); err != nil { // the fleet SLI store (api_slis.go)
		s.Close()
		return nil, err
	}
	if err := s.startSLOs(ctx, runCtx, s.st.JS, replicas); err != nil { // SLO hook (sloengine): reads the store
		s.Close()
		return nil, err
	}
	s.agents.registry = s.reg != nil
	if err := s.agents.serveAgents(runCtx, func(fn func(context.Context)) { s.goRun(runCtx, fn) }); err != nil {
		s.Close()
		return nil, err
	}
	if s.handler, err = s.withConsole(s.api.newAPI(s.routeGroups()...)); err != nil { // console hook
		s.Close()
		return nil, err
	}
	s.ready.Store(true)
	s.goRun(runCtx, s.election.leaderLoop)
	s.goRun(runCtx, s.ctrl.controllerLoop)
	s.goRun(runCtx, s.agents.pushLoop)
	return s, nil
}

// build makes the roles over the opened state and wires them: who wakes whom, who
// records events through whom. Nothing runs yet.
func (s *Server) build() {
	cfg, st := &s.cfg, s.st
	s.tokens = &tokenStore{st: st}
	s.evlog = &eventLog{cfg: cfg, logger: s.logger, metrics: s.metrics, st: st}
	event := s.evlog.event
	s.election = newElection(cfg, s.logger, s.metrics, st)
	s.election.event = event
	s.lead = s.election.lead
	s.policies = &policies{cfg: cfg, logger: s.logger, metrics: s.metrics, st: st, event: event}
	s.policies.init()
	pl := &placer{st: st, policies: s.policies}
	s.ctrl = &controllers{cfg: cfg, logger: s.logger, metrics: s.metrics, Acting: s.Acting,
		notePause: s.election.notePause, kick: make(chan struct{}, 1)}
	s.registerControllers(pl, event)
	s.agents = &agentService{cfg: cfg, logger: s.logger, metrics: s.metrics, nc: s.nc, st: st, lead: s.lead,
		tokens: s.tokens, policies: s.policies, event: event, Acting: s.Acting, trustP: s.trustP,
		dirtyNodes: map[string]bool{}, pushKick: make(chan struct{}, 1)}
	s.api = &api{cfg: cfg, logger: s.logger, metrics: s.metrics, st: st, tokens: s.tokens, policies: s.policies,
		admission: &admitter{pl}, placer: pl, resolver: &imageResolver{oci: s.oci, trust: s.trust, keyNames: s.keyNames},
		evlog: s.evlog, event: event, leaderNow: s.election.leaderNow, natsURL: s.NATSURL}

	// Who wakes whom: a new leader looks at everything and pushes every node's set;
	// a change to what the controllers read wakes them; a changed assignment is
	// pushed to its node.
	s.election.elected = func() {
		s.ctrl.kickControllers()
		s.agents.markAllDirty()
	}
	// A replica that stops leading stops its leader runners at once.
	s.election.steppedDown = s.ctrl.kickControllers
	st.Assignments.Watch(func(key string, _ *v1.Assignment) {
		node, _, _ := strings.Cut(key, ".")
		s.agents.markDirty(node)
		s.ctrl.kickControllers()
	})
	st.Deployments.Watch(func(string, *v1.Deployment) { s.ctrl.kickControllers() })
	st.Nodes.Watch(func(string, *v1.Node) { s.ctrl.kickControllers() })
	st.Statuses.Watch(func(string, *v1.InstanceStatus) { s.ctrl.kickControllers() })
	// Placement policies change where deployments belong: let the controllers look.
	st.Policies.Watch(func(string, *v1.Policy) { s.ctrl.kickControllers() })
	// A rollout's step or an operator's action changes what the nodes should run.
	st.Rollouts.Watch(func(string, *state.Rollout) { s.ctrl.kickControllers() })
}

// registerControllers lists the leader's controllers in the order a pass runs them,
// and its leader runners (controllers with a loop of their own). A new controller is
// one line here: construct it with what it needs (s.st, s.lead for its writes, event,
// s.logger, s.metrics), never the Server.
func (s *Server) registerControllers(pl *placer, event func(context.Context, v1.Event)) {
	// Rollouts (issue 15): the metric source and the SLO engine start after the
	// controllers are built, so the controller asks for them when it needs them.
	s.rollouts = &rolloutController{logger: s.logger.With("component", "rollouts"), st: s.st, lead: s.lead, event: event,
		outcomes: s.metrics.rollouts,
		source: func() (rollout.Metrics, bool) {
			if s.cfg.RolloutMetrics != nil {
				// A configured source (Prometheus) sees the node's metric labels, which
				// name the manifest's app, not the deployment.
				return s.cfg.RolloutMetrics, true
			}
			return fleetRolloutMetrics{st: s.slis}, false
		},
		expect: func(ctx context.Context, app, version string, until time.Time) error {
			if s.slos == nil {
				return nil
			}
			return s.slos.MarkExpected(ctx, app, version, until)
		}}
	s.ctrl.list = []Controller{
		&lifecycleController{cfg: &s.cfg, logger: s.logger, st: s.st, lead: s.lead, event: event},
		s.rollouts, // before the deployment controller, which renders its decisions
		&deploymentController{placer: pl, logger: s.logger, metrics: s.metrics, st: s.st, lead: s.lead, event: event},
		&revisionController{st: s.st}, // revisions (issue 15)
	}
	s.ctrl.runners = []LeaderRunner{
		&rolloutTicker{st: s.st, kick: s.ctrl.kickControllers}, // analysis windows close on time
	}
}

// routeGroups are the API's route groups, each registered behind serveAPI (auth,
// roles, limits, metrics). A new resource is one line here: a method of api, or a
// func over a type of its own, taking a routeFunc.
func (s *Server) routeGroups() []routeGroup {
	return []routeGroup{
		s.api.coreRoutes,
		s.api.sloRoutes,      // SLO hook (sloengine)
		s.api.sliRoutes,      // GET /v1/slis (api_slis.go)
		s.api.revisionRoutes, // revisions and rollback (issue 15)
		(&rolloutAPI{st: s.st, ctl: s.rollouts}).routes, // rollouts (issue 15)
		s.api.backupRoutes, // backup and restore (opsurface, backup.go)
		(&instancesAPI{st: s.st, placer: s.api.placer, nc: s.nc}).routes, // instance timelines (issue 16, api_instances.go)
	}
}

func (s *Server) goRun(ctx context.Context, fn func(context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn(ctx)
	}()
}

func jetstreamFor(nc *nats.Conn) (jetstream.JetStream, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("control plane: jetstream: %w", err)
	}
	return js, nil
}

// bootstrapAdmin makes sure the admin token in <data>/admin.token exists and is valid.
// Every replica of a cluster writes the same one: the cluster's bootstrap admin token,
// recorded once in the tokens bucket by the replica that got there first (see
// clusterAdminToken). A token file a replica already has is kept, and re-stored if the
// bucket lost it.
func (s *Server) bootstrapAdmin(ctx context.Context) error {
	path := filepath.Join(s.cfg.DataDir, "admin.token")
	var tok string
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		tok = strings.TrimSpace(string(b))
		if _, _, ok := splitToken(tok); !ok {
			return fmt.Errorf("control plane: %s does not hold a Fermion token; remove it to have the cluster's admin token written there", path)
		}
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("control plane: %w", err)
	}
	mine := tok
	if mine == "" {
		mine = tokenPrefix + randomHex(6) + "_" + randomHex(24)
	}
	shared, err := s.tokens.clusterAdminToken(ctx, mine)
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	if tok == "" {
		tok = shared
	} else if tok != shared {
		// Written before replicas shared one (or the bucket was reset): it keeps working.
		s.logger.Warn("this replica's admin token is not the cluster's; both are valid", "file", path)
	}
	if _, ok := s.tokens.verifyToken(tok); !ok {
		id, secret, _ := splitToken(tok)
		if _, err := s.tokens.storeToken(ctx, id, secret, v1.RoleAdmin, "bootstrap admin token", 0); err != nil {
			return fmt.Errorf("control plane: bootstrap admin token: %w", err)
		}
	}
	if len(b) == 0 {
		if err := atomicfile.Write(path, []byte(tok+"\n"), 0o600); err != nil {
			return fmt.Errorf("control plane: write %s: %w", path, err)
		}
	}
	s.adminToken = tok
	return nil
}

// natsAuth authenticates agents' NATS connections: the join user with a node-role
// token may only ask to join; a joined node may only use its own subjects.
func (s *Server) natsAuth(user, password string) (*server.Permissions, bool) {
	if !s.ready.Load() {
		return nil, false
	}
	switch {
	case user == v1.JoinUser:
		c, ok := s.tokens.verifyToken(password)
		if !ok || c.Role != v1.RoleNode {
			s.metrics.agentAuthFailures.Inc()
			return nil, false
		}
		return &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{v1.SubjectJoin}},
			Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
		}, true
	case strings.HasPrefix(user, v1.NodeUserPrefix):
		name := strings.TrimPrefix(user, v1.NodeUserPrefix)
		if v1.ValidName("node", name) != nil || !s.tokens.verifyNode(name, password) {
			s.metrics.agentAuthFailures.Inc()
			return nil, false
		}
		return &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{"fermion.agent." + name + ".>"}},
			Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>", "fermion.node." + name + ".>"}},
			// Replies to the requests it received on its own subjects (the instance
			// timelines, api_instances.go), once each: it can answer for no other node,
			// whose requests it cannot receive.
			Response: &server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute},
		}, true
	}
	s.metrics.agentAuthFailures.Inc()
	return nil, false
}

// Handler serves the HTTP API (/v1/…) and the web console (/, /ui/…).
func (s *Server) Handler() http.Handler { return s.handler }

// Registry is the built-in registry's handler, or nil.
func (s *Server) Registry() http.Handler {
	if s.reg == nil {
		return nil
	}
	return s.reg
}

// AdminToken is the bootstrap admin token (also in <data>/admin.token).
func (s *Server) AdminToken() string { return s.adminToken }

// NATSURL is the URL agents connect to.
func (s *Server) NATSURL() string {
	if s.eng != nil {
		return s.eng.ClientURL()
	}
	return s.cfg.NATS
}

// Name is the replica's name.
func (s *Server) Name() string { return s.cfg.Name }

// IsLeader reports whether this replica runs the controllers now.
func (s *Server) IsLeader() bool { return s.election != nil && s.election.leader.Load() }

// Acting reports whether this replica's controllers may decide now: it leads, its
// fences are in place and its lease is provably current on its own clock. At most one
// replica of a cluster is acting at any time.
func (s *Server) Acting() bool { return s.election != nil && s.election.Acting() }

// Engine is the embedded engine, or nil with an external NATS.
func (s *Server) Engine() *engine.Engine { return s.eng }

// Close stops the controllers and the agent protocol, then the engine.
func (s *Server) Close() {
	if s.stop != nil {
		s.stop()
	}
	s.wg.Wait()
	if s.reg != nil {
		s.reg.Close()
	}
	s.closeConn()
}

// Ready returns nil while this replica can serve its API, which is what /readyz on the
// server's admin address answers: it has started (its tables are loaded), it is
// connected to NATS, through which every write and every agent message goes, and, when
// it embeds NATS, its JetStream is healthy (in a cluster: a meta leader is known and the
// replica's streams are current, so a replica cut off from its peers is not ready).
func (s *Server) Ready() error {
	if !s.ready.Load() {
		return errors.New("starting")
	}
	if !s.nc.IsConnected() {
		return fmt.Errorf("not connected to NATS (%s)", s.nc.Status())
	}
	if s.eng != nil {
		if h := s.eng.Server().Healthz(nil); h.Error != "" {
			return fmt.Errorf("embedded NATS JetStream: %s", h.Error)
		}
	}
	return nil
}

func (s *Server) closeConn() {
	if s.eng != nil {
		s.eng.Close()
	} else if s.nc != nil {
		s.nc.Close()
	}
}

// CreateToken creates a token of role and returns its secret.
func (s *Server) CreateToken(ctx context.Context, role string) (string, error) {
	t, err := s.tokens.createToken(ctx, role, "", 0)
	return t.Secret, err
}

// Nodes returns every node as the API shows it.
func (s *Server) Nodes() []v1.Node {
	var out []v1.Node
	s.st.Nodes.Each(func(name string, _ *v1.Node, _ uint64) { out = append(out, v1.Node{Name: name}) })
	for i := range out {
		out[i], _ = s.api.nodeView(out[i].Name)
	}
	return out
}

// Status returns a deployment's status as the API shows it.
func (s *Server) Status(name string) (v1.DeploymentStatus, bool) {
	d, e := s.api.getDeployment(name)
	if e != nil {
		return v1.DeploymentStatus{}, false
	}
	return s.api.deploymentStatus(&d), true
}
