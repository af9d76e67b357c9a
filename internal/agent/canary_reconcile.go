package agent

import (
	"context"
	"errors"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/sandbox"
)

// The reconciler drives a deployment's canary once its stable version runs at the
// assigned digest: it starts the assigned canary (pulled, verified and prewarmed
// before it takes weight), follows weight and stickiness changes, removes the canary
// (drained) when the assignment drops it, and promotes it, without a cold start, when
// the assignment makes its digest the stable version. A canary that fails to start
// retries with the same backoff as a version, and the stable version keeps serving.

// canaryRun is a deployment's canary as the reconcile goroutine knows it.
type canaryRun struct {
	fn       *sandbox.Function // running as the canary, or nil
	digest   string            // fn's manifest digest
	task     *task             // its pull-and-start in flight
	failures int
	retryAt  time.Time
	lastErr  string
}

func canaryDigest(a *v1.Assignment) string {
	if a == nil || a.Canary == nil {
		return ""
	}
	return a.Canary.Version.Digest
}

// validateCanaries checks every canary of set against its stable version.
func validateCanaries(set *v1.AssignmentSet) error {
	var errs []error
	for i := range set.Assignments {
		if err := set.Assignments[i].ValidateCanary(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// reconcileCanary makes d's canary what a wants, d's stable version running at a's
// digest, and returns when a retry is due (zero: none).
func (r *reconciler) reconcileCanary(ctx context.Context, d *deployment, a v1.Assignment, now time.Time) time.Time {
	c, want := &d.canary, a.Canary
	switch {
	case c.task != nil:
		if want == nil || c.task.a.Canary.Version.Digest != want.Version.Digest {
			r.supersede(c.task)
		}
	case want == nil:
		if c.fn != nil {
			r.removeCanary(ctx, d)
		}
		r.n.setCanaryStatus(d.name, nil, nil)
	case c.fn != nil && c.digest == want.Version.Digest:
		if err := r.n.cfg.DataPlane.SetCanaryWeight(d.name, WeightFromPercent(want.Weight), want.Sticky); err != nil {
			r.n.log.Warn("set canary weight", "deployment", d.name, "err", err)
		}
		state, lastErr := servingState(c.fn) // warmup.go
		r.n.setCanaryStatus(d.name, canaryStatus(want, state, lastErr), c.fn)
	case now.Before(c.retryAt):
		return c.retryAt
	default:
		tctx, cancel := context.WithCancel(ctx)
		t := &task{name: d.name, a: a, canary: true, cancel: cancel}
		c.task = t
		r.inflight++
		r.n.setCanaryStatus(d.name, canaryStatus(want, v1.InstancePulling, c.lastErr), nil)
		go func() {
			defer cancel()
			t.fn, t.err = r.n.startVersion(tctx, t)
			r.done <- t
		}()
	}
	return time.Time{}
}

func canaryStatus(c *v1.Canary, state, lastErr string) *v1.CanaryStatus {
	return &v1.CanaryStatus{Digest: c.Version.Digest, Version: c.Version.Version, State: state, Weight: c.Weight, LastError: lastErr}
}

// finishCanary records a canary task's outcome.
func (r *reconciler) finishCanary(ctx context.Context, d *deployment, t *task) {
	n, c := r.n, &d.canary
	c.task = nil
	if t.fn != nil {
		c.fn, c.digest = t.fn, t.a.Canary.Version.Digest
	}
	switch {
	case t.err == nil:
		n.metrics.reconciles.WithLabelValues(resultOK).Inc()
		c.failures, c.retryAt, c.lastErr = 0, time.Time{}, ""
		n.log.Info("canary started", "deployment", t.name, "digest", c.digest, "version", t.fn.Version(), "weight", t.a.Canary.Weight)
	case t.superseded || ctx.Err() != nil:
	default:
		n.metrics.reconciles.WithLabelValues(resultFailed).Inc()
		c.failures++
		reason := LoadReason(t.err)
		wait := backoff(c.failures, startRetryBase, startRetryCap(reason))
		c.retryAt = time.Now().Add(wait)
		c.lastErr = t.err.Error()
		if canaryDigest(d.want) == t.a.Canary.Version.Digest {
			n.setCanaryStatus(d.name, canaryStatus(d.want.Canary, v1.InstanceFailed, c.lastErr), nil)
		}
		n.log.Warn("canary failed to start; the stable version keeps serving; retrying", "deployment", t.name,
			"digest", t.a.Canary.Version.Digest, "reason", reason, "err", t.err, "attempt", c.failures, "retryIn", wait.Round(time.Millisecond))
	}
}

// removeCanary stops sending requests to d's canary and drains it in the background.
func (r *reconciler) removeCanary(ctx context.Context, d *deployment) {
	n := r.n
	drain, err := n.cfg.DataPlane.RemoveCanary(d.name)
	if err != nil {
		n.log.Warn("remove canary", "deployment", d.name, "err", err)
		return
	}
	n.log.Info("canary removed; draining", "deployment", d.name, "digest", d.canary.digest)
	d.canary.fn, d.canary.digest = nil, ""
	if drain != nil {
		r.drains.Go(func() {
			if err := drain(context.WithoutCancel(ctx)); err != nil {
				n.log.Warn("drain removed canary", "deployment", d.name, "err", err)
			}
		})
	}
}

// promote makes d's running canary its stable version, as a wants.
func (r *reconciler) promote(ctx context.Context, d *deployment, a v1.Assignment) {
	n := r.n
	drain, err := n.cfg.DataPlane.PromoteCanary(d.name)
	if err != nil {
		n.log.Warn("promote canary", "deployment", d.name, "err", err)
		d.canary.fn, d.canary.digest = nil, "" // start the version the usual way
		return
	}
	d.running, d.digest = d.canary.fn, d.canary.digest
	d.canary.fn, d.canary.digest = nil, ""
	d.failures, d.retryAt, d.lastErr = 0, time.Time{}, ""
	n.log.Info("canary promoted", "deployment", d.name, "digest", d.digest, "version", d.running.Version())
	n.setStatus(nil, a, v1.InstanceReady, "", d.running)
	n.setCanaryStatus(d.name, nil, nil)
	r.drains.Go(func() {
		if err := drain(context.WithoutCancel(ctx)); err != nil {
			n.log.Warn("drain the version the canary replaced", "deployment", d.name, "err", err)
		}
	})
	// A canary assigned beside the promoted version starts on the next pass.
	r.reconcileCanary(ctx, d, a, time.Now())
}

// setCanaryStatus records the status of a deployment's canary (nil: none) and, when it
// changed, has a heartbeat report it soon.
func (n *Node) setCanaryStatus(name string, cs *v1.CanaryStatus, fn *sandbox.Function) {
	n.mu.Lock()
	old := n.statuses[name]
	if old == nil {
		n.mu.Unlock()
		return
	}
	same := (old.Canary == nil) == (cs == nil) && old.canaryFn == fn
	if same && cs != nil {
		o := *old.Canary
		o.Instances = 0
		same = o == *cs
	}
	if !same {
		next := *old
		next.Canary, next.canaryFn = cs, fn
		next.Updated = time.Now().UTC()
		n.statuses[name] = &next
	}
	n.mu.Unlock()
	if !same {
		n.signal(n.statusChanged)
	}
}
