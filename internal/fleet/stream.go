package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/engine"
	"fermion.dev/fermion/internal/sli"
)

// The JetStream side: the two streams, the consumers every replica runs, and the
// leader's rollup writer.
const (
	// StreamRaw holds every node's raw summaries, as the agent protocol defines it
	// (api/v1: v1.StreamSLIs, subject v1.SubjectSLIStream(node), one
	// sli.EncodeSummary'd summary per message, Nats-Msg-Id v1.SLIMsgID).
	StreamRaw  = v1.StreamSLIs
	SubjectRaw = v1.SubjectSLIStreamAll
	// StreamRollup holds the leader's 5-minute downsamples per (app, version, node):
	// subject fermion.slis5m.<node>.
	StreamRollup     = "FERMION_SLIS_5M"
	SubjectRollup    = "fermion.slis5m.>"
	subjectRollupFmt = "fermion.slis5m.%s"

	// RawMaxAge and RollupMaxAge bound the streams by age; the byte bounds below
	// bound them by size whichever comes first (oldest dropped).
	RawMaxAge      = v1.SLIStreamMaxAge
	RollupMaxAge   = 30 * 24 * time.Hour
	RollupMaxBytes = 1 << 30
	// DuplicateWindow is how long JetStream drops a re-published Nats-Msg-Id.
	DuplicateWindow = v1.SLIStreamDuplicates
)

// RawSubject is the subject a node publishes its raw summaries on.
func RawSubject(node string) string { return v1.SubjectSLIStream(node) }

// RollupSubject is the subject the leader publishes a node's rollups on.
func RollupSubject(node string) string { return fmt.Sprintf(subjectRollupFmt, node) }

// MsgID is the Nats-Msg-Id of a raw summary, which JetStream dedupes for
// DuplicateWindow (the store dedupes for longer).
func MsgID(s *sli.Summary) string {
	return v1.SLIMsgID(s.Node, s.Seq, s.Key.Deployment, s.Key.Version, s.Key.Route)
}

// RollupStreamConfig is the rollup stream's configuration (this package owns it);
// replicas is 3 in a cluster. The raw stream is internal/sliingest's
// (sliingest.StreamConfig): the store only binds to it.
func RollupStreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{Name: StreamRollup, Subjects: []string{SubjectRollup}, Storage: jetstream.FileStorage,
		Replicas: replicas, MaxAge: RollupMaxAge, MaxBytes: RollupMaxBytes, Discard: jetstream.DiscardOld, Duplicates: DuplicateWindow}
}

// BindTimeout bounds how long OpenStreams waits for the raw stream's owner to create
// it.
const BindTimeout = 30 * time.Second

// OpenStreams creates the rollup stream when absent and binds to the raw one, waiting
// up to BindTimeout for its owner (the agents' receive path, internal/sliingest) to
// create it: one owner says how the raw stream is bounded, whichever side starts
// first.
func OpenStreams(ctx context.Context, js jetstream.JetStream, replicas int) error {
	if _, err := engine.OpenStream(ctx, js, RollupStreamConfig(replicas)); err != nil {
		return fmt.Errorf("open sli streams: %w", err)
	}
	deadline := time.Now().Add(BindTimeout)
	for wait := 20 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		_, err := js.Stream(ctx, StreamRaw)
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) || time.Now().After(deadline) {
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				err = fmt.Errorf("stream %s does not exist after %v: the server's SLI receive path creates it; start it first: %w", StreamRaw, BindTimeout, err)
			}
			return fmt.Errorf("open sli streams: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("open sli streams: waiting for %s: %w", StreamRaw, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// Ingest feeds a Store from both streams. Every replica runs one.
type Ingest struct {
	JS     jetstream.JetStream
	Store  *Store
	Logger *slog.Logger
	// Now is the clock summaries are judged by (default time.Now).
	Now func() time.Time
	// PruneEvery is how often the store is pruned (default 10 s).
	PruneEvery time.Duration
	// OnBad, when set, is called for a message that does not decode (counted by the
	// caller's metrics); the store keeps everything else.
	OnBad func(stream string, err error)
	// Ready, when set, holds Run back until it is closed: the control plane starts
	// the ingest once its SLO engine is up, so that the store tracks the latency
	// SLOs' thresholds (Config.Thresholds) before it reads any summary.
	Ready <-chan struct{}
	// Slowest, when set, keeps the slowest requests of the raw summaries the Store
	// accepts (slowest.go).
	Slowest *Slowest

	caughtUp [2]atomic.Bool
}

// CaughtUp reports whether both consumers have delivered every message that was in
// their stream when they started (the store answers for the whole history).
func (in *Ingest) CaughtUp() bool { return in.caughtUp[0].Load() && in.caughtUp[1].Load() }

// Run consumes both streams until ctx ends. Ordered consumers start from the first
// message, so a restarted replica rebuilds its store; they re-create themselves after
// a failover or a gap.
func (in *Ingest) Run(ctx context.Context) error {
	if in.Now == nil {
		in.Now = time.Now
	}
	if in.PruneEvery <= 0 {
		in.PruneEvery = 10 * time.Second
	}
	if in.Logger == nil {
		in.Logger = slog.New(slog.DiscardHandler)
	}
	if in.Ready != nil {
		select {
		case <-in.Ready:
		case <-ctx.Done():
			return nil
		}
	}
	in.Store.Prune(in.Now()) // reads Config.Thresholds
	errc := make(chan error, 2)
	for i, stream := range []string{StreamRaw, StreamRollup} {
		go func() { errc <- in.consume(ctx, i, stream) }()
	}
	t := time.NewTicker(in.PruneEvery)
	defer t.Stop()
	var errs []error
	for running := 2; running > 0; {
		select {
		case err := <-errc:
			running--
			if err != nil {
				errs = append(errs, err)
			}
		case <-t.C:
			in.Store.Prune(in.Now())
			if in.Slowest != nil {
				in.Slowest.Prune(in.Now())
			}
		}
	}
	return errors.Join(errs...)
}

func (in *Ingest) consume(ctx context.Context, i int, stream string) error {
	var next uint64 // the stream sequence to resume from; 0: the start
	for ctx.Err() == nil {
		cfg := jetstream.OrderedConsumerConfig{
			// Bounded, so that a consumer cut off from its stream (a replica killed, a
			// cluster without quorum) comes back here, where ctx is honoured, instead of
			// resetting forever inside the client.
			MaxResetAttempts: 5,
		}
		if next > 0 {
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, next
		}
		var cons jetstream.Consumer
		err := engine.Retry(ctx, 365*24*time.Hour, 5*time.Second, func(ctx context.Context) (err error) {
			cons, err = in.JS.OrderedConsumer(ctx, stream, cfg)
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("consume %s: %w", stream, err)
		}
		if info, err := cons.Info(ctx); err == nil && info.NumPending == 0 {
			in.caughtUp[i].Store(true)
		}
		it, err := cons.Messages()
		if err != nil {
			in.Logger.Warn("sli stream", "stream", stream, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		stop := context.AfterFunc(ctx, it.Stop)
		for {
			msg, err := it.Next(jetstream.NextContext(ctx))
			if err != nil {
				if ctx.Err() == nil {
					in.Logger.Warn("sli stream: consumer lost, re-creating it", "stream", stream, "err", err)
				}
				break
			}
			md, mdErr := msg.Metadata()
			if mdErr == nil {
				next = md.Sequence.Stream + 1
			}
			in.handle(stream, msg)
			if mdErr == nil && md.NumPending == 0 {
				in.caughtUp[i].Store(true)
				if stream == StreamRollup {
					// Read to the end: no re-published window can follow the
					// rollups held back until now.
					in.Store.FlushRollups()
				}
			}
		}
		stop()
		it.Stop()
	}
	return nil
}

func (in *Ingest) handle(stream string, msg jetstream.Msg) {
	s, err := sli.DecodeSummary(msg.Data())
	want := RawSubject(s.Node)
	if stream == StreamRollup {
		want = RollupSubject(s.Node)
	}
	if err == nil && msg.Subject() != want {
		// A node may publish only on its own subject; the payload must agree.
		err = fmt.Errorf("summary of node %q published on %s", s.Node, msg.Subject())
	}
	if err == nil && stream == StreamRollup {
		err = in.Store.AddRollup(&s, in.Now())
	}
	if err != nil {
		in.Logger.Warn("refused sli summary", "stream", stream, "subject", msg.Subject(), "err", err)
		if in.OnBad != nil {
			in.OnBad(stream, err)
		}
		return
	}
	if stream == StreamRaw {
		now := in.Now()
		if in.Store.Add(&s, now) == Accepted && in.Slowest != nil {
			in.Slowest.Add(&s, now)
		}
	}
}

// Rollups writes the leader's downsamples into StreamRollup.
type Rollups struct {
	JS    jetstream.JetStream
	Store *Store
	// Acting reports whether this replica may write now (it holds the leader lease).
	Acting func() bool
	Now    func() time.Time
	// Every is how often pending windows are published (default 30 s); Grace is how
	// long after a window closes it waits for stragglers (default 1 min).
	Every, Grace time.Duration
	Logger       *slog.Logger
}

// Run publishes pending rollups every Every while Acting, until ctx ends.
func (r *Rollups) Run(ctx context.Context) {
	if r.Every <= 0 {
		r.Every = 30 * time.Second
	}
	if r.Grace <= 0 {
		r.Grace = time.Minute
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(r.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if r.Acting() {
			if n, err := r.PublishOnce(ctx); err != nil {
				r.Logger.Warn("publish sli rollups", "published", n, "err", err)
			}
		}
	}
}

// PublishOnce publishes every pending rollup and reports how many it published. A
// window published twice (a failover, a backfill) is replaced by the store, never
// added twice.
func (r *Rollups) PublishOnce(ctx context.Context) (int, error) {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	grace := r.Grace
	if grace <= 0 {
		grace = time.Minute
	}
	n := 0
	var b []byte
	for _, s := range r.Store.PendingRollups(now(), grace) {
		b = sli.EncodeSummary(b[:0], s)
		m := nats.NewMsg(RollupSubject(s.Node))
		m.Data = b
		if _, err := r.JS.PublishMsg(ctx, m); err != nil {
			return n, fmt.Errorf("publish rollup of %s/%s on %s at %s: %w", s.Key.Deployment, s.Key.Version, s.Node, s.Start.Format(time.RFC3339), err)
		}
		r.Store.MarkPublished(&s)
		n++
	}
	return n, nil
}
