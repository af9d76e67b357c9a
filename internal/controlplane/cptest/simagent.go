package cptest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	v1 "fermion.dev/fermion/api/v1"
)

// SimAgent is a lightweight agent: it joins, registers, renews its lease, hears its
// assignments and reports each one ready at once, over the real protocol and its own
// NATS connection, without a sandbox. A fleet of them exercises the control plane
// the way a fleet of nodes would.
type SimAgent struct {
	Name string
	url  string
	reg  v1.Register

	mu      sync.Mutex // leaf
	nc      *nats.Conn
	set     v1.AssignmentSet
	rules   []v1.RuntimePolicy // from the last register or heartbeat reply
	paused  bool
	tel     *v1.TelemetryHealth // sent with every heartbeat (SetTelemetry)
	applied chan struct{}       // closed and replaced when the set changes
	// since is when the agent was first told to run each version it runs now
	// (versionKey), the anchor of its simulated instance timelines.
	since map[string]time.Time

	stop context.CancelFunc
	done chan struct{}
	kick chan struct{}
}

// JoinSimAgent joins a node with a join token and starts renewing its lease.
func JoinSimAgent(ctx context.Context, natsURL, joinToken, name string, reg v1.Register) (*SimAgent, error) {
	if reg.RuntimeVersion == "" {
		reg.RuntimeVersion = "1"
	}
	jc, err := nats.Connect(natsURL, nats.UserInfo(v1.JoinUser, joinToken), nats.Name("sim-join "+name))
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", name, err)
	}
	var jr v1.JoinReply
	err = request(ctx, jc, v1.SubjectJoin, v1.JoinRequest{Node: name}, &jr)
	jc.Close()
	if err == nil && jr.Error != nil {
		err = jr.Error
	}
	if err != nil {
		return nil, fmt.Errorf("join %s: %w", name, err)
	}
	nc, err := nats.Connect(natsURL, nats.UserInfo(v1.NodeUserPrefix+name, jr.Secret), nats.Name("sim "+name),
		nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", name, err)
	}
	a := &SimAgent{Name: name, url: natsURL, reg: reg, nc: nc, applied: make(chan struct{}), done: make(chan struct{}), kick: make(chan struct{}, 1)}
	// One subscription for everything sent to the node (assignment pushes, instance
	// timeline requests): nats.go runs a goroutine per subscription, and a fleet of
	// 1,000 simulated agents should not pay for two each.
	assignments, instances := v1.SubjectAssignments(name), v1.SubjectInstances(name)
	if _, err := nc.Subscribe("fermion.node."+name+".>", func(m *nats.Msg) {
		a.mu.Lock()
		cut := a.paused // cut off: pushes and requests do not reach it either
		a.mu.Unlock()
		if cut {
			return
		}
		switch m.Subject {
		case assignments:
			var set v1.AssignmentSet
			if json.Unmarshal(m.Data, &set) == nil {
				a.apply(set)
			}
		case instances:
			a.answerInstances(m)
		}
	}); err != nil {
		nc.Close()
		return nil, err
	}
	var rr v1.RegisterReply
	if err := request(ctx, nc, v1.SubjectRegister(name), reg, &rr); err != nil || rr.Error != nil {
		nc.Close()
		return nil, fmt.Errorf("register %s: %w", name, errors.Join(err, errOrNil(rr.Error)))
	}
	a.apply(rr.Assignments)
	a.setRuntimePolicies(rr.RuntimePolicies)
	renew := time.Duration(rr.LeaseRenewSeconds * float64(time.Second))
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.stop = cancel
	go a.loop(rctx, renew)
	return a, nil
}

func errOrNil(e *v1.Error) error {
	if e == nil {
		return nil
	}
	return e
}

func request(ctx context.Context, nc *nats.Conn, subject string, req, reply any) error {
	b, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := nc.RequestWithContext(ctx, subject, b)
	if err != nil {
		return err
	}
	return json.Unmarshal(m.Data, reply)
}

func (a *SimAgent) loop(ctx context.Context, renew time.Duration) {
	defer close(a.done)
	t := time.NewTicker(renew)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.kick:
		}
		a.mu.Lock()
		paused, tel := a.paused, a.tel
		a.mu.Unlock()
		if paused {
			continue
		}
		var hr v1.HeartbeatReply
		err := request(ctx, a.nc, v1.SubjectHeartbeat(a.Name), v1.Heartbeat{Statuses: a.statuses(), Telemetry: tel}, &hr)
		if err != nil {
			continue
		}
		if hr.Error != nil && hr.Error.Code == v1.CodeNotFound {
			var rr v1.RegisterReply
			request(ctx, a.nc, v1.SubjectRegister(a.Name), a.reg, &rr)
			continue
		}
		if hr.Error == nil {
			a.apply(hr.Assignments)
			a.setRuntimePolicies(hr.RuntimePolicies)
		}
	}
}

func (a *SimAgent) setRuntimePolicies(ps []v1.RuntimePolicy) {
	if ps == nil {
		return // a server without policies: keep what we have, as an agent does
	}
	a.mu.Lock()
	a.rules = ps
	a.mu.Unlock()
}

// RuntimePolicies returns the runtime policies the last register or heartbeat reply
// carried.
func (a *SimAgent) RuntimePolicies() []v1.RuntimePolicy {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]v1.RuntimePolicy(nil), a.rules...)
}

func (a *SimAgent) apply(set v1.AssignmentSet) {
	a.mu.Lock()
	if set.Revision < a.set.Revision {
		a.mu.Unlock()
		return
	}
	changed := !sameSet(a.set, set)
	a.set = set
	a.noteVersionsLocked(time.Now())
	if changed {
		close(a.applied)
		a.applied = make(chan struct{})
	}
	a.mu.Unlock()
	if changed {
		select { // report the new state promptly
		case a.kick <- struct{}{}:
		default:
		}
	}
}

func sameSet(a, b v1.AssignmentSet) bool {
	if len(a.Assignments) != len(b.Assignments) {
		return false
	}
	for i := range a.Assignments {
		x, y := a.Assignments[i], b.Assignments[i]
		if x.Deployment != y.Deployment || x.Generation != y.Generation || x.Version.Digest != y.Version.Digest {
			return false
		}
	}
	return true
}

func (a *SimAgent) statuses() []v1.InstanceStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]v1.InstanceStatus, 0, len(a.set.Assignments))
	for _, as := range a.set.Assignments {
		out = append(out, v1.InstanceStatus{Deployment: as.Deployment, Node: a.Name, Generation: as.Generation,
			Digest: as.Version.Digest, Version: as.Version.Version, State: v1.InstanceReady, Instances: 1})
	}
	return out
}

// Assignments returns the deployments the agent runs now.
func (a *SimAgent) Assignments() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, as := range a.set.Assignments {
		out = append(out, as.Deployment)
	}
	return out
}

// AssignedDigest is the digest the agent was last told to run for deployment ("" when
// none).
func (a *SimAgent) AssignedDigest(deployment string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, as := range a.set.Assignments {
		if as.Deployment == deployment {
			return as.Version.Digest
		}
	}
	return ""
}

// Pause stops lease renewals and drops assignment pushes (the agent is cut off)
// until Resume.
func (a *SimAgent) Pause() { a.setPaused(true) }

// SetTelemetry makes every heartbeat from now on report h as the node's span export
// health, and sends one at once.
func (a *SimAgent) SetTelemetry(h *v1.TelemetryHealth) {
	a.mu.Lock()
	a.tel = h
	a.mu.Unlock()
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// Heartbeat sends one heartbeat as given and returns the server's reply.
func (a *SimAgent) Heartbeat(ctx context.Context, hb v1.Heartbeat) (v1.HeartbeatReply, error) {
	var hr v1.HeartbeatReply
	err := request(ctx, a.nc, v1.SubjectHeartbeat(a.Name), hb, &hr)
	return hr, err
}

// Resume renews again.
func (a *SimAgent) Resume() { a.setPaused(false) }

func (a *SimAgent) setPaused(p bool) {
	a.mu.Lock()
	a.paused = p
	a.mu.Unlock()
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// Close stops the agent as if its process died.
func (a *SimAgent) Close() {
	if a.stop != nil {
		a.stop()
		<-a.done
	}
	a.nc.Close()
}
