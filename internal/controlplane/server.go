// Package controlplane is the server role: the state model in NATS JetStream KV
// buckets, the HTTP API under /v1, the agent protocol over NATS, and the controllers
// (scheduler, node lifecycle, drain) that run on the replica holding the leader lease.
// Every replica answers the API and the agents; only the leader writes assignments.
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
	"fermion.dev/fermion/internal/engine"
	"fermion.dev/fermion/internal/fleet"
	"fermion.dev/fermion/internal/oci"
	"fermion.dev/fermion/internal/registry"
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
	if c.NATSListen == "" && c.NATS == "" {
		c.NATSListen = "127.0.0.1:4222"
	}
	return nil
}

// Server is one control-plane replica.
type Server struct {
	cfg      Config
	logger   *slog.Logger
	eng      *engine.Engine // nil with an external NATS
	nc       *nats.Conn
	st       *store
	reg      *registry.Registry
	oci      *oci.Client
	trust    artifact.TrustPolicy
	trustP   []string          // PEM, for agents
	keyNames map[string]string // key id → name

	deployments *table[v1.Deployment]
	nodes       *table[v1.Node]
	leases      *table[lease]
	assignments *table[v1.Assignment]
	statuses    *table[v1.InstanceStatus]
	placements  *table[v1.Placement]
	creds       *table[cred]
	policyRecs  *table[v1.Policy]
	policies    policyState

	ready      atomic.Bool
	leader     atomic.Bool
	leaderName atomic.Value // string
	lead       leadership   // the lease as the controllers may use it (fence.go)
	// leaseWatches is the leases table's watch count the lifecycle controller last saw
	// (controller goroutine only).
	leaseWatches int64
	kick         chan struct{} // wakes the controllers
	dirtyMu      sync.Mutex    // leaf
	dirtyNodes   map[string]bool
	pushKick     chan struct{}

	adminToken string
	metrics    *metrics
	api        http.Handler
	slis       *fleet.Store // fleet SLI store (api_slis.go) [hook: fleetstore]

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// lease is a node's liveness record, written with the server's clock.
type lease struct {
	Renewed time.Time `json:"renewed"`
	Server  string    `json:"server"`
}

// Start starts a replica: the engine (unless external), the buckets and their
// watches, the agent protocol, the controllers' leader election and the API handler.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, logger: cfg.Logger.With("component", "controlplane", "server", cfg.Name),
		kick: make(chan struct{}, 1), pushKick: make(chan struct{}, 1), dirtyNodes: map[string]bool{}}
	s.leaderName.Store("")
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
	st, err := openStoreRetry(ctx, js, replicas, cfg.LeaderTTL, cfg.MaxEvents)
	if err != nil {
		s.closeConn()
		return nil, err
	}
	s.st = st
	s.deployments = newTable[v1.Deployment](bucketDeployments)
	s.nodes = newTable[v1.Node](bucketNodes)
	s.leases = newTable[lease](bucketLeases)
	s.assignments = newTable[v1.Assignment](bucketAssignments)
	s.statuses = newTable[v1.InstanceStatus](bucketStatus)
	s.creds = newTable[cred](bucketTokens)
	s.placements = newTable[v1.Placement](bucketPlacements)
	s.policyRecs = newTable[v1.Policy](bucketPolicies)
	s.initPolicies()
	s.assignments.onChange = func(key string, _ *v1.Assignment) {
		node, _, _ := strings.Cut(key, ".")
		s.markDirty(node)
		s.kickControllers()
	}
	s.deployments.onChange = func(string, *v1.Deployment) { s.kickControllers() }
	s.nodes.onChange = func(string, *v1.Node) { s.kickControllers() }
	s.statuses.onChange = func(string, *v1.InstanceStatus) { s.kickControllers() }

	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = stop
	logf := func(msg string, args ...any) { s.logger.Warn(msg, args...) }
	for _, t := range []struct {
		run func(context.Context)
	}{
		{func(c context.Context) { s.deployments.run(c, st.deployments, logf) }},
		{func(c context.Context) { s.nodes.run(c, st.nodes, logf) }},
		{func(c context.Context) { s.leases.run(c, st.leases, logf) }},
		{func(c context.Context) { s.assignments.run(c, st.assignments, logf) }},
		{func(c context.Context) { s.statuses.run(c, st.status, logf) }},
		{func(c context.Context) { s.creds.run(c, st.tokens, logf) }},
		{func(c context.Context) { s.placements.run(c, st.placements, logf) }},
		{func(c context.Context) { s.policyRecs.run(c, st.policies, logf) }},
	} {
		s.goRun(runCtx, t.run)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, w := range []func(context.Context) error{s.deployments.waitReady, s.nodes.waitReady, s.leases.waitReady,
		s.assignments.waitReady, s.statuses.waitReady, s.creds.waitReady, s.placements.waitReady, s.policyRecs.waitReady} {
		if err := w(wctx); err != nil {
			s.Close()
			return nil, fmt.Errorf("control plane: %w", err)
		}
	}
	if err := s.bootstrapAdmin(wctx); err != nil {
		s.Close()
		return nil, err
	}
	if cfg.Registry {
		reg, err := registry.New(ctx, js, registry.Config{Replicas: replicas, Logger: cfg.Logger, Metrics: cfg.Metrics, MaxBlobBytes: cfg.RegistryMaxBlobBytes,
			Tokens: func(tok string) (bool, bool) {
				c, ok := s.verifyToken(tok)
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
	if err := s.serveAgents(runCtx); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.startSLIs(ctx, runCtx, js, replicas); err != nil { // [hook: fleetstore]
		s.Close()
		return nil, err
	}
	s.api = s.newAPI()
	s.ready.Store(true)
	s.goRun(runCtx, s.leaderLoop)
	s.goRun(runCtx, s.controllerLoop)
	s.goRun(runCtx, s.pushLoop)
	return s, nil
}

func (s *Server) goRun(ctx context.Context, fn func(context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn(ctx)
	}()
}

type jetstreamAPI = jetstream.JetStream

func jetstreamFor(nc *nats.Conn) (jetstream.JetStream, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("control plane: jetstream: %w", err)
	}
	return js, nil
}

// openStoreRetry opens the buckets, retrying while a new cluster elects its leaders.
func openStoreRetry(ctx context.Context, js jetstreamAPI, replicas int, leaderTTL time.Duration, maxEvents int64) (*store, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := openStore(ctx, js, replicas, leaderTTL, maxEvents)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			if err != nil {
				return nil, fmt.Errorf("control plane: %w", err)
			}
			return st, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
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
	shared, err := s.clusterAdminToken(ctx, mine)
	if err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	if tok == "" {
		tok = shared
	} else if tok != shared {
		// Written before replicas shared one (or the bucket was reset): it keeps working.
		s.logger.Warn("this replica's admin token is not the cluster's; both are valid", "file", path)
	}
	if _, ok := s.verifyToken(tok); !ok {
		id, secret, _ := splitToken(tok)
		if _, err := s.storeToken(ctx, id, secret, v1.RoleAdmin, "bootstrap admin token", 0); err != nil {
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
		c, ok := s.verifyToken(password)
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
		if v1.ValidName("node", name) != nil || !s.verifyNode(name, password) {
			s.metrics.agentAuthFailures.Inc()
			return nil, false
		}
		return &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{"fermion.agent." + name + ".>"}},
			Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>", "fermion.node." + name + ".>"}},
		}, true
	}
	s.metrics.agentAuthFailures.Inc()
	return nil, false
}

// Handler serves the HTTP API (/v1/…).
func (s *Server) Handler() http.Handler { return s.api }

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
func (s *Server) IsLeader() bool { return s.leader.Load() }

// Acting reports whether this replica's controllers may decide now: it leads, its
// fences are in place and its lease is provably current on its own clock. At most one
// replica of a cluster is acting at any time.
func (s *Server) Acting() bool { return s.leader.Load() && s.lead.acting(time.Now()) }

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

// kickControllers wakes the controller loop (coalescing).
func (s *Server) kickControllers() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// CreateToken creates a token of role and returns its secret.
func (s *Server) CreateToken(ctx context.Context, role string) (string, error) {
	t, err := s.createToken(ctx, role, "", 0)
	return t.Secret, err
}

// Nodes returns every node as the API shows it.
func (s *Server) Nodes() []v1.Node {
	var out []v1.Node
	s.nodes.each(func(name string, _ *v1.Node, _ uint64) { out = append(out, v1.Node{Name: name}) })
	for i := range out {
		out[i], _ = s.nodeView(out[i].Name)
	}
	return out
}

// Status returns a deployment's status as the API shows it.
func (s *Server) Status(name string) (v1.DeploymentStatus, bool) {
	d, e := s.getDeployment(name)
	if e != nil {
		return v1.DeploymentStatus{}, false
	}
	return s.deploymentStatus(&d), true
}
