package sloctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/notify"
	"fermion.dev/fermion/internal/slo"
)

// DefaultInterval is how often the leader evaluates the SLOs unless told otherwise.
const DefaultInterval = 10 * time.Second

// Config configures a Controller. Buckets, Source and Lead are required.
type Config struct {
	Buckets Buckets
	// Source answers the SLIs: the control plane's SLI store. It must be safe for
	// concurrent use (the API's status views read it while the engine evaluates).
	Source slo.Source
	// Lead reports the leader lease's term (its revision, which only grows) and
	// whether this replica may act now. The engine evaluates only while acting.
	Lead func() (term uint64, acting bool)
	// Notifier, when set, gets the alerts; the controller runs it.
	Notifier *notify.Notifier
	// Event records an event (best effort); nil: none.
	Event func(ctx context.Context, e v1.Event)
	// Apps lists the deployments, for the warnings of specs that match none; nil: none.
	Apps func() []App
	// Interval between evaluations (default DefaultInterval).
	Interval time.Duration
	// Now is the clock (default time.Now); tests pass a fake one.
	Now func() time.Time
	// GeneratorURL is sent with notifications (the API's address, say).
	GeneratorURL string
	Server       string
	Logger       *slog.Logger
	Registerer   prometheus.Registerer
}

// Controller stores SLO specs, evaluates them on the leader and serves their views.
type Controller struct {
	cfg   Config
	specs *specCache
	m     *metrics

	// tickMu serialises ticks (Run's loop and tests calling Tick); it guards term.
	tickMu sync.Mutex
	// term is the leader term of this replica's last successful tick; a tick in a new
	// term re-sends what is firing. 0: not leading.
	term uint64
}

// New returns a controller; Run starts its watch and its engine loop.
func New(cfg Config) (*Controller, error) {
	if cfg.Buckets.Specs == nil || cfg.Buckets.State == nil || cfg.Source == nil || cfg.Lead == nil {
		return nil, errors.New("new SLO controller: buckets, an SLI source and a leadership func are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("new SLO controller: %w", err)
	}
	return &Controller{cfg: cfg, specs: newSpecCache(), m: m}, nil
}

// Run keeps the spec cache current, runs the notifier and evaluates every Interval
// while this replica acts as leader, until ctx ends. It returns once everything it
// started has stopped.
func (c *Controller) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() { c.specs.run(ctx, c.cfg.Buckets.Specs, c.cfg.Logger.Warn) })
	if n := c.cfg.Notifier; n != nil {
		wg.Go(func() { n.Run(ctx) })
	}
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		tctx, tcancel := context.WithTimeout(ctx, max(c.cfg.Interval, 5*time.Second))
		if _, err := c.Tick(tctx); err != nil && !errors.Is(err, ErrNotActing) {
			c.cfg.Logger.Warn("evaluate SLOs", "err", err)
		}
		tcancel()
	}
}

// WaitReady waits until the spec cache holds the bucket's initial values.
func (c *Controller) WaitReady(ctx context.Context) error {
	select {
	case <-c.specs.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("load SLO specs: %w", ctx.Err())
	}
}

// ErrNotActing means this replica is not the acting leader: it does not evaluate.
var ErrNotActing = errors.New("this replica is not the acting leader")

// ErrDeposed means a newer leader has written the alert state.
var ErrDeposed = errors.New("deposed: a newer leader wrote the SLO alert state")

// stateRecord is the stored alert state. Alerts is a list (the state's map is keyed
// by a struct, which JSON cannot key by).
type stateRecord struct {
	Term      uint64      `json:"term"`
	Server    string      `json:"server"`
	Evaluated time.Time   `json:"evaluated"`
	Alerts    []slo.Alert `json:"alerts"`
}

type marksRecord struct {
	Marks []slo.Mark `json:"marks"`
}

func (r *stateRecord) state() slo.State {
	st := slo.State{Alerts: make(map[slo.AlertID]slo.Alert, len(r.Alerts))}
	for _, a := range r.Alerts {
		st.Alerts[a.AlertID] = a
	}
	return st
}

// readState reads the stored state and its revision (0: none yet).
func (c *Controller) readState(ctx context.Context) (stateRecord, uint64, error) {
	var r stateRecord
	e, err := c.cfg.Buckets.State.Get(ctx, keyState)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return r, 0, nil
	}
	if err != nil {
		return r, 0, fmt.Errorf("read SLO state: %w", err)
	}
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return r, 0, fmt.Errorf("read SLO state: %w", err)
	}
	return r, e.Revision(), nil
}

func (c *Controller) readMarks(ctx context.Context) (marksRecord, uint64, error) {
	var r marksRecord
	e, err := c.cfg.Buckets.State.Get(ctx, keyMarks)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return r, 0, nil
	}
	if err != nil {
		return r, 0, fmt.Errorf("read expected marks: %w", err)
	}
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return r, 0, fmt.Errorf("read expected marks: %w", err)
	}
	return r, e.Revision(), nil
}

// Tick evaluates every SLO once, if this replica acts as leader: read the state, run
// slo.Evaluate, write the state (compare-and-swap, refusing to overwrite a newer term),
// then record events, metrics and notifications. It returns the transitions.
func (c *Controller) Tick(ctx context.Context) ([]slo.Transition, error) {
	c.tickMu.Lock()
	defer c.tickMu.Unlock()
	term, acting := c.cfg.Lead()
	if !acting || term == 0 {
		c.stepDownLocked()
		return nil, ErrNotActing
	}
	start := time.Now()
	now := c.cfg.Now()
	rec, rev, err := c.readState(ctx)
	if err != nil {
		return nil, err
	}
	if rec.Term > term {
		c.stepDownLocked()
		return nil, fmt.Errorf("evaluate SLOs: %w (term %d by %s, ours %d)", ErrDeposed, rec.Term, rec.Server, term)
	}
	marks, _, err := c.readMarks(ctx)
	if err != nil {
		return nil, err
	}
	st := rec.state()
	st.Marks = marks.Marks
	specs := c.specs.specs(c.cfg.Logger.Error)
	next, trans := slo.Evaluate(st, specs, c.cfg.Source, now)
	out := stateRecord{Term: term, Server: c.cfg.Server, Evaluated: now.UTC(), Alerts: sortedAlerts(next)}
	data, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode SLO state: %w", err)
	}
	// Persist before telling anyone: a successor reads this and neither pages again
	// for what fired here nor forgets it.
	if rev == 0 {
		_, err = c.cfg.Buckets.State.Create(ctx, keyState, data)
	} else {
		_, err = c.cfg.Buckets.State.Update(ctx, keyState, data, rev)
	}
	if err != nil {
		if isCASConflict(err) {
			// Someone wrote between our read and write: a newer leader, or a paused
			// one of ours. The next tick reads again and decides.
			return nil, fmt.Errorf("write SLO state: %w", err)
		}
		return nil, fmt.Errorf("write SLO state: %w", err)
	}
	c.m.evaluation.Observe(time.Since(start).Seconds())
	if c.term != term {
		// A new term: re-send what is firing and recently resolved, as this leader
		// knows it. Alertmanager deduplicates by labels, so a page the predecessor
		// sent is not a second page; a webhook ignores resolutions it never saw.
		c.term = term
		c.resendLocked(next, trans)
		c.cfg.Logger.Info("evaluating SLOs as leader", "term", term, "slos", len(specs), "alerts", len(next.Alerts))
	}
	for _, t := range trans {
		c.announce(ctx, t)
	}
	c.m.observe(next, specs, c.cfg.Source, now)
	return trans, nil
}

// stepDownLocked stops re-sending this replica's firing alerts: the next leader owns
// them and re-sends them itself.
func (c *Controller) stepDownLocked() {
	if c.term == 0 {
		return
	}
	c.term = 0
	if c.cfg.Notifier != nil {
		c.cfg.Notifier.Forget()
	}
}

// resendLocked queues every firing (notifying) and resolved alert of st that trans
// does not already carry.
func (c *Controller) resendLocked(st slo.State, trans []slo.Transition) {
	if c.cfg.Notifier == nil {
		return
	}
	inTrans := map[slo.AlertID]bool{}
	for _, t := range trans {
		inTrans[t.Alert.AlertID] = true
	}
	var out []notify.Alert
	for _, a := range sortedAlerts(st) {
		if inTrans[a.AlertID] || (a.Phase != slo.Firing && a.Phase != slo.Resolved) {
			continue
		}
		if na, ok := notify.FromSLO(slo.Transition{Alert: a, To: a.Phase, Incident: a.App}, c.cfg.GeneratorURL); ok {
			out = append(out, na)
		}
	}
	if len(out) > 0 {
		c.cfg.Notifier.Send(out...)
	}
}

// announce turns one transition into an event, a log line and a notification.
func (c *Controller) announce(ctx context.Context, t slo.Transition) {
	a := t.Alert
	c.m.transitions.WithLabelValues(string(a.Severity), string(t.To)).Inc()
	msg := fmt.Sprintf("%s %s: %s", a.Severity, t.To, a.Summary())
	if a.Expected {
		msg += " (expected: the version is marked expected)"
	}
	if a.Runbook != "" {
		msg += "; runbook " + a.Runbook
	}
	c.event(ctx, v1.Event{Type: v1.EventAlert, Deployment: a.App, Message: msg})
	if c.cfg.Notifier != nil {
		if na, ok := notify.FromSLO(t, c.cfg.GeneratorURL); ok {
			c.cfg.Notifier.Send(na)
		}
	}
}

func (c *Controller) event(ctx context.Context, e v1.Event) {
	if c.cfg.Event != nil {
		c.cfg.Event(ctx, e)
	}
}

func (c *Controller) apps() []App {
	if c.cfg.Apps == nil {
		return nil
	}
	return c.cfg.Apps()
}

func sortedAlerts(st slo.State) []slo.Alert {
	ids := slices.SortedFunc(maps.Keys(st.Alerts), func(a, b slo.AlertID) int { return strings.Compare(a.String(), b.String()) })
	out := make([]slo.Alert, len(ids))
	for i, id := range ids {
		out[i] = st.Alerts[id]
	}
	return out
}

// MarkExpected marks app's version expected until until (a zero until removes the
// mark): its pages still move through their lifecycle but do not notify. The rollout
// controller calls it for the version it judges; POST /v1/alerts/expected is the same
// for operators. Any replica may write it; the leader reads it every tick.
func (c *Controller) MarkExpected(ctx context.Context, app, version string, until time.Time) error {
	now := c.cfg.Now()
	for attempt := 0; ; attempt++ {
		cur, rev, err := c.readMarks(ctx)
		if err != nil {
			return err
		}
		st := slo.State{Marks: cur.Marks}
		if until.IsZero() {
			st = st.Unmark(app, version)
		} else {
			st = st.MarkExpected(app, version, until)
		}
		// Expired marks are worth nothing; keep the record small.
		marks := slices.DeleteFunc(st.Marks, func(m slo.Mark) bool { return !now.Before(m.Until) })
		data, _ := json.Marshal(marksRecord{Marks: marks})
		if rev == 0 {
			_, err = c.cfg.Buckets.State.Create(ctx, keyMarks, data)
		} else {
			_, err = c.cfg.Buckets.State.Update(ctx, keyMarks, data, rev)
		}
		if err == nil {
			return nil
		}
		if !isCASConflict(err) || attempt >= 20 {
			return fmt.Errorf("write expected marks: %w", err)
		}
	}
}
