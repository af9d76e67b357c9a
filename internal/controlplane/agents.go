package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/controlplane/state"
	"fermion.dev/fermion/internal/sliingest"
)

// maxAgentMessage bounds an agent's request body.
const maxAgentMessage = 1 << 20

// agentService answers the agent protocol over NATS (join, register, heartbeat) on
// every replica, and, on the leader, pushes changed assignment sets to their nodes.
//
// Lock order: dirtyMu is a leaf.
type agentService struct {
	cfg      *Config
	logger   *slog.Logger
	metrics  *metrics
	nc       *nats.Conn
	st       *state.Store
	lead     *state.Fence
	tokens   *tokenStore
	policies *policies
	event    func(context.Context, v1.Event)
	Acting   func() bool       // whether this replica's controllers act (pushes are the leader's)
	trustP   []string          // trusted keys, PEM, for agents
	registry bool              // whether the built-in registry is served
	slis     *sliingest.Ingest // the SLI receive path (slis.go)

	dirtyMu    sync.Mutex
	dirtyNodes map[string]bool
	pushKick   chan struct{}
}

// agentRequest is one subject of the agent protocol and its handler.
type agentRequest struct {
	subject string
	handle  func(ctx context.Context, node string, data []byte) any
}

// requests are the agent protocol's subjects; a new request adds its line here.
func (s *agentService) requests() []agentRequest {
	return []agentRequest{
		{v1.SubjectJoin, s.handleJoin},
		{v1.SubjectRegister("*"), s.handleRegister},
		{v1.SubjectHeartbeat("*"), s.handleHeartbeat},
		{v1.SubjectSLIs("*"), s.handleSLIs}, // hook: SLI receive path (slis.go)
	}
}

// serveAgents subscribes to the agent protocol in the servers' queue group: each
// request is answered by one replica. The subscriptions end with ctx; spawn owns the
// goroutine that ends them.
func (s *agentService) serveAgents(ctx context.Context, spawn func(func(context.Context))) error {
	subs := s.requests()
	var all []*nats.Subscription
	sem := make(chan struct{}, 64) // handlers in flight; a full set holds the callback back
	for _, sub := range subs {
		handle := sub.handle
		ns, err := s.nc.QueueSubscribe(sub.subject, v1.QueueServers, func(m *nats.Msg) {
			if m.Reply == "" {
				return
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func() {
				defer func() { <-sem }()
				s.answerAgent(ctx, m, handle)
			}()
		})
		if err != nil {
			return fmt.Errorf("control plane: subscribe %s: %w", sub.subject, err)
		}
		ns.SetPendingLimits(64*1024, 64<<20)
		all = append(all, ns)
	}
	spawn(func(ctx context.Context) {
		<-ctx.Done()
		for _, ns := range all {
			ns.Unsubscribe()
		}
	})
	return nil
}

func (s *agentService) answerAgent(ctx context.Context, m *nats.Msg, handle func(ctx context.Context, node string, data []byte) any) {
	node := ""
	if parts := strings.Split(m.Subject, "."); len(parts) == 4 {
		node = parts[2]
	}
	var reply any
	if len(m.Data) > maxAgentMessage {
		reply = errReply(&v1.Error{Code: v1.CodeTooLarge, Message: fmt.Sprintf("message of %d bytes exceeds %d", len(m.Data), maxAgentMessage)})
	} else {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		reply = handle(rctx, node, m.Data)
		cancel()
	}
	b, _ := json.Marshal(reply)
	m.Respond(b)
}

type errorReply struct {
	Error *v1.Error `json:"error"`
}

func errReply(e *v1.Error) errorReply { return errorReply{Error: e} }

func internalErr(op string, err error) *v1.Error {
	return &v1.Error{Code: v1.CodeUnavailable, Message: op + ": " + err.Error()}
}

func decodeStrict(data []byte, v any) *v1.Error {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &v1.Error{Code: v1.CodeBadRequest, Message: "decode message: " + err.Error()}
	}
	if dec.More() {
		return &v1.Error{Code: v1.CodeBadRequest, Message: "decode message: trailing data after the JSON value"}
	}
	return nil
}

// handleJoin issues a node's credentials. Only connections authenticated with a
// node-role join token may publish on the join subject (see natsAuth).
func (s *agentService) handleJoin(ctx context.Context, _ string, data []byte) any {
	var req v1.JoinRequest
	if e := decodeStrict(data, &req); e != nil {
		return v1.JoinReply{Error: e}
	}
	if err := v1.ValidName("node", req.Node); err != nil {
		return v1.JoinReply{Error: &v1.Error{Code: v1.CodeBadRequest, Field: "node", Message: err.Error()}}
	}
	// A name whose lease is fresh belongs to a live agent: a second agent joining
	// under it would take its credentials, and the two would take them back and forth.
	// The rightful agent, re-joining after losing its data directory, gets in once
	// its old lease lapses.
	if l, _, ok := s.st.Leases.Get(req.Node); ok {
		if age := time.Since(l.Renewed); age < s.cfg.LeaseLost {
			return v1.JoinReply{Error: &v1.Error{Code: v1.CodeConflict, Field: "node", Message: fmt.Sprintf(
				"node %s is live (lease renewed %s ago): another agent already runs under this name; give this one another --name, or stop the other and retry after %s",
				req.Node, age.Round(time.Second), s.cfg.LeaseLost)}}
		}
	}
	secret, err := s.tokens.issueNodeCreds(ctx, req.Node)
	if err != nil {
		return v1.JoinReply{Error: internalErr("join", err)}
	}
	s.logger.Info("node joined", "node", req.Node)
	return v1.JoinReply{Node: req.Node, Secret: secret}
}

// handleRegister records a node's labels and capacity and renews its lease.
func (s *agentService) handleRegister(ctx context.Context, node string, data []byte) any {
	var req v1.Register
	if e := decodeStrict(data, &req); e != nil {
		return v1.RegisterReply{Error: e}
	}
	if e := validateRegister(&req); e != nil {
		return v1.RegisterReply{Error: e}
	}
	now := time.Now().UTC()
	joined := false
	_, rev, err := s.st.Nodes.Update(ctx, node, func(cur *v1.Node) (*v1.Node, error) {
		n := v1.Node{Name: node, State: v1.NodeReady, Schedulable: true, Joined: now, StateChanged: now}
		joined = cur == nil
		if cur != nil {
			n = *cur
		}
		n.Labels, n.Capacity = req.Labels, req.Capacity
		n.RuntimeVersion, n.AgentVersion, n.GatewayURL = req.RuntimeVersion, req.AgentVersion, req.GatewayURL
		clearComputed(&n)
		return &n, nil
	})
	if err != nil {
		return v1.RegisterReply{Error: internalErr("register", err)}
	}
	var tel *v1.TelemetryHealth // kept from the last heartbeat until the next one
	if l, _, ok := s.st.Leases.Get(node); ok {
		tel = l.Telemetry
	}
	if err := s.renewLease(ctx, node, tel); err != nil {
		return v1.RegisterReply{Error: internalErr("register", err)}
	}
	s.st.Nodes.WaitRev(ctx, rev)
	if joined {
		s.event(ctx, v1.Event{Type: v1.EventNodeJoined, Node: node, Message: fmt.Sprintf("node %s joined with labels %s", node, formatLabels(req.Labels))})
	}
	reply := v1.RegisterReply{
		LeaseRenewSeconds: s.cfg.LeaseRenew.Seconds(), LeaseLostSeconds: s.cfg.LeaseLost.Seconds(),
		TrustedKeys: s.trustP, RequireSignatures: s.cfg.RequireSigned, MatchRepository: s.cfg.TrustMatchRepository, Assignments: s.assignmentSet(node), RuntimePolicies: s.policies.runtimePolicies(),
		SLIExemplars: true, // this server's sli decoder reads them
	}
	if s.registry && s.cfg.RegistryHost != "" {
		reply.Registry = &v1.RegistryInfo{Host: s.cfg.RegistryHost, TLS: s.cfg.RegistryTLS}
	}
	return reply
}

func validateRegister(r *v1.Register) *v1.Error {
	bad := func(field, msg string) *v1.Error {
		return &v1.Error{Code: v1.CodeBadRequest, Field: field, Message: msg}
	}
	if len(r.Labels) > 64 {
		return bad("labels", "at most 64 labels")
	}
	for k, v := range r.Labels {
		if k == "" || len(k) > 63 || len(v) > 253 {
			return bad("labels", fmt.Sprintf("label %q: keys are 1-63 bytes, values at most 253", k))
		}
	}
	if r.Capacity.MemoryBytes < 0 || r.Capacity.MilliCPU < 0 || r.Capacity.Instances < 0 {
		return bad("capacity", "capacity cannot be negative")
	}
	if r.RuntimeVersion == "" {
		return bad("runtimeVersion", "required")
	}
	return nil
}

func (s *agentService) renewLease(ctx context.Context, node string, tel *v1.TelemetryHealth) error {
	_, err := s.st.Leases.Put(ctx, node, &state.Lease{Renewed: time.Now().UTC(), Server: s.cfg.Name, Telemetry: tel})
	if err != nil {
		// A renewal this replica could not store is one the leader cannot hear:
		// when this replica leads, its wait before judging nodes lost restarts.
		s.lead.Deafened(time.Now())
	}
	return err
}

// handleHeartbeat renews the lease, records the reported statuses and returns the
// node's assignments.
func (s *agentService) handleHeartbeat(ctx context.Context, node string, data []byte) any {
	var req v1.Heartbeat
	if e := decodeStrict(data, &req); e != nil {
		return v1.HeartbeatReply{Error: e}
	}
	if _, _, ok := s.st.Nodes.Get(node); !ok {
		return v1.HeartbeatReply{Error: &v1.Error{Code: v1.CodeNotFound, Message: "node " + node + " is not registered; register first"}}
	}
	if len(req.Statuses) > 10000 {
		return v1.HeartbeatReply{Error: &v1.Error{Code: v1.CodeTooLarge, Message: "more than 10000 statuses"}}
	}
	if req.Telemetry != nil {
		if e := req.Telemetry.Validate(); e != nil {
			return v1.HeartbeatReply{Error: e}
		}
	}
	if err := s.renewLease(ctx, node, req.Telemetry); err != nil {
		return v1.HeartbeatReply{Error: internalErr("heartbeat", err)}
	}
	s.metrics.heartbeats.Inc()
	if err := s.recordStatuses(ctx, node, req.Statuses); err != nil {
		return v1.HeartbeatReply{Error: internalErr("heartbeat", err)}
	}
	return v1.HeartbeatReply{Assignments: s.assignmentSet(node), RuntimePolicies: s.policies.runtimePolicies()}
}

// recordStatuses writes the statuses that changed and removes those the node no longer
// reports; a change to ready or failed is an event.
func (s *agentService) recordStatuses(ctx context.Context, node string, sts []v1.InstanceStatus) error {
	reported := map[string]bool{}
	for _, st := range sts {
		if v1.ValidName("deployment", st.Deployment) != nil {
			continue
		}
		reported[st.Deployment] = true
		st.Node = node
		if len(st.LastError) > 2048 {
			st.LastError = st.LastError[:2048] + "…"
		}
		key := node + "." + st.Deployment
		old, _, had := s.st.Statuses.Get(key)
		if had && sameStatus(&old, &st) {
			continue
		}
		st.Updated = time.Now().UTC()
		if _, err := s.st.Statuses.Put(ctx, key, &st); err != nil {
			return err
		}
		if !had || old.State != st.State || old.Digest != st.Digest {
			switch st.State {
			case v1.InstanceReady:
				s.event(ctx, v1.Event{Type: v1.EventStarted, Deployment: st.Deployment, Node: node,
					Message: fmt.Sprintf("running %s (%s) on %s, %d instance(s) warm", st.Version, shortDigest(st.Digest), node, st.Instances)})
			case v1.InstanceFailed:
				s.event(ctx, v1.Event{Type: v1.EventFailed, Deployment: st.Deployment, Node: node,
					Message: fmt.Sprintf("%s (%s) failed on %s: %s", st.Version, shortDigest(st.Digest), node, st.LastError)})
			}
		}
	}
	var gone []string
	prefix := node + "."
	s.st.Statuses.EachOfNode(node, func(key string, _ *v1.InstanceStatus, _ uint64) {
		if d, ok := strings.CutPrefix(key, prefix); ok && !reported[d] {
			gone = append(gone, key)
		}
	})
	for _, key := range gone {
		if err := s.st.Statuses.Delete(ctx, key); err != nil {
			return fmt.Errorf("delete status %s: %w", key, err)
		}
	}
	return nil
}

func sameStatus(a, b *v1.InstanceStatus) bool {
	return a.Generation == b.Generation && a.Digest == b.Digest && a.Version == b.Version &&
		a.State == b.State && a.Instances == b.Instances && a.LastError == b.LastError &&
		sameCanaryStatus(a.Canary, b.Canary)
}

// sameCanaryStatus compares what a node reports of its canary: the rollout
// controller waits on its state and weight.
func sameCanaryStatus(a, b *v1.CanaryStatus) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// assignmentSet is everything node should run, from this replica's table.
func (s *agentService) assignmentSet(node string) v1.AssignmentSet {
	set := v1.AssignmentSet{Node: node}
	set.Revision, set.Assignments = s.st.Assignments.OfNode(node)
	for i := range set.Assignments {
		set.Assignments[i].Keep = keepDigests(s.st, &set.Assignments[i]) // revisions (issue 15)
	}
	slices.SortFunc(set.Assignments, func(a, b v1.Assignment) int { return strings.Compare(a.Deployment, b.Deployment) })
	return set
}

func (s *agentService) markDirty(node string) {
	s.dirtyMu.Lock()
	s.dirtyNodes[node] = true
	s.dirtyMu.Unlock()
	select {
	case s.pushKick <- struct{}{}:
	default:
	}
}

func (s *agentService) markAllDirty() {
	s.st.Nodes.Each(func(name string, _ *v1.Node, _ uint64) {
		s.dirtyMu.Lock()
		s.dirtyNodes[name] = true
		s.dirtyMu.Unlock()
	})
	select {
	case s.pushKick <- struct{}{}:
	default:
	}
}

// pushLoop sends changed assignment sets to their nodes (leader only; agents also get
// them with every heartbeat reply, so a lost push costs at most one renewal interval).
func (s *agentService) pushLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.pushKick:
		}
		// Coalesce a burst of writes into one push per node.
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
		s.dirtyMu.Lock()
		dirty := s.dirtyNodes
		s.dirtyNodes = map[string]bool{}
		s.dirtyMu.Unlock()
		if !s.Acting() {
			continue
		}
		for node := range dirty {
			b, _ := json.Marshal(s.assignmentSet(node))
			if err := s.nc.Publish(v1.SubjectAssignments(node), b); err != nil {
				s.logger.Warn("push assignments", "node", node, "err", err)
			}
		}
	}
}

func shortDigest(d string) string {
	if h, ok := strings.CutPrefix(d, "sha256:"); ok && len(h) > 12 {
		return "sha256:" + h[:12]
	}
	return d
}

func formatLabels(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	if len(parts) == 0 {
		return "(none)"
	}
	return strings.Join(parts, ",")
}

// clearComputed zeroes the fields of a node filled on reads, never stored.
func clearComputed(n *v1.Node) {
	n.LeaseRenewed, n.LeaseAge, n.Allocated, n.Assignments, n.Revision, n.Telemetry = time.Time{}, 0, v1.Resources{}, nil, 0, nil
}
