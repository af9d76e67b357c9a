package controlplane

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

	"github.com/nats-io/nats.go/jetstream"

	"fermion.dev/fermion/internal/engine"
)

// The KV buckets and who writes them (docs/control-plane.md has the full table).
const (
	bucketDeployments = "fermion_deployments" // <deployment>: API only (spec, CAS)
	bucketNodes       = "fermion_nodes"       // <node>: register handler, lifecycle controller, drain API (CAS)
	bucketLeases      = "fermion_leases"      // <node>: heartbeat handler (put, server clock)
	bucketAssignments = "fermion_assignments" // <node>.<deployment>: scheduler only
	bucketStatus      = "fermion_status"      // <node>.<deployment>: heartbeat handler, from the agent's report
	bucketPlacements  = "fermion_placements"  // <deployment>: scheduler (its latest decision)
	bucketTokens      = "fermion_tokens"      // token.<id>, node.<name>: API, join handler
	bucketPolicies    = "fermion_policies"    // <policy>: API only (CAS); history = its last versions
	bucketLeader      = "fermion_leader"      // controllers: leader election (TTL)
	streamEvents      = "FERMION_EVENTS"      // fermion.events.<type>: everyone; bounded
)

// store holds the buckets.
type store struct {
	js                                                                                    jetstream.JetStream
	deployments, nodes, leases, assignments, status, placements, tokens, leader, policies jetstream.KeyValue
	events                                                                                jetstream.Stream
}

func openStore(ctx context.Context, js jetstream.JetStream, replicas int, leaderTTL time.Duration, maxEvents int64) (*store, error) {
	s := &store{js: js}
	buckets := []struct {
		kv      *jetstream.KeyValue
		name    string
		history uint8
		ttl     time.Duration
		storage jetstream.StorageType
	}{
		{&s.deployments, bucketDeployments, 5, 0, jetstream.FileStorage},
		{&s.nodes, bucketNodes, 1, 0, jetstream.FileStorage},
		// Leases are rewritten by every renewal and worth nothing after a restart (a
		// new leader waits one lease-lost period before marking nodes lost), so they
		// live in memory: no disk write, let alone a sync, per heartbeat.
		{&s.leases, bucketLeases, 1, 0, jetstream.MemoryStorage},
		{&s.assignments, bucketAssignments, 1, 0, jetstream.FileStorage},
		{&s.status, bucketStatus, 1, 0, jetstream.FileStorage},
		{&s.placements, bucketPlacements, 1, 0, jetstream.FileStorage},
		{&s.tokens, bucketTokens, 1, 0, jetstream.FileStorage},
		{&s.leader, bucketLeader, 1, leaderTTL, jetstream.FileStorage},
		{&s.policies, bucketPolicies, policyHistory, 0, jetstream.FileStorage},
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
		s.events, errs[len(buckets)] = engine.OpenStream(ctx, js, jetstream.StreamConfig{
			Name: streamEvents, Subjects: []string{"fermion.events.>"}, MaxMsgs: maxEvents,
			Discard: jetstream.DiscardOld, Replicas: replicas, Storage: jetstream.FileStorage,
		})
	}()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// errConflict is a lost compare-and-swap that the caller asked not to retry.
var errConflict = errors.New("the record changed since it was read")

// isCASConflict reports whether a KV write (or a publish with an expected sequence)
// lost a compare-and-swap. Replicated streams report it with another code (10164)
// than a single server's (10071).
func isCASConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// update reads key, calls fn with the current value (nil when absent) and writes what
// it returns with compare-and-swap on the revision read, retrying from the read when
// another writer won. fn returning (nil, nil) writes nothing; returning an error stops.
// It returns the value written and its revision.
func update[T any](ctx context.Context, kv jetstream.KeyValue, key string, fn func(cur *T, rev uint64) (*T, error)) (*T, uint64, error) {
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
		next, err := fn(cur, rev)
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
		if !isCASConflict(err) || attempt >= 20 {
			return nil, 0, fmt.Errorf("write %s: %w", key, err)
		}
		casConflicts.Inc()
	}
}

func putJSON(ctx context.Context, kv jetstream.KeyValue, key string, v any) (uint64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("encode %s: %w", key, err)
	}
	rev, err := kv.Put(ctx, key, b)
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", key, err)
	}
	return rev, nil
}

// table is an in-memory copy of one bucket, kept current by a watch: the informer
// pattern. Reads come from it; writes go to the bucket (with the revision the table
// holds) and come back through the watch.
//
// Lock order: mu is a leaf.
type table[T any] struct {
	name     string
	mu       sync.RWMutex
	m        map[string]*item[T]
	byNode   map[string]map[string]struct{} // keys "<node>.<rest>" by node, for eachOfNode
	rev      uint64                         // highest revision seen
	changed  chan struct{}                  // closed and replaced on every change
	ready    chan struct{}                  // closed once the initial values are in
	onChange func(key string, v *T)         // v nil: deleted; called on the watch goroutine, must not block
	watches  atomic.Int64                   // watches started: more than one means a gap was filled again
}

type item[T any] struct {
	v   T
	rev uint64
}

func newTable[T any](name string) *table[T] {
	return &table[T]{name: name, m: map[string]*item[T]{}, byNode: map[string]map[string]struct{}{},
		changed: make(chan struct{}), ready: make(chan struct{})}
}

// indexLocked adds (or, with add false, removes) key in byNode.
func (t *table[T]) indexLocked(key string, add bool) {
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

// run watches kv until ctx is done, restarting the watch if it fails.
func (t *table[T]) run(ctx context.Context, kv jetstream.KeyValue, log func(msg string, args ...any)) {
	for ctx.Err() == nil {
		w, err := kv.WatchAll(ctx)
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

func (t *table[T]) consume(ctx context.Context, w jetstream.KeyWatcher) {
	seen := map[string]bool{} // keys in the initial values, until they are all in
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
func (t *table[T]) prune(seen map[string]bool) {
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
	if t.onChange != nil {
		for _, k := range gone {
			t.onChange(k, nil)
		}
	}
}

func (t *table[T]) apply(e jetstream.KeyValueEntry) {
	if e.Key() == fenceKey {
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
	if t.onChange != nil {
		t.onChange(e.Key(), v)
	}
}

// get returns a copy of key's value and its revision.
func (t *table[T]) get(key string) (T, uint64, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	it, ok := t.m[key]
	if !ok {
		var zero T
		return zero, 0, false
	}
	return it.v, it.rev, true
}

// each calls fn for every entry, under the read lock: fn must not call back.
func (t *table[T]) each(fn func(key string, v *T, rev uint64)) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for k, it := range t.m {
		fn(k, &it.v, it.rev)
	}
}

// eachOfNode calls fn for every entry keyed "<node>.…", under the read lock: fn must
// not call back. It costs what the node has, not what the table has.
func (t *table[T]) eachOfNode(node string, fn func(key string, v *T, rev uint64)) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for k := range t.byNode[node] {
		it := t.m[k]
		fn(k, &it.v, it.rev)
	}
}

// keys returns the keys, sorted.
func (t *table[T]) keys() []string {
	t.mu.RLock()
	out := make([]string, 0, len(t.m))
	for k := range t.m {
		out = append(out, k)
	}
	t.mu.RUnlock()
	slices.Sort(out)
	return out
}

func (t *table[T]) len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.m)
}

// waitRev waits until the table has seen revision rev (read your own writes).
func (t *table[T]) waitRev(ctx context.Context, rev uint64) error {
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

// changes returns a channel that is closed at the next change of the table.
func (t *table[T]) changes() <-chan struct{} {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.changed
}

// waitGone waits until key is absent (read your own delete).
func (t *table[T]) waitGone(ctx context.Context, key string) error {
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

// waitReady waits for the initial values.
func (t *table[T]) waitReady(ctx context.Context) error {
	select {
	case <-t.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("load bucket %s: %w", t.name, ctx.Err())
	}
}
