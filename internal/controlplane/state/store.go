package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/prometheus/client_golang/prometheus"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/engine"
)

// The KV buckets and who writes them (docs/control-plane.md has the full table).
const (
	BucketDeployments = "fermion_deployments" // <deployment>: API only (spec, CAS)
	BucketNodes       = "fermion_nodes"       // <node>: register handler, lifecycle controller, drain API (CAS)
	BucketLeases      = "fermion_leases"      // <node>: heartbeat handler (put, server clock)
	BucketAssignments = "fermion_assignments" // <node>.<deployment>: scheduler only
	BucketStatus      = "fermion_status"      // <node>.<deployment>: heartbeat handler, from the agent's report
	BucketPlacements  = "fermion_placements"  // <deployment>: scheduler (its latest decision)
	BucketTokens      = "fermion_tokens"      // token.<id>, node.<name>: API, join handler
	BucketPolicies    = "fermion_policies"    // <policy>: API only (CAS); history = its last versions
	BucketLeader      = "fermion_leader"      // controllers: leader election (TTL)
	BucketRevisions   = "fermion_revisions"   // <deployment>.<n>: API (create only), revisions controller (backfill, prune)
	BucketRollouts    = "fermion_rollouts"    // <deployment>: rollout controller (fenced CAS), rollout actions API (CAS)
	streamEvents      = "FERMION_EVENTS"      // fermion.events.<type>: everyone; bounded
)

// policyHistory is how many versions of each policy the policies bucket keeps (a
// delete marker counts as one).
const policyHistory = 10

// Store is the control plane's state: a typed table per bucket, the leader lease's
// bucket and the event stream. Every role holds the Store (or the tables it needs);
// none holds a raw bucket except through Table.KV for what a table does not model.
type Store struct {
	JS jetstream.JetStream

	Deployments *Table[v1.Deployment]     // desired: API (CAS), retire (fenced)
	Nodes       *Table[v1.Node]           // observed: register, lifecycle (fenced), drain API
	Leases      *Table[Lease]             // observed: heartbeats (put, server clock)
	Assignments *Table[v1.Assignment]     // decided: scheduler only (fenced)
	Statuses    *Table[v1.InstanceStatus] // observed: heartbeats, from the agents' reports
	Placements  *Table[v1.Placement]      // decided: scheduler's latest decision (fenced)
	Creds       *Table[Cred]              // desired: API tokens, join handler
	Policies    *Table[v1.Policy]         // desired: API only (CAS); history = its versions
	Revisions   *Table[v1.Revision]       // desired: immutable, "<deployment>.<n>"; API creates, revisions controller backfills and prunes
	Rollouts    *Table[Rollout]           // decided: a deployment's latest rollout; rollout controller (fenced CAS), actions API (CAS)

	Leader jetstream.KeyValue // the leader lease (TTL); not a table: one raw record
	Events jetstream.Stream   // fermion.events.<type>, bounded
}

// Lease is a node's liveness record, written with the server's clock.
type Lease struct {
	Renewed time.Time `json:"renewed"`
	Server  string    `json:"server"`
	// Telemetry is the node's span export health as its last heartbeat reported it:
	// kept here because the lease is written with every heartbeat anyway.
	Telemetry *v1.TelemetryHealth `json:"telemetry,omitempty"`
}

// Cred is a record of the tokens bucket: an API or join token ("token.<id>") or a
// joined node's credentials ("node.<name>"). Only a hash of the secret is kept.
type Cred struct {
	Kind        string     `json:"kind"` // "token" or "node"
	ID          string     `json:"id,omitempty"`
	Role        string     `json:"role,omitempty"`
	Node        string     `json:"node,omitempty"`
	Description string     `json:"description,omitempty"`
	Hash        string     `json:"hash"`
	Created     time.Time  `json:"created"`
	Expires     *time.Time `json:"expires,omitempty"`
}

// Open opens (creating them if needed) the buckets and the event stream with
// replicas copies each; the tables are empty until Run.
func Open(ctx context.Context, js jetstream.JetStream, replicas int, leaderTTL time.Duration, maxEvents int64) (*Store, error) {
	s := &Store{JS: js}
	var deployments, nodes, leases, assignments, status, placements, tokens, policies, revisions, rollouts jetstream.KeyValue
	buckets := []struct {
		kv      *jetstream.KeyValue
		name    string
		history uint8
		ttl     time.Duration
		storage jetstream.StorageType
	}{
		{&deployments, BucketDeployments, 5, 0, jetstream.FileStorage},
		{&nodes, BucketNodes, 1, 0, jetstream.FileStorage},
		// Leases are rewritten by every renewal and worth nothing after a restart (a
		// new leader waits one lease-lost period before marking nodes lost), so they
		// live in memory: no disk write, let alone a sync, per heartbeat.
		{&leases, BucketLeases, 1, 0, jetstream.MemoryStorage},
		{&assignments, BucketAssignments, 1, 0, jetstream.FileStorage},
		{&status, BucketStatus, 1, 0, jetstream.FileStorage},
		{&placements, BucketPlacements, 1, 0, jetstream.FileStorage},
		{&tokens, BucketTokens, 1, 0, jetstream.FileStorage},
		{&s.Leader, BucketLeader, 1, leaderTTL, jetstream.FileStorage},
		{&policies, BucketPolicies, policyHistory, 0, jetstream.FileStorage},
		{&revisions, BucketRevisions, 1, 0, jetstream.FileStorage},
		{&rollouts, BucketRollouts, 1, 0, jetstream.FileStorage},
	}
	// Open them at once: replicas of a new cluster race to create them, and each
	// race can cost an API timeout.
	errs := make([]error, len(buckets)+1)
	var wg sync.WaitGroup
	for i, b := range buckets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			*b.kv, errs[i] = engine.OpenKeyValue(ctx, js, jetstream.KeyValueConfig{
				Bucket: b.name, History: b.history, TTL: b.ttl, Replicas: replicas, Storage: b.storage,
			})
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.Events, errs[len(buckets)] = engine.OpenStream(ctx, js, jetstream.StreamConfig{
			Name: streamEvents, Subjects: []string{"fermion.events.>"}, MaxMsgs: maxEvents,
			Discard: jetstream.DiscardOld, Replicas: replicas, Storage: jetstream.FileStorage,
		})
	}()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s.Deployments = newTable[v1.Deployment](BucketDeployments, deployments, js)
	s.Nodes = newTable[v1.Node](BucketNodes, nodes, js)
	s.Leases = newTable[Lease](BucketLeases, leases, js)
	s.Assignments = newTable[v1.Assignment](BucketAssignments, assignments, js)
	s.Statuses = newTable[v1.InstanceStatus](BucketStatus, status, js)
	s.Creds = newTable[Cred](BucketTokens, tokens, js)
	s.Placements = newTable[v1.Placement](BucketPlacements, placements, js)
	s.Policies = newTable[v1.Policy](BucketPolicies, policies, js)
	s.Revisions = newTable[v1.Revision](BucketRevisions, revisions, js)
	s.Rollouts = newTable[Rollout](BucketRollouts, rollouts, js)
	return s, nil
}

// OpenRetry is Open, retrying for up to 30 s while a new cluster elects the leaders
// of its streams.
func OpenRetry(ctx context.Context, js jetstream.JetStream, replicas int, leaderTTL time.Duration, maxEvents int64) (*Store, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := Open(ctx, js, replicas, leaderTTL, maxEvents)
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return st, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// tables lists every table, for starting and awaiting their watches.
func (s *Store) tables() []interface {
	run(ctx context.Context, log func(msg string, args ...any))
	WaitReady(ctx context.Context) error
} {
	return []interface {
		run(ctx context.Context, log func(msg string, args ...any))
		WaitReady(ctx context.Context) error
	}{s.Deployments, s.Nodes, s.Leases, s.Assignments, s.Statuses, s.Creds, s.Placements, s.Policies, s.Revisions, s.Rollouts}
}

// Run keeps every table current until ctx is done, one watch goroutine per table
// started with spawn (which owns it); log reports watches that fail and restart.
func (s *Store) Run(ctx context.Context, spawn func(func(context.Context)), log func(msg string, args ...any)) {
	for _, t := range s.tables() {
		spawn(func(ctx context.Context) { t.run(ctx, log) })
	}
}

// WaitReady waits until every table holds its bucket's initial values.
func (s *Store) WaitReady(ctx context.Context) error {
	for _, t := range s.tables() {
		if err := t.WaitReady(ctx); err != nil {
			return err
		}
	}
	return nil
}

// fenced are the tables the controllers write, fenced by the leader's term (Fence).
func (s *Store) fenced() []Bucket {
	return []Bucket{s.Nodes, s.Assignments, s.Placements, s.Deployments, s.Rollouts}
}

// ErrConflict is a lost compare-and-swap that the caller asked not to retry.
var ErrConflict = errors.New("the record changed since it was read")

// CASConflicts counts lost compare-and-swaps that were retried, in every replica of
// the process (the writes are generic and have no server at hand).
var CASConflicts = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "fermion_controlplane_kv_conflicts_total",
	Help: "Compare-and-swap writes to the state buckets that lost to a concurrent writer and were retried.",
})

// IsCASConflict reports whether a KV write (or a publish with an expected sequence)
// lost a compare-and-swap. Replicated streams report it with another code (10164)
// than a single server's (10071).
func IsCASConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// Update reads key from the bucket (not the table, which may lag), calls fn with the
// current value (nil when absent) and writes what it returns with compare-and-swap on
// the revision read, retrying from the read when another writer won. fn returning
// (nil, nil) writes nothing; returning an error stops. It returns the value written
// (or nil) and its revision (or the revision read when nothing was written).
func (t *Table[T]) Update(ctx context.Context, key string, fn func(cur *T) (*T, error)) (*T, uint64, error) {
	kv := t.kv
	for attempt := 0; ; attempt++ {
		var cur *T
		var rev uint64
		e, err := kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return nil, 0, fmt.Errorf("read %s: %w", key, err)
		default:
			cur = new(T)
			if err := json.Unmarshal(e.Value(), cur); err != nil {
				return nil, 0, fmt.Errorf("read %s: %w", key, err)
			}
			rev = e.Revision()
		}
		next, err := fn(cur)
		if err != nil || next == nil {
			return next, rev, err
		}
		b, err := json.Marshal(next)
		if err != nil {
			return nil, 0, fmt.Errorf("encode %s: %w", key, err)
		}
		var newRev uint64
		if cur == nil {
			newRev, err = kv.Create(ctx, key, b)
		} else {
			newRev, err = kv.Update(ctx, key, b, rev)
		}
		if err == nil {
			return next, newRev, nil
		}
		if !IsCASConflict(err) || attempt >= 20 {
			return nil, 0, fmt.Errorf("write %s: %w", key, err)
		}
		CASConflicts.Inc()
	}
}

// Put writes v under key unconditionally, for records with one writer (a lease, a
// node's status) or whose last write wins (a token).
func (t *Table[T]) Put(ctx context.Context, key string, v *T) (uint64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("encode %s: %w", key, err)
	}
	rev, err := t.kv.Put(ctx, key, b)
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", key, err)
	}
	return rev, nil
}

// PutIfLast writes v under key if the bucket's last sequence (of any key) is still
// last: the write is conditional on the whole bucket being as the caller read it
// (admission's dry run). A lost race fails with an error IsCASConflict recognises.
func (t *Table[T]) PutIfLast(ctx context.Context, key string, v *T, last uint64) (uint64, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("encode %s: %w", key, err)
	}
	m := &nats.Msg{Subject: kvSubject(t.name, key), Data: data}
	ack, err := t.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequence(last))
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", key, err)
	}
	return ack.Sequence, nil
}

// Create writes v under key only if the key holds nothing (immutable records such as
// revisions); it reports created false, with no error, when the key exists already.
func (t *Table[T]) Create(ctx context.Context, key string, v *T) (created bool, rev uint64, err error) {
	b, err := json.Marshal(v)
	if err != nil {
		return false, 0, fmt.Errorf("encode %s: %w", key, err)
	}
	rev, err = t.kv.Create(ctx, key, b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, 0, nil
	}
	if err != nil {
		return false, 0, fmt.Errorf("create %s: %w", key, err)
	}
	return true, rev, nil
}

// Delete deletes key from the bucket (a missing key is no error).
func (t *Table[T]) Delete(ctx context.Context, key string) error {
	return t.kv.Delete(ctx, key)
}

// DeleteAt deletes key if the bucket still holds it at revision rev; a lost race
// fails with an error IsCASConflict recognises.
func (t *Table[T]) DeleteAt(ctx context.Context, key string, rev uint64) error {
	return t.kv.Delete(ctx, key, jetstream.LastRevision(rev))
}

// KV is the table's bucket, for what the table does not model (a key's history, a
// record of another type).
func (t *Table[T]) KV() jetstream.KeyValue { return t.kv }

// Name is the table's bucket name.
func (t *Table[T]) Name() string { return t.name }

// Table is an in-memory copy of one bucket, kept current by a watch: the informer
// pattern. Reads come from it; writes go to the bucket (with the revision the table
// holds) and come back through the watch.
//
// Lock order: mu and watchMu are leaves; watchers are called with neither held.
type Table[T any] struct {
	name    string
	kv      jetstream.KeyValue
	js      jetstream.JetStream // for conditional writes (PutIfLast, fenced writes)
	mu      sync.RWMutex
	m       map[string]*item[T]
	byNode  map[string]map[string]struct{} // keys "<node>.<rest>" by node, for EachOfNode
	rev     uint64                         // highest revision seen
	changed chan struct{}                  // closed and replaced on every change
	ready   chan struct{}                  // closed once the initial values are in
	watches atomic.Int64                   // watches started: more than one means a gap was filled again

	watchMu  sync.RWMutex
	watchers []func(key string, v *T) // see Watch
}

type item[T any] struct {
	v   T
	rev uint64
}

func newTable[T any](name string, kv jetstream.KeyValue, js jetstream.JetStream) *Table[T] {
	return &Table[T]{name: name, kv: kv, js: js, m: map[string]*item[T]{}, byNode: map[string]map[string]struct{}{},
		changed: make(chan struct{}), ready: make(chan struct{})}
}

// indexLocked adds (or, with add false, removes) key in byNode.
func (t *Table[T]) indexLocked(key string, add bool) {
	node, _, ok := strings.Cut(key, ".")
	if !ok {
		return
	}
	keys := t.byNode[node]
	if add {
		if keys == nil {
			keys = map[string]struct{}{}
			t.byNode[node] = keys
		}
		keys[key] = struct{}{}
		return
	}
	delete(keys, key)
	if len(keys) == 0 {
		delete(t.byNode, node)
	}
}

// Watch calls fn after every change the table applies, with the key and the new value
// (nil: deleted), on the table's watch goroutine: fn must not block or call back into
// the table's writes. It is how consumers wake up (a controller's kick, a push of
// assignments). Watchers added after the table is loaded see only later changes.
func (t *Table[T]) Watch(fn func(key string, v *T)) {
	t.watchMu.Lock()
	t.watchers = append(t.watchers, fn)
	t.watchMu.Unlock()
}

func (t *Table[T]) notify(key string, v *T) {
	t.watchMu.RLock()
	ws := t.watchers
	t.watchMu.RUnlock()
	for _, fn := range ws {
		fn(key, v)
	}
}

// Watches counts the watches the table has started: a count that grew means the
// watch restarted, and changes may have been missed meanwhile (then filled again).
func (t *Table[T]) Watches() int64 { return t.watches.Load() }

// run watches the bucket until ctx is done, restarting the watch if it fails.
func (t *Table[T]) run(ctx context.Context, log func(msg string, args ...any)) {
	for ctx.Err() == nil {
		w, err := t.kv.WatchAll(ctx)
		if err != nil {
			log("watch bucket", "bucket", t.name, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		t.watches.Add(1)
		t.consume(ctx, w)
		w.Stop()
	}
}

func (t *Table[T]) consume(ctx context.Context, w jetstream.KeyWatcher) {
	seen := map[string]bool{} // Keys in the initial values, until they are all in
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				t.prune(seen)
				seen = nil
				select {
				case <-t.ready:
				default:
					close(t.ready)
				}
				continue
			}
			if seen != nil {
				seen[e.Key()] = true
			}
			t.apply(e)
		}
	}
}

// prune drops the keys a restarted watch did not deliver: they were deleted (and
// their markers aged out) while the watch was down.
func (t *Table[T]) prune(seen map[string]bool) {
	var gone []string
	t.mu.Lock()
	for k := range t.m {
		if !seen[k] {
			gone = append(gone, k)
			delete(t.m, k)
			t.indexLocked(k, false)
		}
	}
	if len(gone) > 0 {
		close(t.changed)
		t.changed = make(chan struct{})
	}
	t.mu.Unlock()
	for _, k := range gone {
		t.notify(k, nil)
	}
}

func (t *Table[T]) apply(e jetstream.KeyValueEntry) {
	if e.Key() == FenceKey {
		// Not a record, but its revision counts: a new leader waits until its
		// tables have seen its fences.
		t.mu.Lock()
		if e.Revision() > t.rev {
			t.rev = e.Revision()
			close(t.changed)
			t.changed = make(chan struct{})
		}
		t.mu.Unlock()
		return
	}
	var v *T
	if e.Operation() == jetstream.KeyValuePut {
		v = new(T)
		if err := json.Unmarshal(e.Value(), v); err != nil {
			v = nil // unreadable: treat as absent rather than stall
		}
	}
	t.mu.Lock()
	if old, ok := t.m[e.Key()]; ok && e.Revision() <= old.rev && v != nil {
		t.mu.Unlock()
		return // replayed after a restarted watch
	}
	if v == nil {
		delete(t.m, e.Key())
		t.indexLocked(e.Key(), false)
	} else {
		t.m[e.Key()] = &item[T]{v: *v, rev: e.Revision()}
		t.indexLocked(e.Key(), true)
	}
	if e.Revision() > t.rev {
		t.rev = e.Revision()
	}
	close(t.changed)
	t.changed = make(chan struct{})
	t.mu.Unlock()
	t.notify(e.Key(), v)
}

// Get returns a copy of key's value and its revision.
func (t *Table[T]) Get(key string) (T, uint64, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	it, ok := t.m[key]
	if !ok {
		var zero T
		return zero, 0, false
	}
	return it.v, it.rev, true
}

// Each calls fn for every entry, under the read lock: fn must not call back.
func (t *Table[T]) Each(fn func(key string, v *T, rev uint64)) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for k, it := range t.m {
		fn(k, &it.v, it.rev)
	}
}

// EachOfNode calls fn for every entry keyed "<node>.…", under the read lock: fn must
// not call back. It costs what the node has, not what the table has.
func (t *Table[T]) EachOfNode(node string, fn func(key string, v *T, rev uint64)) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for k := range t.byNode[node] {
		it := t.m[k]
		fn(k, &it.v, it.rev)
	}
}

// Entry is one record of a table with its revision.
type Entry[T any] struct {
	Key   string
	Value T
	Rev   uint64
}

// List returns a copy of every record, sorted by key.
func (t *Table[T]) List() []Entry[T] {
	t.mu.RLock()
	out := make([]Entry[T], 0, len(t.m))
	for k, it := range t.m {
		out = append(out, Entry[T]{Key: k, Value: it.v, Rev: it.rev})
	}
	t.mu.RUnlock()
	slices.SortFunc(out, func(a, b Entry[T]) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// OfNode returns a copy of the records keyed "<node>.…" and the table's revision
// when they were read: the set is exactly the table's at that revision.
func (t *Table[T]) OfNode(node string) (uint64, []T) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]T, 0, len(t.byNode[node]))
	for k := range t.byNode[node] {
		out = append(out, t.m[k].v)
	}
	return t.rev, out
}

// Keys returns the keys, sorted.
func (t *Table[T]) Keys() []string {
	t.mu.RLock()
	out := make([]string, 0, len(t.m))
	for k := range t.m {
		out = append(out, k)
	}
	t.mu.RUnlock()
	slices.Sort(out)
	return out
}

// Len is the number of records.
func (t *Table[T]) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.m)
}

// WaitRev waits until the table has seen revision rev (read your own writes).
func (t *Table[T]) WaitRev(ctx context.Context, rev uint64) error {
	for {
		t.mu.RLock()
		seen, ch := t.rev, t.changed
		t.mu.RUnlock()
		if seen >= rev {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// Changes returns a channel that is closed at the next change of the table.
func (t *Table[T]) Changes() <-chan struct{} {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.changed
}

// WaitGone waits until key is absent (read your own delete).
func (t *Table[T]) WaitGone(ctx context.Context, key string) error {
	for {
		t.mu.RLock()
		_, ok := t.m[key]
		ch := t.changed
		t.mu.RUnlock()
		if !ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// WaitReady waits for the initial values.
func (t *Table[T]) WaitReady(ctx context.Context) error {
	select {
	case <-t.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("load bucket %s: %w", t.name, ctx.Err())
	}
}
