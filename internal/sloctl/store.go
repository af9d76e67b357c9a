package sloctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/engine"
	"fermion.dev/fermion/internal/slo"
)

// The buckets this package owns.
const (
	// BucketSpecs holds one record per SLO under its name; the history keeps its last
	// versions (a delete marker counts as one), as the policies bucket does.
	BucketSpecs = "fermion_slos"
	// BucketState holds the engine's alert state (key state) and the expected marks
	// (key marks).
	BucketState = "fermion_slo_state"

	specHistory = 10
	keyState    = "state"
	keyMarks    = "marks"
)

// Buckets are the KV buckets the controller uses.
type Buckets struct {
	Specs, State jetstream.KeyValue
}

// OpenBuckets opens (or creates) the buckets with replicas copies each.
func OpenBuckets(ctx context.Context, js jetstream.JetStream, replicas int) (Buckets, error) {
	var b Buckets
	var err error
	if b.Specs, err = engine.OpenKeyValue(ctx, js, jetstream.KeyValueConfig{Bucket: BucketSpecs, History: specHistory, Replicas: replicas, Storage: jetstream.FileStorage}); err != nil {
		return Buckets{}, fmt.Errorf("open SLO buckets: %w", err)
	}
	if b.State, err = engine.OpenKeyValue(ctx, js, jetstream.KeyValueConfig{Bucket: BucketState, History: 1, Replicas: replicas, Storage: jetstream.FileStorage}); err != nil {
		return Buckets{}, fmt.Errorf("open SLO buckets: %w", err)
	}
	return b, nil
}

// record is what the specs bucket stores per SLO: the API's view plus the decoded spec.
type record struct {
	v1.SLO
	Spec slo.Spec `json:"spec"`
}

// specCache is the specs bucket as this replica last saw it, kept current by a watch.
//
// Lock order: mu is a leaf.
type specCache struct {
	mu      sync.Mutex
	recs    map[string]record
	valid   []slo.Spec // the records' specs that validate, by name; nil: rebuild
	rev     uint64
	changed chan struct{} // closed and replaced on every change
	ready   chan struct{}
}

func newSpecCache() *specCache {
	return &specCache{recs: map[string]record{}, changed: make(chan struct{}), ready: make(chan struct{})}
}

// run keeps the cache current until ctx ends, restarting the watch when it breaks.
func (c *specCache) run(ctx context.Context, kv jetstream.KeyValue, logf func(string, ...any)) {
	for ctx.Err() == nil {
		if err := c.watch(ctx, kv); err != nil && ctx.Err() == nil {
			logf("watch SLO specs; restarting", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (c *specCache) watch(ctx context.Context, kv jetstream.KeyValue) error {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch %s: %w", BucketSpecs, err)
	}
	defer w.Stop()
	fresh := map[string]record{}
	var freshRev uint64 // the newest revision among the initial values
	initial := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watch closed")
			}
			if e == nil { // the initial values are in
				c.mu.Lock()
				c.recs = fresh
				// The cache has seen every revision up to the newest stored one: a
				// write that changes nothing (ApplySpecs of an unchanged spec after a
				// restart) waits for its record's revision, which only the initial
				// values carry.
				c.bumpLocked(freshRev)
				c.mu.Unlock()
				if initial {
					select {
					case <-c.ready:
					default:
						close(c.ready)
					}
				}
				initial = false
				continue
			}
			var r record
			del := e.Operation() != jetstream.KeyValuePut
			if !del {
				if err := json.Unmarshal(e.Value(), &r); err != nil {
					del = true // not ours to evaluate; shown as absent
				} else {
					r.Revision = e.Revision()
				}
			}
			if initial {
				freshRev = max(freshRev, e.Revision())
				if del {
					delete(fresh, e.Key())
				} else {
					fresh[e.Key()] = r
				}
				continue
			}
			c.mu.Lock()
			if del {
				delete(c.recs, e.Key())
			} else {
				c.recs[e.Key()] = r
			}
			c.bumpLocked(e.Revision())
			c.mu.Unlock()
		}
	}
}

func (c *specCache) bumpLocked(rev uint64) {
	c.rev = max(c.rev, rev)
	c.valid = nil
	close(c.changed)
	c.changed = make(chan struct{})
}

// waitRev waits (bounded by ctx) until the cache has seen revision rev.
func (c *specCache) waitRev(ctx context.Context, rev uint64) {
	for {
		c.mu.Lock()
		done, ch := c.rev >= rev, c.changed
		c.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

// waitGone waits (bounded by ctx) until the cache holds no record name.
func (c *specCache) waitGone(ctx context.Context, name string) {
	for {
		c.mu.Lock()
		_, ok := c.recs[name]
		ch := c.changed
		c.mu.Unlock()
		if !ok {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

func (c *specCache) get(name string) (record, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.recs[name]
	return r, ok
}

// specs returns the specs to evaluate, sorted by name: built once per change of the
// bucket, shared by every tick until the next (callers must not modify it). A stored
// spec that does not validate here (written by a newer replica, or by hand) is logged
// and left out rather than stopping the rest.
func (c *specCache) specs(logf func(string, ...any)) []slo.Spec {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.valid != nil {
		return c.valid
	}
	c.valid = make([]slo.Spec, 0, len(c.recs))
	for _, name := range slices.Sorted(maps.Keys(c.recs)) {
		r := c.recs[name]
		if err := r.Spec.Validate(); err != nil {
			logf("stored SLO does not validate here; it is not evaluated", "slo", name, "err", err)
			continue
		}
		c.valid = append(c.valid, r.Spec)
	}
	return c.valid
}

// all returns the records sorted by name.
func (c *specCache) all() []record {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]record, 0, len(c.recs))
	for _, name := range slices.Sorted(maps.Keys(c.recs)) {
		out = append(out, c.recs[name])
	}
	return out
}

// App is a deployment as the SLO warnings see it.
type App struct {
	Name   string
	Labels map[string]string
}

// matches reports whether the spec covers the app: by name, or by every selector pair.
func matches(sp *slo.Spec, a App) bool {
	if sp.App != "" {
		return sp.App == a.Name
	}
	for k, v := range sp.Selector {
		if a.Labels[k] != v {
			return false
		}
	}
	return true
}

// warnings are what is valid but suspicious about a spec now.
func warnings(sp *slo.Spec, apps []App) []string {
	for _, a := range apps {
		if matches(sp, a) {
			return nil
		}
	}
	if sp.App != "" {
		return []string{fmt.Sprintf("app %s is not deployed: the SLO has nothing to evaluate until it is", sp.App)}
	}
	pairs := make([]string, 0, len(sp.Selector))
	for _, k := range slices.Sorted(maps.Keys(sp.Selector)) {
		pairs = append(pairs, k+"="+sp.Selector[k])
	}
	return []string{fmt.Sprintf("selector %s matches no deployment: the SLO has nothing to evaluate until one carries those labels", strings.Join(pairs, ","))}
}

// view fills a record's API fields from its spec.
func view(sp *slo.Spec) v1.SLO {
	out := v1.SLO{Name: sp.Name, App: sp.App, Selector: sp.Selector, SLI: sp.SLI.String(),
		Objective: slo.Ratio{Num: sp.Objective.Num * 100, Den: sp.Objective.Den}.String(),
		Window:    slo.FormatWindow(sp.Window), Scope: string(sp.Scope.Per), Preset: sp.Preset, Runbook: sp.Runbook}
	return out
}

// badSource is the 400 of an SLO file with problems: every one positioned, so the user
// fixes them in one edit.
func badSource(err error) *v1.Error {
	return &v1.Error{Code: v1.CodeBadRequest, Field: "source", Message: "the SLO file is not valid; nothing was applied:\n" + err.Error()}
}

// Apply decodes an SLO file and stores every SLO in it, each as a new version when it
// changed. With only set, the file must hold exactly that SLO (PUT /v1/slos/{name}).
// Nothing is written when any SLO in the file has a problem. owner is the deployment
// that declares the SLOs in its manifest, or "". It returns the stored SLOs, with
// warnings, and whether any was created.
func (c *Controller) Apply(ctx context.Context, file, source, only, by string) ([]v1.SLO, bool, *v1.Error) {
	if strings.TrimSpace(source) == "" {
		return nil, false, &v1.Error{Code: v1.CodeBadRequest, Field: "source", Message: "the SLO file is empty; write one SLO per YAML document (see docs/slo.md)"}
	}
	if file == "" {
		file = "slos.yaml"
		if only != "" {
			file = only + ".yaml"
		}
	}
	if len(file) > 1024 || strings.ContainsAny(file, "\n\r") {
		return nil, false, &v1.Error{Code: v1.CodeBadRequest, Field: "file", Message: "a file name of at most 1024 bytes on one line"}
	}
	specs, err := slo.Decode(file, []byte(source))
	if err != nil {
		return nil, false, badSource(err)
	}
	if only != "" && (len(specs) != 1 || specs[0].Name != only) {
		names := make([]string, len(specs))
		for i, s := range specs {
			names[i] = s.Name
		}
		return nil, false, &v1.Error{Code: v1.CodeBadRequest, Field: "source", Message: fmt.Sprintf("%s holds SLOs %s but the request is for SLO %s; apply the file with PUT /v1/slos (fermion slo apply -f) or send only that SLO", file, strings.Join(names, ", "), only)}
	}
	return c.ApplySpecs(ctx, specs, "", by)
}

// ApplySpecs stores decoded specs (from a file, or a manifest's [[slo]] tables with
// owner set to the deployment). An SLO owned by another deployment is refused before
// anything is written.
func (c *Controller) ApplySpecs(ctx context.Context, specs []slo.Spec, owner, by string) ([]v1.SLO, bool, *v1.Error) {
	for i := range specs {
		if err := specs[i].Validate(); err != nil {
			return nil, false, &v1.Error{Code: v1.CodeBadRequest, Field: "source", Message: err.Error()}
		}
		if cur, ok := c.specs.get(specs[i].Name); ok && cur.Owner != owner {
			how := "it was applied on its own; delete it (fermion slo delete " + cur.Name + ") or rename this one"
			if cur.Owner != "" {
				how = "deployment " + cur.Owner + " declares it in its manifest's [[slo]]; change it there or rename this one"
			}
			return nil, false, &v1.Error{Code: v1.CodeConflict, Field: "name", Message: fmt.Sprintf("SLO %s exists and %s", cur.Name, how)}
		}
	}
	apps := c.apps()
	now := c.cfg.Now().UTC()
	out := make([]v1.SLO, 0, len(specs))
	created := false
	var last uint64
	for i := range specs {
		sp := specs[i]
		enc, err := json.Marshal(sp)
		if err != nil {
			return nil, false, &v1.Error{Code: v1.CodeInternal, Message: "encode SLO " + sp.Name + ": " + err.Error()}
		}
		rec, rev, made, err := c.put(ctx, sp, string(enc), owner, by, now)
		if err != nil {
			if errors.Is(err, errOwned) {
				return nil, false, &v1.Error{Code: v1.CodeConflict, Field: "name", Message: err.Error()}
			}
			return nil, false, &v1.Error{Code: v1.CodeUnavailable, Message: "write SLO " + sp.Name + ": " + err.Error()}
		}
		created = created || made
		last = max(last, rev)
		r := rec.SLO
		r.Revision = rev
		r.Warnings = warnings(&sp, apps)
		out = append(out, r)
		if made || rec.Applied.Equal(now) {
			c.event(ctx, v1.Event{Type: v1.EventSLOApplied, Deployment: sp.App,
				Message: fmt.Sprintf("SLO %s version %d (%s %s%% over %s, scope %s) applied by %s", sp.Name, rec.Version, r.SLI, r.Objective, r.Window, r.Scope, by)})
		}
	}
	c.specs.waitRev(ctx, last)
	return out, created, nil
}

var errOwned = errors.New("owned by another deployment")

// put writes one spec with compare-and-swap, as a new version when it changed.
func (c *Controller) put(ctx context.Context, sp slo.Spec, enc, owner, by string, now time.Time) (record, uint64, bool, error) {
	kv := c.cfg.Buckets.Specs
	for attempt := 0; ; attempt++ {
		var cur *record
		var rev uint64
		e, err := kv.Get(ctx, sp.Name)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return record{}, 0, false, fmt.Errorf("read: %w", err)
		default:
			cur = new(record)
			if err := json.Unmarshal(e.Value(), cur); err != nil {
				return record{}, 0, false, fmt.Errorf("read: %w", err)
			}
			rev = e.Revision()
		}
		if cur != nil && cur.Owner != owner {
			return record{}, 0, false, fmt.Errorf("SLO %s: %w (%q)", sp.Name, errOwned, cur.Owner)
		}
		if cur != nil && cur.Source == enc {
			return *cur, rev, false, nil
		}
		version := 1
		if cur != nil {
			version = cur.Version + 1
		} else if version, err = lastVersion(ctx, kv, sp.Name); err != nil {
			return record{}, 0, false, err
		} else {
			version++
		}
		next := record{SLO: view(&sp), Spec: sp}
		next.Version, next.Source, next.Applied, next.AppliedBy, next.Owner = version, enc, now, by, owner
		b, _ := json.Marshal(next)
		var newRev uint64
		if cur == nil {
			newRev, err = kv.Create(ctx, sp.Name, b)
		} else {
			newRev, err = kv.Update(ctx, sp.Name, b, rev)
		}
		if err == nil {
			return next, newRev, cur == nil, nil
		}
		if !isCASConflict(err) || attempt >= 20 {
			return record{}, 0, false, fmt.Errorf("write: %w", err)
		}
	}
}

// lastVersion is the highest version the history holds for a deleted SLO, so a
// re-created one continues its numbering (0 if none).
func lastVersion(ctx context.Context, kv jetstream.KeyValue, name string) (int, error) {
	hist, err := kv.History(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the history of SLO %s: %w", name, err)
	}
	last := 0
	for _, e := range hist {
		var r record
		if e.Operation() == jetstream.KeyValuePut && json.Unmarshal(e.Value(), &r) == nil {
			last = max(last, r.Version)
		}
	}
	return last, nil
}

// isCASConflict reports whether a KV write lost a compare-and-swap (a replicated
// stream reports it with another code than a single server's).
func isCASConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// List returns every SLO, with its warnings now.
func (c *Controller) List() v1.SLOList {
	apps := c.apps()
	out := v1.SLOList{SLOs: []v1.SLO{}}
	for _, r := range c.specs.all() {
		s := r.SLO
		s.Warnings = warnings(&r.Spec, apps)
		out.SLOs = append(out.SLOs, s)
	}
	return out
}

// Get returns one SLO.
func (c *Controller) Get(name string) (v1.SLO, *v1.Error) {
	r, ok := c.specs.get(name)
	if !ok {
		return v1.SLO{}, &v1.Error{Code: v1.CodeNotFound, Message: "no SLO " + name + "; fermion slo list shows them"}
	}
	s := r.SLO
	s.Warnings = warnings(&r.Spec, c.apps())
	return s, nil
}

// Delete removes an SLO; its alerts resolve at the next tick. owner must be the
// SLO's owner ("" for one applied on its own).
func (c *Controller) Delete(ctx context.Context, name, owner, by string) *v1.Error {
	kv := c.cfg.Buckets.Specs
	e, err := kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return &v1.Error{Code: v1.CodeNotFound, Message: "no SLO " + name}
	}
	if err != nil {
		return &v1.Error{Code: v1.CodeUnavailable, Message: "read SLO " + name + ": " + err.Error()}
	}
	var r record
	json.Unmarshal(e.Value(), &r)
	if r.Owner != owner {
		return &v1.Error{Code: v1.CodeConflict, Field: "name", Message: fmt.Sprintf("SLO %s is declared by deployment %s's manifest; remove its [[slo]] there, or delete the deployment", name, r.Owner)}
	}
	if err := kv.Delete(ctx, name, jetstream.LastRevision(e.Revision())); err != nil {
		if isCASConflict(err) {
			return &v1.Error{Code: v1.CodeConflict, Message: "SLO " + name + " changed while it was being deleted; check it and delete again"}
		}
		return &v1.Error{Code: v1.CodeUnavailable, Message: "delete SLO " + name + ": " + err.Error()}
	}
	c.specs.waitGone(ctx, name)
	c.event(ctx, v1.Event{Type: v1.EventSLODeleted, Deployment: r.App, Message: fmt.Sprintf("SLO %s (version %d) deleted by %s", name, r.Version, by)})
	return nil
}

// DeleteOwned deletes every SLO owner declares (its deployment is gone).
func (c *Controller) DeleteOwned(ctx context.Context, owner, by string) error {
	var errs []error
	for _, r := range c.specs.all() {
		if r.Owner == owner {
			if e := c.Delete(ctx, r.Name, owner, by); e != nil && e.Code != v1.CodeNotFound {
				errs = append(errs, e)
			}
		}
	}
	return errors.Join(errs...)
}
