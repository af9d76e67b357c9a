package agent

import (
	"cmp"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	v1 "fermion.dev/fermion/api/v1"
)

// Retry timing. Every wait is jittered (backoff).
const (
	joinRetryBase      = 250 * time.Millisecond
	registerRetryBase  = 250 * time.Millisecond
	heartbeatRetryBase = 250 * time.Millisecond
	retryMax           = 30 * time.Second
	reconnectBase      = 100 * time.Millisecond
	reconnectMax       = 3 * time.Second
	// authPollInterval: while disconnected, how often the loop looks at the connection's
	// last error for a refusal the callbacks do not report (nats.go reports only the
	// first failure of an initial connect).
	authPollInterval = time.Second
	// rejoinGrace: a refusal seen this soon after a join is the old credentials' (the
	// connection has not tried the new ones yet), not a reason to join again.
	rejoinGrace = 5 * time.Second
)

// ErrJoinTokenRefused is in the error Run returns when the control plane refuses the join
// token of a node that has never joined.
var ErrJoinTokenRefused = errors.New("refused the join token")

// cpLoop is the control-plane loop's state, owned by its goroutine: the NATS connection
// and the join, register and heartbeat schedule. It is the only sender of requests, so
// one slow answer delays the next request, never a NATS callback.
type cpLoop struct {
	n  *Node
	nc *nats.Conn // nil until the node has credentials (or none are needed)

	connectFailures int
	connectAt       time.Time

	needJoin     bool
	joinFailures int
	joinAt       time.Time
	joined       time.Time // last successful join
	refusals     int       // refusals in a row with no join token to answer them
	// firstJoin is set while a node that started without credentials has not joined:
	// a refused join token then ends Run (fatal), as nothing could ever succeed.
	firstJoin bool
	fatal     error

	registered  bool
	regFailures int
	regAt       time.Time // zero: no registration due (not connected)

	renew      time.Duration
	leaseLost  time.Duration // unrenewed this long, the control plane counts the node lost
	renewed    time.Time     // last registration or heartbeat answered
	hbFailures int
	hbAt       time.Time
	hbSoon     time.Time // a status changed: heartbeat at this time (zero: none due)
}

func (n *Node) controlPlaneLoop(ctx context.Context) error {
	c := &cpLoop{n: n, renew: defaultLeaseRenew}
	defer c.close()
	switch {
	case n.currentCreds() != nil:
	case n.cfg.JoinToken != "":
		c.needJoin, c.firstJoin = true, true
	default:
		n.log.Warn("the node has no credentials and no join token; connecting without credentials, which only a control plane without NATS authentication accepts; to join a fermion server, pass a node token (fermion token create --role node) with --token or FERMION_JOIN_TOKEN")
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		c.step(ctx)
		if c.fatal != nil {
			return c.fatal
		}
		if ctx.Err() != nil {
			return nil
		}
		timer.Reset(time.Until(c.nextWake()))
		select {
		case <-ctx.Done():
			return nil
		case <-n.connEvents:
			c.registered = false
			c.regFailures, c.refusals = 0, 0
			c.regAt = time.Now()
		case <-n.authRefused:
			c.refused("the control plane refused the node's credentials")
		case <-n.statusChanged:
			if c.hbSoon.IsZero() {
				c.hbSoon = time.Now().Add(statusDebounce)
			}
		case <-timer.C:
		}
	}
}

// step does whatever is due.
func (c *cpLoop) step(ctx context.Context) {
	now := time.Now()
	if c.needJoin && !now.Before(c.joinAt) {
		c.join(ctx)
	}
	if !c.needJoin && c.nc == nil && !now.Before(c.connectAt) {
		c.connect()
	}
	connected := c.nc != nil && c.nc.IsConnected()
	if !connected {
		if c.registered {
			c.registered = false
			c.n.setRegistered(false)
		}
		if c.nc != nil && isAuthError(c.nc.LastError()) {
			c.refused("the control plane refused the node's credentials")
		}
		return
	}
	if !c.registered && !c.regAt.IsZero() && !now.Before(c.regAt) {
		c.register(ctx)
	}
	if c.registered && (!now.Before(c.hbAt) || (!c.hbSoon.IsZero() && !now.Before(c.hbSoon))) {
		c.heartbeat(ctx)
	}
}

// nextWake is when step next has something to do; signals wake the loop earlier.
func (c *cpLoop) nextWake() time.Time {
	now := time.Now()
	next := now.Add(time.Minute)
	earlier := func(t time.Time) {
		if !t.IsZero() && t.Before(next) {
			next = t
		}
	}
	switch {
	case c.needJoin:
		earlier(c.joinAt)
	case c.nc == nil:
		earlier(c.connectAt)
	case !c.nc.IsConnected():
		earlier(now.Add(authPollInterval))
	case !c.registered:
		earlier(c.regAt)
	default:
		earlier(c.hbAt)
		earlier(c.hbSoon)
	}
	return next
}

// refused handles a refusal of the node's credentials: join again if a token allows it.
func (c *cpLoop) refused(why string) {
	n := c.n
	if c.needJoin || time.Since(c.joined) < rejoinGrace {
		return
	}
	if n.cfg.JoinToken == "" {
		if c.refusals++; loud(c.refusals) {
			n.log.Error(why+"; give the node a join token (role node) to join again", "attempt", c.refusals)
		}
		return
	}
	n.log.Warn(why + "; joining again with the join token")
	c.needJoin, c.joinFailures, c.joinAt = true, 0, time.Now()
}

// join asks the control plane for the node's credentials over a short-lived connection
// as the join user, and keeps them in DataDir.
func (c *cpLoop) join(ctx context.Context) {
	n := c.n
	creds, err := c.requestJoin(ctx)
	if err != nil && c.firstJoin && errors.Is(err, ErrJoinTokenRefused) {
		// Never joined, no credentials, no assignments to keep serving: retrying a
		// token the control plane refuses would only hide the mistake.
		c.fatal = err
		return
	}
	if err != nil {
		c.joinFailures++
		wait := backoff(c.joinFailures, joinRetryBase, retryMax)
		c.joinAt = time.Now().Add(wait)
		if loud(c.joinFailures) {
			n.log.Warn("join failed; retrying", "err", err, "attempt", c.joinFailures, "retryIn", wait.Round(time.Millisecond))
		}
		return
	}
	if err := writeJSON(n.cfg.DataDir, credsFile, creds); err != nil {
		// The node still has them for this run; the next start joins again.
		n.log.Error("node credentials not saved", "err", err)
	}
	n.mu.Lock()
	n.creds = creds
	n.mu.Unlock()
	c.needJoin, c.joinFailures, c.joined, c.firstJoin = false, 0, time.Now(), false
	n.log.Info("joined the control plane")
	if c.nc != nil && !c.nc.IsConnected() {
		c.nc.ForceReconnect() // try the new credentials now rather than after the backoff
	}
}

// tlsOption gives the NATS connection the node's TLS configuration, used when the URL
// is tls:// or the server requires TLS (unlike nats.Secure, which would refuse a
// server without TLS).
func (n *Node) tlsOption() nats.Option {
	return func(o *nats.Options) error {
		if n.cfg.TLS != nil {
			o.TLSConfig = n.cfg.TLS.Clone()
		}
		return nil
	}
}

// explainTLS adds what to do to a TLS failure reaching the control plane.
func explainTLS(err error) error {
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return fmt.Errorf("%w; the control plane's certificate is signed by a CA this node does not trust: pass that CA with --ca-file or FERMION_CA_FILE", err)
	}
	if _, ok := errors.AsType[x509.HostnameError](err); ok {
		return fmt.Errorf("%w; the control plane's certificate does not name the host in --server: use a name it lists, or reissue it", err)
	}
	if ce, ok := errors.AsType[x509.CertificateInvalidError](err); ok && ce.Reason == x509.Expired {
		return fmt.Errorf("%w; the control plane's certificate expired (or is not valid yet): renew its --tls-cert files, or check this node's clock", err)
	}
	return err
}

func (c *cpLoop) requestJoin(ctx context.Context) (*nodeCreds, error) {
	n := c.n
	nc, err := nats.Connect(strings.Join(n.cfg.Servers, ","),
		n.tlsOption(),
		nats.Name("fermion-agent-join "+n.cfg.Name),
		nats.UserInfo(v1.JoinUser, n.cfg.JoinToken),
		nats.Timeout(requestTimeout),
		nats.NoReconnect(),
	)
	if errors.Is(err, nats.ErrAuthorization) {
		return nil, fmt.Errorf("join: %s %w: it is unknown, revoked, expired or not a node token; create one with fermion token create --role node (%w)",
			strings.Join(n.cfg.Servers, ", "), ErrJoinTokenRefused, err)
	}
	if err != nil {
		return nil, fmt.Errorf("join: connect to %s: %w", strings.Join(n.cfg.Servers, ", "), explainTLS(err))
	}
	defer nc.Close()
	var reply v1.JoinReply
	if _, err := request(ctx, nc, v1.SubjectJoin, v1.JoinRequest{Node: n.cfg.Name}, &reply); err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	switch {
	case reply.Error != nil:
		return nil, fmt.Errorf("join: refused: %w", reply.Error)
	case reply.Node != n.cfg.Name:
		return nil, fmt.Errorf("join: the control plane answered for node %q, not %q", reply.Node, n.cfg.Name)
	case reply.Secret == "":
		return nil, errors.New("join: the control plane answered without a secret")
	}
	return &nodeCreds{Node: reply.Node, Secret: reply.Secret}, nil
}

// connect creates the node's NATS connection. It connects in the background and for
// ever (RetryOnFailedConnect, MaxReconnects(-1)); the callbacks only signal the loop.
func (c *cpLoop) connect() {
	n := c.n
	var tlsFailures atomic.Int64 // consecutive failed reconnects in TLS
	nc, err := nats.Connect(strings.Join(n.cfg.Servers, ","),
		n.tlsOption(),
		nats.Name("fermion-agent "+n.cfg.Name),
		nats.UserInfoHandler(n.natsUser), // read at every attempt: a rejoin takes effect at once
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.IgnoreAuthErrorAbort(), // a refusal makes the agent join again; never give up
		nats.CustomReconnectDelay(func(attempts int) time.Duration {
			return backoff(attempts, reconnectBase, reconnectMax)
		}),
		nats.Timeout(requestTimeout),
		nats.PingInterval(5*time.Second),
		nats.MaxPingsOutstanding(3),
		nats.ConnectHandler(func(*nats.Conn) {
			n.log.Info("connected to the control plane")
			n.signal(n.connEvents)
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			tlsFailures.Store(0)
			n.log.Info("reconnected to the control plane")
			n.signal(n.connEvents)
		}),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			n.setRegistered(false)
			if !nc.IsClosed() { // closed: the node is stopping
				n.log.Warn("disconnected from the control plane; serving the last assignments while reconnecting", "err", err)
			}
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			if isAuthError(err) {
				n.signal(n.authRefused)
			}
			// Other failures are the network's and retried quietly; a TLS one (a rotated
			// certificate this node does not accept) needs someone, so say so.
			if errors.Is(err, nats.ErrTLS) {
				if k := int(tlsFailures.Add(1)); loud(k) {
					n.log.Warn("cannot reconnect to the control plane over TLS; retrying", "err", explainTLS(err), "attempt", k)
				}
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if isAuthError(err) {
				n.signal(n.authRefused)
				return
			}
			n.log.Warn("control plane connection error", "err", err)
		}),
	)
	if err != nil {
		// Only malformed options or URLs fail here; retrying is cheap and logs it.
		c.connectFailures++
		wait := backoff(c.connectFailures, joinRetryBase, retryMax)
		c.connectAt = time.Now().Add(wait)
		n.log.Error("connect to the control plane", "servers", n.cfg.Servers, "err", err, "retryIn", wait.Round(time.Millisecond))
		return
	}
	// Subscribed once: the connection subscribes again after every reconnect.
	_, err = nc.Subscribe(v1.SubjectAssignments(n.cfg.Name), func(m *nats.Msg) {
		var set v1.AssignmentSet
		if err := json.Unmarshal(m.Data, &set); err != nil {
			n.log.Warn("ignoring malformed assignments", "subject", m.Subject, "err", err)
			return
		}
		n.offer(set, "push")
	})
	if err != nil {
		nc.Close()
		c.connectFailures++
		c.connectAt = time.Now().Add(backoff(c.connectFailures, joinRetryBase, retryMax))
		n.log.Error("subscribe to assignments", "err", err)
		return
	}
	// The instance timelines (instances.go), asked for by the control plane.
	if _, err := nc.Subscribe(v1.SubjectInstances(n.cfg.Name), n.answerInstances); err != nil {
		n.log.Warn("subscribe to instance timeline requests; the console's Debug view will list this node as unreachable", "err", err)
	}
	c.nc, c.connectFailures = nc, 0
	n.sliConn.Store(nc) // hook: the SLI sender shares the connection (slisend.go)
}

func (c *cpLoop) close() {
	if c.nc != nil {
		c.nc.Close()
	}
	c.n.setRegistered(false)
}

// register announces the node and takes the lease timing, trust roots and assignments
// from the answer. It is due after every (re)connect.
func (c *cpLoop) register(ctx context.Context) {
	n := c.n
	req := v1.Register{
		Labels:         n.cfg.Labels,
		Capacity:       n.cfg.Capacity,
		RuntimeVersion: n.cfg.RuntimeVersion,
		AgentVersion:   n.cfg.AgentVersion,
		GatewayURL:     n.cfg.GatewayURL,
	}
	var reply v1.RegisterReply
	result, err := request(ctx, c.nc, v1.SubjectRegister(n.cfg.Name), req, &reply)
	if err == nil && reply.Error != nil {
		result, err = resultRejected, fmt.Errorf("register: refused: %w", reply.Error)
	}
	if err == nil {
		n.sliExemplars.Store(reply.SLIExemplars)
		var changed bool
		if changed, err = n.trust.set(reply.TrustedKeys, reply.RequireSignatures, reply.MatchRepository); err != nil {
			result, err = resultRejected, fmt.Errorf("register: the control plane sent an unusable trusted key: %w", err)
		} else {
			if n.setRegistry(reply.Registry) {
				changed = true
			}
			if changed {
				body := trustFileBody{TrustedKeys: reply.TrustedKeys, RequireSignatures: reply.RequireSignatures, MatchRepository: reply.MatchRepository, Registry: reply.Registry}
				if err := writeJSON(n.cfg.DataDir, trustFile, body); err != nil {
					n.log.Error("trusted keys not saved", "err", err)
				}
			}
		}
	}
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		n.metrics.registrations.WithLabelValues(result).Inc()
		c.regFailures++
		wait := backoff(c.regFailures, registerRetryBase, retryMax)
		c.regAt = time.Now().Add(wait)
		if loud(c.regFailures) {
			n.log.Warn("registration failed; retrying", "err", err, "attempt", c.regFailures, "retryIn", wait.Round(time.Millisecond))
		}
		return
	}
	n.metrics.registrations.WithLabelValues(resultOK).Inc()
	c.renew = defaultLeaseRenew
	if reply.LeaseRenewSeconds > 0 {
		c.renew = time.Duration(reply.LeaseRenewSeconds * float64(time.Second))
	}
	c.leaseLost = 3 * c.renew
	if reply.LeaseLostSeconds > 0 {
		c.leaseLost = time.Duration(reply.LeaseLostSeconds * float64(time.Second))
	}
	c.registered, c.regFailures, c.hbFailures = true, 0, 0
	now := time.Now()
	c.renewed = now
	c.hbAt, c.hbSoon = now.Add(c.renew), now.Add(statusDebounce) // report statuses at once
	n.setRegistered(true)
	n.log.Info("registered with the control plane", "leaseRenew", c.renew, "assignmentsRevision", reply.Assignments.Revision)
	n.updateRuntimePolicies(reply.RuntimePolicies)
	n.offer(reply.Assignments, "register")
}

// heartbeat renews the lease, reports every assigned deployment's status and takes the
// assignments from the answer.
func (c *cpLoop) heartbeat(ctx context.Context) {
	n := c.n
	c.hbSoon = time.Time{}
	var reply v1.HeartbeatReply
	hb := v1.Heartbeat{Statuses: n.Statuses()}
	if n.cfg.TelemetryHealth != nil {
		hb.Telemetry = n.cfg.TelemetryHealth()
	}
	result, err := request(ctx, c.nc, v1.SubjectHeartbeat(n.cfg.Name), hb, &reply)
	if err == nil && reply.Error != nil {
		result, err = resultRejected, fmt.Errorf("heartbeat: refused: %w", reply.Error)
	}
	if ctx.Err() != nil {
		return
	}
	n.metrics.heartbeats.WithLabelValues(cmp.Or(result, resultOK)).Inc()
	if err != nil {
		c.hbFailures++
		wait := min(backoff(c.hbFailures, heartbeatRetryBase, retryMax), c.renew)
		c.hbAt = time.Now().Add(wait)
		if loud(c.hbFailures) {
			n.log.Warn("heartbeat failed; serving the last assignments and retrying", "err", err, "attempt", c.hbFailures, "retryIn", wait.Round(time.Millisecond))
		}
		lost := time.Since(c.renewed) > c.leaseLost
		if lost || (reply.Error != nil && reply.Error.Code == v1.CodeNotFound) {
			// The control plane does not know the node (any more), or has given up on
			// it: register again.
			if lost {
				n.log.Warn("lease lost; registering again", "unrenewedFor", time.Since(c.renewed).Round(time.Millisecond))
			}
			c.registered, c.regAt = false, time.Now()
			n.setRegistered(false)
		}
		return
	}
	if c.hbFailures > 0 {
		n.log.Info("heartbeats answered again", "after", c.hbFailures)
	}
	c.hbFailures = 0
	c.renewed = time.Now()
	c.hbAt = c.renewed.Add(c.renew)
	n.updateRuntimePolicies(reply.RuntimePolicies)
	n.offer(reply.Assignments, "heartbeat")
}

// request sends a JSON request and decodes the JSON reply into reply. It returns the
// metrics result of a failure: unreachable when no answer came, rejected when the
// answer does not decode.
func request(ctx context.Context, nc *nats.Conn, subject string, req, reply any) (string, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return resultRejected, fmt.Errorf("encode %s: %w", subject, err)
	}
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	msg, err := nc.RequestWithContext(rctx, subject, b)
	if err != nil {
		return resultUnreachable, fmt.Errorf("request %s: %w", subject, err)
	}
	if err := json.Unmarshal(msg.Data, reply); err != nil {
		return resultRejected, fmt.Errorf("decode answer to %s: %w", subject, err)
	}
	return "", nil
}

// natsUser is the connection's user and password, read at every connection attempt.
func (n *Node) natsUser() (string, string) {
	if c := n.currentCreds(); c != nil {
		return v1.NodeUserPrefix + c.Node, c.Secret
	}
	return "", ""
}

func (n *Node) currentCreds() *nodeCreds {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.creds
}

func isAuthError(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked)
}

// loud says whether the attempt-th failure in a row is logged: the first and every
// tenth, so an unreachable control plane is visible without flooding the log.
func loud(attempt int) bool { return attempt == 1 || attempt%10 == 0 }
