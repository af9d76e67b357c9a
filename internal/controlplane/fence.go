package controlplane

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
// Every bucket the controllers write holds a fence record under fenceKey, written by
// a replica when it becomes leader, after it created (or re-proved) the leader lease,
// and carrying that lease's revision as its term. Each controller write to the bucket
// is published with the header Nats-Expected-Last-Subject-Sequence naming the fence
// record's subject and the sequence this leader wrote it at: the stream refuses the
// write once any later leader has fenced the bucket. A new leader fences every bucket
// before its first decision and then waits until its tables hold the fence, so it
// decides on a state that includes every write its predecessor got in. Leases'
// revisions only grow (they are stream sequences), so a fence never goes back to an
// older term: installing one reads the current record and gives up if it is newer.

// fenceKey is the fence record's key in each fenced bucket; no deployment or node name
// can take it (names do not start with an underscore), and the tables skip it.
const fenceKey = "_fence"

type fenceRecord struct {
	Server string `json:"server"`
	Term   uint64 `json:"term"`
}

// errDeposed means another leader has fenced this replica out.
var errDeposed = errors.New("deposed: another replica fenced the controllers' buckets")

// fencedBucket is a bucket the controllers write, with its name for raw publishes.
type fencedBucket struct {
	name string
	kv   jetstream.KeyValue
}

func (s *Server) fencedBuckets() []fencedBucket {
	return []fencedBucket{
		{bucketNodes, s.st.nodes},
		{bucketAssignments, s.st.assignments},
		{bucketPlacements, s.st.placements},
		{bucketDeployments, s.st.deployments},
	}
}

// leadership is this replica's lease as the controllers may use it.
//
// Lock order: mu is a leaf.
type leadership struct {
	mu        sync.Mutex
	term      uint64            // the lease revision the fences carry; 0: not leading
	heldUntil time.Time         // monotonic: the lease is provably ours until then
	fences    map[string]uint64 // bucket → sequence of our fence record
	// hearing is when this replica last started to be able to hear the agents without
	// a gap (monotonic): becoming leader, resuming from a pause, the leases watch
	// restarting. No node is lost before a full lost period has passed since.
	hearing time.Time
}

// acting reports whether the controllers may decide now: this replica leads, its lease
// is provably current on its own clock, and its fences are installed.
func (l *leadership) acting(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.term != 0 && l.fences != nil && now.Before(l.heldUntil)
}

// fence returns the sequence of our fence record in bucket, or false when not fenced.
func (l *leadership) fence(bucket string) (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	seq, ok := l.fences[bucket]
	return seq, ok && l.term != 0
}

// hearingFor returns how long this leader has been able to hear agents without a gap.
func (l *leadership) hearingFor(now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hearing.IsZero() {
		return 0
	}
	return now.Sub(l.hearing)
}

// deafened restarts the hearing window: what the tables say about renewals cannot be
// trusted to cover the time before now.
func (l *leadership) deafened(now time.Time) {
	l.mu.Lock()
	l.hearing = now
	l.mu.Unlock()
}

// installFences writes this leader's fence record, term, into every fenced bucket and
// waits until the tables hold them. It fails with errDeposed when a bucket already
// holds a newer term.
func (s *Server) installFences(ctx context.Context, term uint64) (map[string]uint64, error) {
	rec, _ := json.Marshal(fenceRecord{Server: s.cfg.Name, Term: term})
	out := map[string]uint64{}
	for _, b := range s.fencedBuckets() {
		var seq uint64
		e, err := b.kv.Get(ctx, fenceKey)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			seq, err = b.kv.Create(ctx, fenceKey, rec)
		case err != nil:
		default:
			var cur fenceRecord
			if json.Unmarshal(e.Value(), &cur) == nil && cur.Term > term {
				return nil, fmt.Errorf("fence %s: %w (term %d by %s, ours %d)", b.name, errDeposed, cur.Term, cur.Server, term)
			}
			seq, err = b.kv.Update(ctx, fenceKey, rec, e.Revision())
		}
		if err != nil {
			return nil, fmt.Errorf("fence %s: %w", b.name, err)
		}
		out[b.name] = seq
	}
	waits := map[string]func(context.Context, uint64) error{
		bucketNodes: s.nodes.waitRev, bucketAssignments: s.assignments.waitRev,
		bucketPlacements: s.placements.waitRev, bucketDeployments: s.deployments.waitRev,
	}
	for bucket, seq := range out {
		if err := waits[bucket](ctx, seq); err != nil {
			return nil, fmt.Errorf("fence %s: wait for the table: %w", bucket, err)
		}
	}
	return out, nil
}

// kvSubject is the subject a KV bucket stores key under.
func kvSubject(bucket, key string) string { return "$KV." + bucket + "." + key }

// fencedOpts are the publish options that make a write to bucket conditional on this
// leader's fence, or errDeposed when it has none.
func (s *Server) fencedOpts(bucket string) ([]jetstream.PublishOpt, error) {
	seq, ok := s.lead.fence(bucket)
	if !ok || !s.lead.acting(time.Now()) {
		return nil, fmt.Errorf("write %s: %w", bucket, errNotActing)
	}
	return []jetstream.PublishOpt{jetstream.WithExpectLastSequenceForSubject(seq, kvSubject(bucket, fenceKey))}, nil
}

// errNotActing means this replica cannot prove its lease now.
var errNotActing = errors.New("this replica does not hold a current leader lease")

// fencedPublish publishes one record (or, with op set, a KV operation marker) to
// bucket under key, conditional on the fence and on opts. A refusal for the fence steps
// this replica down.
//
// A replicated stream lets one message at a time be in flight with an expected-sequence
// check on a given subject, and refuses the others until it is applied (the same code
// as a lost compare-and-swap). Every fenced write checks the fence's subject, so
// concurrent fenced writes to one bucket of a cluster take turns: a refusal while the
// fence is still ours is retried shortly, unless opts carry the caller's own check,
// which then reads again and decides.
func (s *Server) fencedPublish(ctx context.Context, b fencedBucket, key string, data []byte, op string, opts ...jetstream.PublishOpt) (uint64, error) {
	for attempt := 0; ; attempt++ {
		fo, err := s.fencedOpts(b.name)
		if err != nil {
			return 0, err
		}
		m := &nats.Msg{Subject: kvSubject(b.name, key), Data: data, Header: nats.Header{}}
		if op != "" {
			m.Header.Set("KV-Operation", op)
		}
		ack, err := s.st.js.PublishMsg(ctx, m, append(fo, opts...)...)
		if err == nil {
			return ack.Sequence, nil
		}
		if !isCASConflict(err) {
			return 0, fmt.Errorf("write %s %s: %w", b.name, key, err)
		}
		if s.fencedOut(ctx, b) {
			return 0, fmt.Errorf("write %s %s: %w", b.name, key, errDeposed)
		}
		if len(opts) > 0 || attempt >= fenceTurns {
			return 0, fmt.Errorf("write %s %s: %w", b.name, key, err)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("write %s %s: %w", b.name, key, ctx.Err())
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
func (s *Server) fencedOut(ctx context.Context, b fencedBucket) bool {
	seq, ok := s.lead.fence(b.name)
	e, err := b.kv.Get(ctx, fenceKey)
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return false // cannot tell; the write failed anyway and the next pass retries
	}
	if ok && err == nil && e.Revision() == seq {
		return false
	}
	s.stepDown("another replica fenced bucket " + b.name)
	return true
}

// fencedPut writes v under key, fenced.
func (s *Server) fencedPut(ctx context.Context, b fencedBucket, key string, v any) (uint64, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("encode %s: %w", key, err)
	}
	return s.fencedPublish(ctx, b, key, data, "")
}

// fencedDelete deletes key, fenced.
func (s *Server) fencedDelete(ctx context.Context, b fencedBucket, key string) error {
	_, err := s.fencedPublish(ctx, b, key, nil, "DEL")
	return err
}

// fencedUpdate is update for the controllers: the write is fenced and also conditional
// on the record being unchanged since the read. One message cannot carry two
// per-subject checks, so the record's check is on the whole stream's last sequence: a
// write to any other key of the bucket in between costs a retry, which is rare in the
// buckets the controllers update this way (nodes; deployments when deleted).
func fencedUpdate[T any](ctx context.Context, s *Server, b fencedBucket, key string, fn func(cur *T) (*T, error)) (*T, error) {
	for attempt := 0; ; attempt++ {
		if attempt > 20 {
			return nil, fmt.Errorf("write %s %s: %w", b.name, key, errConflict)
		}
		last, err := lastSeq(ctx, b)
		if err != nil {
			return nil, err
		}
		var cur *T
		e, err := b.kv.Get(ctx, key)
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
		_, err = s.fencedPublish(ctx, b, key, data, "", jetstream.WithExpectLastSequence(last))
		if err == nil {
			return next, nil
		}
		if errors.Is(err, errDeposed) || !isCASConflict(err) || attempt >= 20 {
			return nil, err
		}
		casConflicts.Inc()
	}
}

// renewed extends the lease to heldUntil (monotonic).
func (l *leadership) renewed(heldUntil time.Time) {
	l.mu.Lock()
	if l.term != 0 {
		l.heldUntil = heldUntil
	}
	l.mu.Unlock()
}

// lastSeq reads a bucket's last sequence (of any key).
func lastSeq(ctx context.Context, b fencedBucket) (uint64, error) {
	st, err := b.kv.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", b.name, err)
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return 0, fmt.Errorf("read %s: unexpected status type %T", b.name, st)
	}
	return bs.StreamInfo().State.LastSeq, nil
}

// fencedDeleteAt deletes key, fenced, if it is still at revision rev; it reports
// whether it did. Like fencedUpdate, the record's check is on the bucket's last
// sequence.
func (s *Server) fencedDeleteAt(ctx context.Context, b fencedBucket, key string, rev uint64) (bool, error) {
	for attempt := 0; ; attempt++ {
		if attempt > 20 {
			return false, fmt.Errorf("write %s %s: %w", b.name, key, errConflict)
		}
		last, err := lastSeq(ctx, b)
		if err != nil {
			return false, err
		}
		e, err := b.kv.Get(ctx, key)
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
		_, err = s.fencedPublish(ctx, b, key, nil, "DEL", jetstream.WithExpectLastSequence(last))
		if err == nil {
			return true, nil
		}
		if errors.Is(err, errDeposed) || !isCASConflict(err) || attempt >= 20 {
			return false, err
		}
		casConflicts.Inc()
	}
}
