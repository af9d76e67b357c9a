package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/nodecache"
	"fermion.dev/fermion/internal/oci"
	"fermion.dev/fermion/internal/policy"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/telemetry"
)

// NodeConfig configures a Node.
type NodeConfig struct {
	// Name is the node's name, a DNS label (v1.ValidName).
	Name string
	// DataDir keeps the node's credentials, its last assignments and trust roots, and
	// the artifact cache (DataDir/cache). Required.
	DataDir string
	// Servers are the control plane's NATS URLs (nats://host:port; tls://host:port
	// requires TLS, which nats:// also uses when the server asks for it).
	Servers []string
	// TLS is the client configuration for a control plane that serves NATS over TLS
	// (its RootCAs trust a private CA). Nil: the system's roots.
	TLS *tls.Config
	// JoinToken is the join token (role node). It is needed only while the node has no
	// credentials in DataDir, or when the control plane refuses the ones it has.
	JoinToken string
	Labels    map[string]string
	Capacity  v1.Resources
	// GatewayURL is where this node's gateway answers, reported to the control plane.
	GatewayURL     string
	RuntimeVersion string // default "1"
	AgentVersion   string
	// DataPlane is the node's data plane, created and served by the caller.
	DataPlane *DataPlane
	// CacheMaxBytes bounds the artifact cache (default 1 GiB).
	CacheMaxBytes int64
	// KeepRevisions is how many revisions of each deployment the node keeps pinned in
	// its artifact cache, the one it runs included (default DefaultKeepRevisions; 1
	// pins only what runs), so that a rollback starts while the registry is down.
	KeepRevisions int
	// Registry pulls artifacts (nil: anonymous; TLS, plain HTTP for loopback registries).
	Registry *oci.Client
	Logger   *slog.Logger
	Metrics  prometheus.Registerer // nil: none
	// Allow is what this node permits whatever the control plane asks: the runtime
	// policies see it as node.allow. RuntimePolicies are the node's own runtime-target
	// policies, enforced before every start alongside those the control plane sends.
	Allow           policy.NodeAllow
	RuntimePolicies []*policy.Policy
	// SLIBufferBytes bounds the SLI summaries kept while the control plane is away
	// (default DefaultSLIBufferBytes); the oldest are dropped past it (slisend.go).
	SLIBufferBytes int
	// TelemetryBacklog is the telemetry spool's depth, reported in SLI summaries
	// (nil: 0).
	TelemetryBacklog func() int
	// TelemetryHealth is the span export's health, sent with every heartbeat so that
	// the API and the console show it per node (nil: not reported).
	TelemetryHealth func() *v1.TelemetryHealth
}

const (
	defaultCacheMaxBytes = 1 << 30
	// DefaultKeepRevisions is NodeConfig.KeepRevisions's default.
	DefaultKeepRevisions  = 3
	defaultRuntimeVersion = "1"
	defaultLeaseRenew     = 10 * time.Second
	// statusDebounce is how long after a status change the heartbeat that reports it
	// waits for more changes: short, so that "ready" reaches the control plane quickly.
	statusDebounce = 50 * time.Millisecond
	requestTimeout = 5 * time.Second
)

// Node is the agent under the control plane: it joins and registers over NATS, renews
// its lease with heartbeats that report what it runs, and makes the data plane run the
// assignments it is sent, pulling artifacts through the node cache. It serves its last
// applied assignments from DataDir whether or not the control plane answers.
//
// Goroutines: Run owns three, stopped by its context: the reconciler (the only one that
// changes what the data plane runs; it owns the deployment table), the control-plane
// loop (it owns the NATS connection and sends every request but SLI batches) and the
// SLI sender (it flushes the SLI aggregator and sends the summaries on the same
// connection, so a slow SLI answer never delays a heartbeat). The reconciler
// starts one goroutine per version being pulled and started, and one per removed
// version draining; it waits for all of them before it returns. NATS callbacks never
// block: they record and signal.
//
// Lock order: Node.mu is a leaf. It is never held while calling the data plane, the
// cache, NATS or the disk.
type Node struct {
	cfg     NodeConfig
	log     *slog.Logger
	cache   *nodecache.Cache
	trust   *trust
	rules   *runtimePolicies
	metrics *nodeMetrics

	// Signals, buffered 1 and sent without blocking: a pending value is never lost and
	// a sender never waits.
	offered       chan struct{} // pending holds a newer assignment set
	statusChanged chan struct{} // an instance status changed: heartbeat soon
	connEvents    chan struct{} // the NATS connection (re)connected: register
	authRefused   chan struct{} // the server refused the node's credentials
	sliKick       chan struct{} // registered again, or a backlog to send: send SLIs now

	// The SLI sender's (slisend.go): its buffer is owned by its goroutine; the
	// connection is the control-plane loop's, shared (nats.Conn is safe for that).
	sliConn    atomic.Pointer[nats.Conn]
	sliBuf     *sli.Buffer
	sliMetrics *sliMetrics

	// sliExemplars: the control plane said it reads summaries' exemplars (the last
	// registration's v1.RegisterReply.SLIExemplars); until then they are stripped.
	sliExemplars atomic.Bool

	mu         sync.Mutex
	ran        bool
	pending    *v1.AssignmentSet // newest offered set not yet applied
	applied    *v1.AssignmentSet // nil until a set is applied (or loaded from DataDir)
	statuses   map[string]*status
	creds      *nodeCreds
	refused    uint64          // revision of the last set refused for an invalid canary
	registered bool            // NATS is up and the last registration on this connection succeeded
	registry   v1.RegistryInfo // the control plane's registry, as last told
}

// setRegistry tells the registry client whether the control plane's registry speaks
// TLS, and reports whether that changed.
func (n *Node) setRegistry(r *v1.RegistryInfo) bool {
	if r == nil || r.Host == "" {
		return false
	}
	n.mu.Lock()
	changed := n.registry != *r
	n.registry = *r
	n.mu.Unlock()
	n.cfg.Registry.SetTLS(r.Host, r.TLS)
	return changed
}

// status is one deployment's InstanceStatus and the function serving it, if any.
type status struct {
	v1.InstanceStatus
	fn   *sandbox.Function // running the reported digest (ready), else nil
	task *task             // the task whose start set it; compared, never followed
	// canaryFn runs the reported canary (ready), else nil.
	canaryFn *sandbox.Function
	// failedDigest is the digest whose latest start failed, kept while a retry of it
	// pulls and starts again, so that the retry does not hold the node's readiness.
	failedDigest string
}

// NewNode checks cfg, opens the artifact cache and loads what DataDir keeps: the
// credentials, the last applied assignments and the trust roots. Run starts the node.
func NewNode(cfg NodeConfig) (*Node, error) {
	switch {
	case cfg.DataDir == "":
		return nil, errors.New("new node: NodeConfig.DataDir is empty; set the node's data directory")
	case cfg.DataPlane == nil:
		return nil, errors.New("new node: NodeConfig.DataPlane is nil")
	case len(cfg.Servers) == 0:
		return nil, errors.New("new node: NodeConfig.Servers is empty; give the control plane's NATS URLs (nats://host:4222)")
	}
	if err := v1.ValidName("node", cfg.Name); err != nil {
		return nil, fmt.Errorf("new node: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = telemetry.Discard
	}
	if cfg.CacheMaxBytes <= 0 {
		cfg.CacheMaxBytes = defaultCacheMaxBytes
	}
	if cfg.KeepRevisions <= 0 {
		cfg.KeepRevisions = DefaultKeepRevisions
	}
	if cfg.RuntimeVersion == "" {
		cfg.RuntimeVersion = defaultRuntimeVersion
	}
	if cfg.Registry == nil {
		cfg.Registry = &oci.Client{}
	}
	log := cfg.Logger.With("node", cfg.Name)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("new node: %w", err)
	}
	if err := removeTemps(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("new node: remove interrupted writes: %w", err)
	}
	rules, err := newRuntimePolicies(log, cfg.RuntimePolicies)
	if err != nil {
		return nil, fmt.Errorf("new node: %w", err)
	}
	m, err := newNodeMetrics(cfg.Metrics)
	if err != nil {
		return nil, fmt.Errorf("new node: %w", err)
	}
	m.info.WithLabelValues(cfg.Name, cfg.Labels["region"], cfg.Labels["zone"], cfg.AgentVersion).Set(1)
	if cfg.SLIBufferBytes == 0 {
		cfg.SLIBufferBytes = DefaultSLIBufferBytes
	}
	sliBuf, err := sli.NewBuffer(cfg.SLIBufferBytes, max(cfg.SLIBufferBytes/sliMinSummaryBytes, 1))
	if err != nil {
		return nil, fmt.Errorf("new node: NodeConfig.SLIBufferBytes: %w", err)
	}
	sm, err := newSLIMetrics(cfg.Metrics)
	if err != nil {
		return nil, fmt.Errorf("new node: %w", err)
	}
	n := &Node{
		cfg:           cfg,
		log:           log,
		trust:         &trust{client: cfg.Registry},
		rules:         rules,
		metrics:       m,
		offered:       make(chan struct{}, 1),
		statusChanged: make(chan struct{}, 1),
		connEvents:    make(chan struct{}, 1),
		authRefused:   make(chan struct{}, 1),
		sliKick:       make(chan struct{}, 1),
		sliBuf:        sliBuf,
		sliMetrics:    sm,
		statuses:      map[string]*status{},
	}

	// A damaged file is set aside: the node starts without it rather than not at all.
	var creds nodeCreds
	if ok, err := readJSON(cfg.DataDir, credsFile, &creds); err != nil {
		log.Error("node credentials unreadable; joining again", "err", err)
	} else if ok && creds.Node == cfg.Name && creds.Secret != "" {
		n.creds = &creds
	} else if ok {
		log.Warn("node credentials are for another node; joining again", "file", filepath.Join(cfg.DataDir, credsFile), "credentials", creds.Node)
	}
	var tf trustFileBody
	if _, err := readJSON(cfg.DataDir, trustFile, &tf); err != nil {
		log.Error("trusted keys unreadable; trusting none until the control plane answers", "err", err)
	}
	if _, err := n.trust.set(tf.TrustedKeys, tf.RequireSignatures, tf.MatchRepository); err != nil {
		log.Error("trusted keys unusable; trusting none until the control plane answers", "err", err)
	}
	n.setRegistry(tf.Registry)
	n.loadRuntimePolicies()
	set, err := loadAssignments(cfg.DataDir)
	if err != nil {
		log.Error("last assignments unreadable; running nothing until the control plane answers", "err", err)
	}
	if set != nil {
		n.applied = set // reconciled as soon as Run starts, before the control plane answers
		m.revision.Set(float64(set.Revision))
		m.assignments.Set(float64(len(set.Assignments)))
	}

	src := &oci.CacheSource{Client: cfg.Registry}
	n.cache, err = nodecache.Open(nodecache.Config{
		Dir:      filepath.Join(cfg.DataDir, cacheSubdir),
		MaxBytes: cfg.CacheMaxBytes,
		Fetcher:  src,
		Verifier: n.trust,
		Metrics:  cfg.Metrics,
		Logger:   log,
	})
	if err != nil {
		return nil, fmt.Errorf("new node: %w", err)
	}
	cfg.DataPlane.SetReadiness(n.Ready)
	return n, nil
}

// PinnedArtifacts lists the manifest digests pinned in the node's artifact cache: what
// it runs and the earlier revisions it keeps for rollbacks (KeepRevisions).
func (n *Node) PinnedArtifacts() []string { return n.cache.Pinned() }

// Ready returns nil when the node serves what it was assigned. It answers /readyz on the
// agent's admin address, so that a load balancer in front of several nodes sends a node
// traffic only once it is ready. That takes an assignment set (saved by an earlier run, or from the control
// plane) and, for every deployment in it, a version routed or a start that failed: one
// broken deployment must not take the node's other functions out of rotation (the
// failure shows in fermion status and fermion_agent_deployments{state="failed"}).
func (n *Node) Ready() error {
	n.mu.Lock()
	set := n.applied
	var waiting []string
	if set != nil {
		for _, a := range set.Assignments {
			if s := n.statuses[a.Deployment]; a.Deployment == "" || (s != nil && (s.State == v1.InstanceFailed || s.failedDigest == s.Digest)) {
				continue
			}
			waiting = append(waiting, a.Deployment)
		}
	}
	n.mu.Unlock()
	if set == nil {
		return errors.New("no assignments yet: the control plane has not answered and none were saved")
	}
	for _, name := range waiting { // outside n.mu: the data plane's lock is a leaf
		if !n.cfg.DataPlane.Serving(name) {
			return fmt.Errorf("deployment %s is not serving yet", name)
		}
	}
	return nil
}

// Run runs the node until ctx is done: it serves the assignments it last applied at
// once, then joins, registers and follows the control plane, retrying with backoff
// whenever the control plane is unreachable or refuses. Control-plane errors do not end
// it, with one exception: a node that starts without credentials and whose join token
// the control plane refuses returns an error wrapping ErrJoinTokenRefused, since it has
// nothing to serve and no retry could succeed. It leaves what the data plane runs in
// place when it returns; the caller's DataPlane.Serve closes it.
func (n *Node) Run(ctx context.Context) error {
	n.mu.Lock()
	ran := n.ran
	n.ran = true
	n.mu.Unlock()
	if ran {
		return errors.New("run node: Run was already called; create another Node")
	}
	defer func() {
		if err := n.cache.Close(); err != nil {
			n.log.Warn("closing the artifact cache", "err", err)
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var err error
	wg.Go(func() { n.reconcileLoop(ctx) })
	wg.Go(func() { n.sliLoop(ctx) })
	wg.Go(func() {
		if err = n.controlPlaneLoop(ctx); err != nil {
			cancel() // stop reconciling too: the node ends
		}
	})
	wg.Wait()
	if err != nil {
		return fmt.Errorf("run node %s: %w", n.cfg.Name, err)
	}
	return nil
}

// Statuses returns the status of every assigned deployment, sorted by name.
func (n *Node) Statuses() []v1.InstanceStatus {
	n.mu.Lock()
	out := make([]v1.InstanceStatus, 0, len(n.statuses))
	fns := make([]*sandbox.Function, 0, len(n.statuses))
	cfns := make([]*sandbox.Function, 0, len(n.statuses))
	for _, s := range n.statuses {
		out = append(out, s.InstanceStatus)
		fns = append(fns, s.fn)
		cfns = append(cfns, s.canaryFn)
	}
	n.mu.Unlock()
	for i, fn := range fns {
		if fn != nil {
			out[i].Instances = fn.Stats().Total
		}
		if c := out[i].Canary; c != nil { // shared with n.statuses: copy before filling
			cc := *c
			if cfns[i] != nil {
				cc.Instances = cfns[i].Stats().Total
			}
			out[i].Canary = &cc
		}
	}
	slices.SortFunc(out, func(a, b v1.InstanceStatus) int { return strings.Compare(a.Deployment, b.Deployment) })
	return out
}

// Connected reports whether the node is connected to the control plane and registered,
// and its lease has not lapsed (heartbeats unanswered for the lease-lost time).
func (n *Node) Connected() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.registered
}

// Revision returns the revision of the assignment set the node applied, and false if it
// has applied none.
func (n *Node) Revision() (uint64, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.applied == nil {
		return 0, false
	}
	return n.applied.Revision, true
}

// offer hands an assignment set to the reconciler if it is newer than everything
// applied or offered so far. It never blocks, so NATS callbacks may call it.
func (n *Node) offer(set v1.AssignmentSet, from string) {
	if set.Node != "" && set.Node != n.cfg.Name {
		n.log.Warn("ignoring assignments for another node", "from", from, "for", set.Node)
		return
	}
	if err := validateCanaries(&set); err != nil {
		// Defence in depth: the control plane validates too. Refusing the whole set
		// keeps the node on its previous state rather than half of a bad change. Every
		// heartbeat reply repeats the set: count and log each revision once.
		n.mu.Lock()
		first := n.refused != set.Revision
		n.refused = set.Revision
		n.mu.Unlock()
		if first {
			n.metrics.refusedSets.Inc()
			n.log.Error("refusing assignments with an invalid canary; keeping the previous ones", "from", from, "revision", set.Revision, "err", err)
		}
		return
	}
	n.mu.Lock()
	newest := n.applied
	if n.pending != nil {
		newest = n.pending
	}
	take := newest == nil || set.Revision > newest.Revision
	if take {
		n.pending = &set
	}
	n.mu.Unlock()
	if !take {
		if set.Revision < newest.Revision {
			n.log.Info("ignoring stale assignments", "from", from, "revision", set.Revision, "newest", newest.Revision)
		}
		return
	}
	n.signal(n.offered)
}

func (n *Node) signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (n *Node) setRegistered(ok bool) {
	n.mu.Lock()
	n.registered = ok
	n.mu.Unlock()
	if ok {
		n.signal(n.sliKick) // send what was buffered while away
		n.metrics.connected.Set(1)
	} else {
		n.metrics.connected.Set(0)
	}
}

// backoff is the wait before retry number attempt (1, 2, …): base doubled per attempt
// up to max, with "equal jitter" (between half and all of it) so that many nodes that
// failed together do not retry together.
func backoff(attempt int, base, max time.Duration) time.Duration {
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return d/2 + rand.N(d/2+1)
}
