package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Fencing: the controllers' writes carry a token that a deposed leader's cannot.
//
// Every bucket the controllers write holds a fence record under FenceKey, written by
// a replica when it becomes leader, after it created (or re-proved) the leader lease,
// and carrying that lease's revision as its term. Each controller write to the bucket
// is published with the header Nats-Expected-Last-Subject-Sequence naming the fence
// record's subject and the sequence this leader wrote it at: the stream refuses the
// write once any later leader has fenced the bucket. A new leader fences every bucket
// before its first decision and then waits until its tables hold the fence, so it
// decides on a state that includes every write its predecessor got in. Leases'
// revisions only grow (they are stream sequences), so a fence never goes back to an
// older term: installing one reads the current record and gives up if it is newer.

// FenceKey is the fence record's key in each fenced bucket; no deployment or node name
// can take it (names do not start with an underscore), and the tables skip it.
const FenceKey = "_fence"

// FenceRecord is the record under FenceKey.
type FenceRecord struct {
	Server string `json:"server"`
	Term   uint64 `json:"term"`
}

// ErrDeposed means another leader has fenced this replica out.
var ErrDeposed = errors.New("deposed: another replica fenced the controllers' buckets")

// Bucket is a table as the fence sees it: every *Table is one.
type Bucket interface {
	Name() string
	KV() jetstream.KeyValue
	WaitRev(ctx context.Context, rev uint64) error
}

// Fence is this replica's leader lease as the controllers may use it, and the only
// way they write: every write through it is refused by the stream once another
// leader has fenced the bucket. The leader election (which owns the lease) moves it
// through Begin, Install, Renewed and End; controllers hold it, ask Acting before
// they decide and write with the tables' Fenced* methods.
//
// Lock order: mu is a leaf.
type Fence struct {
	js        jetstream.JetStream
	server    string
	buckets   []Bucket
	onDeposed func(why string)

	mu        sync.Mutex
	term      uint64            // the lease revision the fences carry; 0: not leading
	heldUntil time.Time         // monotonic: the lease is provably ours until then
	fences    map[string]uint64 // bucket → sequence of our fence record
	// hearing is when this replica last started to be able to hear the agents without
	// a gap (monotonic): becoming leader, resuming from a pause, the leases watch
	// restarting. No node is lost before a full lost period has passed since.
	hearing time.Time
}

// NewFence returns the fence of replica server over st's fenced tables. onDeposed is
// called (once per refusal, from the writing goroutine) when a write finds another
// leader's fence: the election steps down.
func NewFence(st *Store, server string, onDeposed func(why string)) *Fence {
	return &Fence{js: st.JS, server: server, buckets: st.fenced(), onDeposed: onDeposed}
}

// Acting reports whether the controllers may decide now: this replica leads, its lease
// is provably current on its own clock, and its fences are installed.
func (l *Fence) Acting(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.term != 0 && l.fences != nil && now.Before(l.heldUntil)
}

// fence returns the sequence of our fence record in bucket, or false when not fenced.
func (l *Fence) fence(bucket string) (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	seq, ok := l.fences[bucket]
	return seq, ok && l.term != 0
}

// HearingFor returns how long this leader has been able to hear agents without a gap.
func (l *Fence) HearingFor(now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hearing.IsZero() {
		return 0
	}
	return now.Sub(l.hearing)
}

// Deafened restarts the hearing window: what the tables say about renewals cannot be
// trusted to cover the time before now.
func (l *Fence) Deafened(now time.Time) {
	l.mu.Lock()
	l.hearing = now
	l.mu.Unlock()
}

// Begin starts a term: the lease at revision term is provably held until heldUntil
// (monotonic), and the agents are heard from now on. Nothing may be written until
// Install has fenced the buckets.
func (l *Fence) Begin(term uint64, heldUntil, hearing time.Time) {
	l.mu.Lock()
	l.term, l.heldUntil, l.fences, l.hearing = term, heldUntil, nil, hearing
	l.mu.Unlock()
}

// End stops the term at once; it reports whether one was running.
func (l *Fence) End() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	was := l.term != 0
	l.term, l.fences = 0, nil
	return was
}

// Term is the lease revision the fences carry, 0 when not leading.
func (l *Fence) Term() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.term
}

// Install writes this leader's fence record, term, into every fenced bucket, waits
// until the tables hold them, and then lets the writes through. It fails with
// ErrDeposed when a bucket already holds a newer term.
func (l *Fence) Install(ctx context.Context, term uint64) error {
	fences, err := l.install(ctx, term)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.fences = fences
	l.mu.Unlock()
	return nil
}

func (l *Fence) install(ctx context.Context, term uint64) (map[string]uint64, error) {
	rec, _ := json.Marshal(FenceRecord{Server: l.server, Term: term})
	out := map[string]uint64{}
	waits := map[string]Bucket{}
	for _, b := range l.buckets {
		var seq uint64
		kv := b.KV()
		e, err := kv.Get(ctx, FenceKey)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			seq, err = kv.Create(ctx, FenceKey, rec)
		case err != nil:
		default:
			var cur FenceRecord
			if json.Unmarshal(e.Value(), &cur) == nil && cur.Term > term {
				return nil, fmt.Errorf("fence %s: %w (term %d by %s, ours %d)", b.Name(), ErrDeposed, cur.Term, cur.Server, term)
			}
			seq, err = kv.Update(ctx, FenceKey, rec, e.Revision())
		}
		if err != nil {
			return nil, fmt.Errorf("fence %s: %w", b.Name(), err)
		}
		out[b.Name()] = seq
		waits[b.Name()] = b
	}
	for bucket, seq := range out {
		if err := waits[bucket].WaitRev(ctx, seq); err != nil {
			return nil, fmt.Errorf("fence %s: wait for the table: %w", bucket, err)
		}
	}
	return out, nil
}

// kvSubject is the subject a KV bucket stores key under.
func kvSubject(bucket, key string) string { return "$KV." + bucket + "." + key }

// fencedOpts are the publish options that make a write to bucket conditional on this
// leader's fence, or ErrNotActing when it has none.
func (l *Fence) fencedOpts(bucket string) ([]jetstream.PublishOpt, error) {
	seq, ok := l.fence(bucket)
	if !ok || !l.Acting(time.Now()) {
		return nil, fmt.Errorf("write %s: %w", bucket, ErrNotActing)
	}
	return []jetstream.PublishOpt{jetstream.WithExpectLastSequenceForSubject(seq, kvSubject(bucket, FenceKey))}, nil
}

// ErrNotActing means this replica cannot prove its lease now.
var ErrNotActing = errors.New("this replica does not hold a current leader lease")

// publish publishes one record (or, with op set, a KV operation marker) to
// bucket under key, conditional on the fence and on opts. A refusal for the fence steps
// this replica down.
//
// A replicated stream lets one message at a time be in flight with an expected-sequence
// check on a given subject, and refuses the others until it is applied (the same code
// as a lost compare-and-swap). Every fenced write checks the fence's subject, so
// concurrent fenced writes to one bucket of a cluster take turns: a refusal while the
// fence is still ours is retried shortly, unless opts carry the caller's own check,
// which then reads again and decides.
func (l *Fence) publish(ctx context.Context, b Bucket, key string, data []byte, op string, opts ...jetstream.PublishOpt) (uint64, error) {
	for attempt := 0; ; attempt++ {
		fo, err := l.fencedOpts(b.Name())
		if err != nil {
			return 0, err
		}
		m := &nats.Msg{Subject: kvSubject(b.Name(), key), Data: data, Header: nats.Header{}}
		if op != "" {
			m.Header.Set("KV-Operation", op)
		}
		ack, err := l.js.PublishMsg(ctx, m, append(fo, opts...)...)
		if err == nil {
			return ack.Sequence, nil
		}
		if !IsCASConflict(err) {
			return 0, fmt.Errorf("write %s %s: %w", b.Name(), key, err)
		}
		if l.fencedOut(ctx, b) {
			return 0, fmt.Errorf("write %s %s: %w", b.Name(), key, ErrDeposed)
		}
		if len(opts) > 0 || attempt >= fenceTurns {
			return 0, fmt.Errorf("write %s %s: %w", b.Name(), key, err)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("write %s %s: %w", b.Name(), key, ctx.Err())
		case <-time.After(fenceTurnWait(attempt)):
		}
	}
}

// fenceTurns bounds how often one fenced write waits its turn behind others in flight.
const fenceTurns = 100

// fenceTurnWait is how long a fenced write waits before its next turn: short (a turn is
// one replicated append), growing a little, jittered so that waiting writers spread out.
func fenceTurnWait(attempt int) time.Duration {
	d := time.Duration(min(attempt+1, 20)) * time.Millisecond
	return d/2 + rand.N(d)
}

// fencedOut reports whether b's fence is no longer ours, and steps down when it is not.
func (l *Fence) fencedOut(ctx context.Context, b Bucket) bool {
	seq, ok := l.fence(b.Name())
	e, err := b.KV().Get(ctx, FenceKey)
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return false // cannot tell; the write failed anyway and the next pass retries
	}
	if ok && err == nil && e.Revision() == seq {
		return false
	}
	l.onDeposed("another replica fenced bucket " + b.Name())
	return true
}

// FencedPut writes v under key, fenced by f.
func (t *Table[T]) FencedPut(ctx context.Context, f *Fence, key string, v *T) (uint64, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("encode %s: %w", key, err)
	}
	return f.publish(ctx, t, key, data, "")
}

// FencedDelete deletes key, fenced by f.
func (t *Table[T]) FencedDelete(ctx context.Context, f *Fence, key string) error {
	_, err := f.publish(ctx, t, key, nil, "DEL")
	return err
}

// FencedUpdate is Update for the controllers: the write is fenced and also conditional
// on the record being unchanged since the read. One message cannot carry two
// per-subject checks, so the record's check is on the whole stream's last sequence: a
// write to any other key of the bucket in between costs a retry, which is rare in the
// buckets the controllers update this way (nodes; deployments when deleted).
func (t *Table[T]) FencedUpdate(ctx context.Context, f *Fence, key string, fn func(cur *T) (*T, error)) (*T, error) {
	for attempt := 0; ; attempt++ {
		if attempt > 20 {
			return nil, fmt.Errorf("write %s %s: %w", t.name, key, ErrConflict)
		}
		last, err := LastSeq(ctx, t)
		if err != nil {
			return nil, err
		}
		var cur *T
		e, err := t.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return nil, fmt.Errorf("read %s: %w", key, err)
		default:
			cur = new(T)
			if err := json.Unmarshal(e.Value(), cur); err != nil {
				return nil, fmt.Errorf("read %s: %w", key, err)
			}
			if e.Revision() > last {
				continue // written after the status was read: read both again
			}
		}
		next, err := fn(cur)
		if err != nil || next == nil {
			return next, err
		}
		data, err := json.Marshal(next)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", key, err)
		}
		_, err = f.publish(ctx, t, key, data, "", jetstream.WithExpectLastSequence(last))
		if err == nil {
			return next, nil
		}
		if errors.Is(err, ErrDeposed) || !IsCASConflict(err) || attempt >= 20 {
			return nil, err
		}
		CASConflicts.Inc()
	}
}

// Renewed extends the lease to heldUntil (monotonic).
func (l *Fence) Renewed(heldUntil time.Time) {
	l.mu.Lock()
	if l.term != 0 {
		l.heldUntil = heldUntil
	}
	l.mu.Unlock()
}

// LastSeq reads a bucket's last sequence (of any key).
func LastSeq(ctx context.Context, b Bucket) (uint64, error) {
	st, err := b.KV().Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", b.Name(), err)
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return 0, fmt.Errorf("read %s: unexpected status type %T", b.Name(), st)
	}
	return bs.StreamInfo().State.LastSeq, nil
}

// FencedDeleteAt deletes key, fenced by f, if it is still at revision rev; it reports
// whether it did. Like FencedUpdate, the record's check is on the bucket's last
// sequence.
func (t *Table[T]) FencedDeleteAt(ctx context.Context, f *Fence, key string, rev uint64) (bool, error) {
	for attempt := 0; ; attempt++ {
		if attempt > 20 {
			return false, fmt.Errorf("write %s %s: %w", t.name, key, ErrConflict)
		}
		last, err := LastSeq(ctx, t)
		if err != nil {
			return false, err
		}
		e, err := t.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("read %s: %w", key, err)
		case e.Revision() > last:
			continue // written after the status was read: read both again
		case e.Revision() != rev:
			return false, nil // changed since the caller read it; it decides again
		}
		_, err = f.publish(ctx, t, key, nil, "DEL", jetstream.WithExpectLastSequence(last))
		if err == nil {
			return true, nil
		}
		if errors.Is(err, ErrDeposed) || !IsCASConflict(err) || attempt >= 20 {
			return false, err
		}
		CASConflicts.Inc()
	}
}
