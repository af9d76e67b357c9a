package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/nodecache"
	"fermion.dev/fermion/internal/policy"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

// Retry timing of a version that failed to pull or start.
const (
	startRetryBase = 500 * time.Millisecond
	startRetryMax  = 30 * time.Second
	// startRetryMaxSame bounds the wait after failures that the same digest will meet
	// again (see startRetryCap): only a change on the node could make a retry succeed.
	startRetryMaxSame = 5 * time.Minute
)

// startRetryCap is the longest wait between attempts after a failure for reason. An
// artifact is content-addressed: a module the sandbox refused, a manifest that does not
// parse or a runtime policy denial comes back the same on every attempt at that digest,
// so those retries slow down to minutes rather than recompiling every 30 s; a new digest
// starts afresh. A registry away, a download that failed verification (a proxy can
// corrupt one) or a route conflict can clear at any moment.
func startRetryCap(reason string) time.Duration {
	switch reason {
	case telemetry.LoadModule, telemetry.LoadManifest, telemetry.LoadPolicy:
		return startRetryMaxSame
	}
	return startRetryMax
}

// reconciler makes the data plane run the applied assignment set. Its state is owned by
// the reconcile goroutine; the tasks it starts report back on done.
type reconciler struct {
	n        *Node
	deps     map[string]*deployment // by deployment name
	done     chan *task             // finished tasks
	inflight int
	drains   sync.WaitGroup // removed versions draining
}

// deployment is one deployment name: what is wanted, what the data plane serves under
// it and what is in flight.
type deployment struct {
	name     string
	want     *v1.Assignment // nil: no longer assigned
	running  *sandbox.Function
	digest   string // manifest digest running serves
	task     *task  // the pull-and-start in flight; at most one per name
	failures int    // failed attempts in a row at want's digest
	retryAt  time.Time
	lastErr  string
	canary   canaryRun // the canary beside running (canary_reconcile.go)
}

// task pulls and starts one version. Its goroutine writes fn and err, then sends it on
// reconciler.done; the reconcile goroutine reads them after receiving it.
type task struct {
	name       string
	a          v1.Assignment
	cancel     context.CancelFunc
	superseded bool // canceled by the reconciler: the outcome is no failure
	canary     bool // starts a.Canary's version as the canary, not a.Version
	fn         *sandbox.Function
	err        error
}

func (n *Node) reconcileLoop(ctx context.Context) {
	r := &reconciler{n: n, deps: map[string]*deployment{}, done: make(chan *task)}
	n.mu.Lock()
	set := n.applied
	n.mu.Unlock()
	if set != nil {
		n.log.Info("serving the last applied assignments", "revision", set.Revision, "deployments", len(set.Assignments))
		r.setDesired(set)
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		r.takePending()
		next := r.reconcile(ctx)
		if next.IsZero() {
			next = time.Now().Add(time.Hour)
		}
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			r.shutdown()
			return
		case <-n.offered:
		case t := <-r.done:
			r.finish(ctx, t)
		case <-timer.C:
		}
	}
}

// shutdown cancels the tasks in flight and waits for them and for the drains.
func (r *reconciler) shutdown() {
	for _, d := range r.deps {
		for _, t := range []*task{d.task, d.canary.task} {
			if t != nil {
				t.superseded = true
				t.cancel()
			}
		}
	}
	for ; r.inflight > 0; r.inflight-- {
		<-r.done
	}
	r.drains.Wait()
}

// takePending applies the set offered last, if any, and keeps it in DataDir.
func (r *reconciler) takePending() {
	n := r.n
	n.mu.Lock()
	set := n.pending
	n.pending = nil
	if set != nil {
		// Applied under the same lock offer compares against, so an older set offered
		// meanwhile is refused.
		n.applied = set
	}
	n.mu.Unlock()
	if set == nil {
		return
	}
	if err := writeJSON(n.cfg.DataDir, assignmentsFile, set); err != nil {
		n.log.Error("assignments applied but not saved; a restart before the next change would serve the previous ones", "revision", set.Revision, "err", err)
	}
	n.metrics.revision.Set(float64(set.Revision))
	n.metrics.assignments.Set(float64(len(set.Assignments)))
	n.log.Info("applied assignments", "revision", set.Revision, "deployments", len(set.Assignments))
	r.setDesired(set)
}

// setDesired makes set what the deployments want, and pins the artifacts it names in
// the cache, with those of each deployment's earlier revisions it keeps (unpinning
// those it no longer names).
func (r *reconciler) setDesired(set *v1.AssignmentSet) {
	want := map[string]v1.Assignment{}
	for _, a := range set.Assignments {
		if a.Deployment == "" {
			r.n.log.Warn("ignoring an assignment without a deployment name", "revision", set.Revision)
			continue
		}
		if _, dup := want[a.Deployment]; dup {
			r.n.log.Warn("ignoring a second assignment of the same deployment", "deployment", a.Deployment, "revision", set.Revision)
			continue
		}
		want[a.Deployment] = a
	}
	for name, d := range r.deps {
		if _, ok := want[name]; !ok {
			d.want = nil
		}
	}
	for name, a := range want {
		d := r.deps[name]
		if d == nil {
			d = &deployment{name: name}
			r.deps[name] = d
		}
		if d.want == nil || d.want.Version.Digest != a.Version.Digest {
			d.failures, d.retryAt, d.lastErr = 0, time.Time{}, ""
		}
		if canaryDigest(d.want) != canaryDigest(&a) {
			d.canary.failures, d.canary.retryAt, d.canary.lastErr = 0, time.Time{}, ""
		}
		d.want = &a
	}

	pins := keepPins(want, r.n.cfg.KeepRevisions)
	for _, a := range want {
		if a.Canary != nil { // the canary's artifact too (canary_reconcile.go)
			pins[a.Canary.Version.Digest] = true
		}
	}
	for _, md := range r.n.cache.Pinned() {
		if !pins[md] {
			r.n.cache.Pin(md, false)
		}
	}
	for md := range pins {
		r.n.cache.Pin(md, true)
	}
}

// reconcile removes what is no longer wanted, starts what is wanted and not running
// (unless it is waiting to retry) and returns when the next retry is due (zero: none).
func (r *reconciler) reconcile(ctx context.Context) time.Time {
	if ctx.Err() != nil {
		return time.Time{}
	}
	now := time.Now()
	var next time.Time
	names := slices.Sorted(maps.Keys(r.deps))
	// Removals first: a new deployment may take the routes of one that goes.
	for _, name := range names {
		d := r.deps[name]
		if d.want != nil {
			continue
		}
		r.n.clearStatus(name)
		if d.task != nil || d.canary.task != nil {
			for _, t := range []*task{d.task, d.canary.task} {
				if t != nil {
					r.supersede(t) // removed once it has finished
				}
			}
			continue
		}
		if d.running != nil {
			r.remove(ctx, d)
		}
		delete(r.deps, name)
	}
	for _, name := range names {
		d := r.deps[name]
		if d == nil || d.want == nil {
			continue
		}
		a := *d.want
		switch {
		case d.task != nil:
			if d.task.a.Version.Digest != a.Version.Digest {
				r.supersede(d.task) // restarted at the new digest once it has finished
			}
		case d.running != nil && d.digest == a.Version.Digest:
			state, lastErr := servingState(d.running) // warmup.go
			r.n.setStatus(nil, a, state, lastErr, d.running)
			if at := warmupCheckAt(d, now); !at.IsZero() && (next.IsZero() || at.Before(next)) {
				next = at
			}
			if at := r.reconcileCanary(ctx, d, a, now); !at.IsZero() && (next.IsZero() || at.Before(next)) {
				next = at
			}
		case d.canary.fn != nil && d.canary.digest == a.Version.Digest && d.canary.task == nil:
			r.promote(ctx, d, a) // the warm canary becomes stable: no cold start
		case now.Before(d.retryAt):
			if next.IsZero() || d.retryAt.Before(next) {
				next = d.retryAt
			}
		default:
			r.start(ctx, d, a)
		}
	}
	return next
}

func (r *reconciler) supersede(t *task) {
	if !t.superseded {
		t.superseded = true
		t.cancel()
	}
}

// start pulls and starts a's version in a task goroutine.
func (r *reconciler) start(ctx context.Context, d *deployment, a v1.Assignment) {
	tctx, cancel := context.WithCancel(ctx)
	t := &task{name: d.name, a: a, cancel: cancel}
	d.task = t
	r.inflight++
	r.n.setStatus(t, a, v1.InstancePulling, d.lastErr, nil)
	go func() {
		defer cancel()
		t.fn, t.err = r.n.startVersion(tctx, t)
		r.done <- t
	}()
}

// finish records a task's outcome.
func (r *reconciler) finish(ctx context.Context, t *task) {
	r.inflight--
	n := r.n
	d := r.deps[t.name] // kept while a task is in flight
	if t.canary {
		r.finishCanary(ctx, d, t)
		return
	}
	d.task = nil
	if t.fn != nil {
		// The data plane serves it now, whatever happened to the assignment meanwhile:
		// reconcile replaces or removes it if it is no longer wanted. A new stable
		// version ends the split: the data plane drained the canary with the old one.
		d.running, d.digest = t.fn, t.a.Version.Digest
		d.canary.fn, d.canary.digest = nil, ""
	}
	switch {
	case t.err == nil:
		n.metrics.reconciles.WithLabelValues(resultOK).Inc()
		d.failures, d.retryAt, d.lastErr = 0, time.Time{}, ""
		n.log.Info("deployment started", "deployment", t.name, "digest", t.a.Version.Digest, "version", t.fn.Version())
	case t.superseded || ctx.Err() != nil:
	default:
		n.metrics.reconciles.WithLabelValues(resultFailed).Inc()
		d.failures++
		reason := LoadReason(t.err)
		wait := backoff(d.failures, startRetryBase, startRetryCap(reason))
		d.retryAt = time.Now().Add(wait)
		d.lastErr = t.err.Error()
		if d.want != nil && d.want.Version.Digest == t.a.Version.Digest {
			n.setStatus(nil, *d.want, v1.InstanceFailed, d.lastErr, nil)
		}
		n.log.Warn("deployment failed to start; retrying", "deployment", t.name, "digest", t.a.Version.Digest,
			"reason", reason, "err", t.err, "attempt", d.failures, "retryIn", wait.Round(time.Millisecond))
	}
}

// remove stops routing to d's version at once and drains it in the background.
func (r *reconciler) remove(ctx context.Context, d *deployment) {
	n := r.n
	drain, err := n.cfg.DataPlane.Unroute(d.name)
	if err != nil {
		n.log.Warn("remove deployment", "deployment", d.name, "err", err)
	}
	d.running, d.digest = nil, ""
	d.canary.fn, d.canary.digest = nil, "" // drained with the stable version
	n.log.Info("deployment removed; draining", "deployment", d.name)
	if drain == nil {
		return
	}
	r.drains.Go(func() {
		if err := drain(context.WithoutCancel(ctx)); err != nil {
			n.log.Warn("drain removed deployment", "deployment", d.name, "err", err)
		}
	})
}

// startVersion pulls t's artifact through the cache, reads its app manifest from the
// verified config and deploys it under the deployment's name.
func (n *Node) startVersion(ctx context.Context, t *task) (*sandbox.Function, error) {
	ver := t.a.Version
	if t.canary {
		ver = t.a.Canary.Version
	}
	ref := nodecache.Ref{Repo: ver.Repository, Digest: ver.Digest}
	// failed makes err a LoadError for reason, counted unless the task was canceled. The
	// reason leads the message, so the status the control plane shows starts with it.
	failed := func(reason string, err error) error {
		if ctx.Err() != nil {
			return err
		}
		return loadFailed(n.cfg.DataPlane.Metrics, reason, err)
	}
	e, err := n.pull(ctx, ref)
	if err != nil {
		return nil, failed(pullReason(err), err)
	}
	m, err := appManifest(e)
	if err != nil {
		reason := telemetry.LoadManifest
		if le, ok := err.(*LoadError); ok {
			reason, err = le.Reason, le.Err
		}
		return nil, failed(reason, fmt.Errorf("artifact %s: %w", ref, err))
	}
	if err := n.rules.check(e.Config, ref.Digest, policy.RuntimeNode{Name: n.cfg.Name, Labels: n.cfg.Labels, Allow: n.cfg.Allow}); err != nil {
		n.metrics.runtimeDenials.Inc()
		return nil, failed(telemetry.LoadPolicy, fmt.Errorf("artifact %s: %w", ref, err))
	}
	var fn *sandbox.Function
	if t.canary {
		c := t.a.Canary
		fn, err = n.cfg.DataPlane.DeployCanary(ctx, t.name, m, e.Wasm, WeightFromPercent(c.Weight), c.Sticky)
	} else {
		n.setStatus(t, t.a, v1.InstanceStarting, "", nil)
		fn, err = n.cfg.DataPlane.DeployAs(ctx, t.name, m, e.Wasm)
	}
	if err != nil {
		// DeployAs counted it.
		if le, ok := err.(*LoadError); ok {
			return nil, &LoadError{Reason: le.Reason, Err: fmt.Errorf("start %s from %s: %w", m.ID(), ref, le.Err)}
		}
		return nil, fmt.Errorf("start %s from %s: %w", m.ID(), ref, err)
	}
	return fn, nil
}

// pull gets ref from the cache. An entry the cache verified under a trust policy that has
// changed since, or cached without its config, is verified and downloaded again.
func (n *Node) pull(ctx context.Context, ref nodecache.Ref) (*nodecache.Entry, error) {
	e, err := n.cache.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	if len(e.Config) > 0 && n.trust.accepts(e.Signer) {
		return e, nil
	}
	if err := n.cache.Remove(e.ManifestDigest); err != nil {
		return nil, fmt.Errorf("pull %s again: %w", ref, err)
	}
	if e, err = n.cache.Get(ctx, ref); err != nil {
		return nil, err
	}
	if !n.trust.accepts(e.Signer) {
		return nil, &LoadError{Reason: telemetry.LoadRejected, Err: fmt.Errorf("verify %s: signed by %q, which the trust policy does not accept", ref, e.Signer)}
	}
	return e, nil
}

// pullReason is the telemetry.Load* reason of a pull failure.
func pullReason(err error) string {
	var le *LoadError
	if errors.As(err, &le) {
		return le.Reason
	}
	switch nodecache.CodeOf(err) {
	case nodecache.CodeUnavailable:
		return telemetry.LoadUnavailable
	case nodecache.CodeRejected:
		return telemetry.LoadRejected
	}
	return telemetry.LoadPull
}

// setStatus records a deployment's status and, when it changed, has a heartbeat report
// it soon. A task (non-nil t) only updates the status its own start set: one that was
// superseded or removed meanwhile changes nothing.
func (n *Node) setStatus(t *task, a v1.Assignment, state, lastErr string, fn *sandbox.Function) {
	n.mu.Lock()
	old := n.statuses[a.Deployment]
	if t != nil && state != v1.InstancePulling && (old == nil || old.task != t) {
		n.mu.Unlock()
		return
	}
	changed := old == nil || old.State != state || old.Digest != a.Version.Digest || old.Generation != a.Generation ||
		old.LastError != lastErr || old.fn != fn || (t != nil && old.task != t)
	if changed {
		n.statuses[a.Deployment] = &status{
			InstanceStatus: v1.InstanceStatus{
				Deployment: a.Deployment,
				Node:       n.cfg.Name,
				Generation: a.Generation,
				Digest:     a.Version.Digest,
				Version:    a.Version.Version,
				State:      state,
				LastError:  lastErr,
				Updated:    time.Now().UTC(),
			},
			fn:   fn,
			task: t,
		}
		if old != nil { // the canary's status is its own (setCanaryStatus)
			n.statuses[a.Deployment].Canary, n.statuses[a.Deployment].canaryFn = old.Canary, old.canaryFn
		}
		switch ns := n.statuses[a.Deployment]; {
		case state == v1.InstanceFailed:
			ns.failedDigest = a.Version.Digest
		case state != v1.InstanceReady && old != nil && old.Digest == a.Version.Digest:
			ns.failedDigest = old.failedDigest // a retry: still failed until it serves
		}
	}
	counts := n.stateCountsLocked()
	n.mu.Unlock()
	if changed {
		n.setStateGauge(counts)
		n.signal(n.statusChanged)
	}
}

func (n *Node) clearStatus(name string) {
	n.mu.Lock()
	_, ok := n.statuses[name]
	delete(n.statuses, name)
	counts := n.stateCountsLocked()
	n.mu.Unlock()
	if ok {
		n.setStateGauge(counts)
		n.signal(n.statusChanged)
	}
}

func (n *Node) stateCountsLocked() map[string]int {
	counts := map[string]int{}
	for _, s := range n.statuses {
		counts[s.State]++
	}
	return counts
}

func (n *Node) setStateGauge(counts map[string]int) {
	for _, s := range instanceStates {
		n.metrics.deployments.WithLabelValues(s).Set(float64(counts[s]))
	}
}

// keepPins is the set of manifest digests to pin for want: each deployment's digest
// and those of its keep-1 previous revisions (the assignment's Keep, newest first), so
// a rollback to them starts from the cache.
func keepPins(want map[string]v1.Assignment, keep int) map[string]bool {
	pins := map[string]bool{}
	for _, a := range want {
		pins[a.Version.Digest] = true
		for _, md := range a.Keep[:min(len(a.Keep), max(keep-1, 0))] {
			if validDigest(md) { // from the control plane: pin nothing malformed
				pins[md] = true
			}
		}
	}
	return pins
}

// validDigest reports whether md is a sha256 manifest digest.
func validDigest(md string) bool {
	hex, ok := strings.CutPrefix(md, "sha256:")
	if !ok || len(hex) != 64 {
		return false
	}
	for _, c := range hex {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
