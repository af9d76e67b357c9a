package sliingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/engine"
	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/telemetry"
)

// Defaults.
const (
	// DefaultSkewBound is how far a node's clock may be from the server's.
	DefaultSkewBound = time.Minute
	// DefaultGrace is how long after a version left a node's assignments (as last seen
	// by this replica) summaries of it are still accepted: the intervals that were
	// open at the switch, and a short backlog.
	DefaultGrace = 2 * time.Minute
	// DefaultMaxBytes bounds the stream: at 500 B per summary, 2 million summaries,
	// 1,000 nodes × 20 versions for 100 intervals of 10 s. Raw summaries serve the
	// short windows; the store keeps the downsampled ones.
	DefaultMaxBytes = 1 << 30
)

// VersionRef is a version a node is assigned: its deployment, app and app version.
// A summary's Key.Deployment may name either the deployment or the app.
type VersionRef struct {
	Deployment, App, Version string
}

// Config configures an Ingest.
type Config struct {
	JetStream jetstream.JetStream
	// Replicas of the stream: 3 in a cluster, like the KV buckets.
	Replicas int
	// MaxBytes bounds the stream (default DefaultMaxBytes); the oldest go first.
	MaxBytes int64
	// Versions returns what node is assigned now. Required.
	Versions func(node string) []VersionRef
	// Now is the server's clock (default time.Now).
	Now       func() time.Time
	SkewBound time.Duration // default DefaultSkewBound
	Grace     time.Duration // default DefaultGrace
	Logger    *slog.Logger
	Metrics   prometheus.Registerer // nil: not exported
}

// Ingest receives SLI batches. Handle is safe for concurrent use.
type Ingest struct {
	cfg      Config
	log      *slog.Logger
	refused  *prometheus.CounterVec
	accepted prometheus.Counter

	mu     sync.Mutex // leaf
	recent map[string]map[verKey]time.Time
	swept  time.Time // last sweep of every node's recent versions
}

// verKey is a (deployment or app, version) pair.
type verKey struct{ name, version string }

// Open creates (or opens) the stream and returns an Ingest.
func Open(ctx context.Context, cfg Config) (*Ingest, error) {
	switch {
	case cfg.JetStream == nil:
		return nil, errors.New("open sli ingest: Config.JetStream is nil")
	case cfg.Versions == nil:
		return nil, errors.New("open sli ingest: Config.Versions is nil")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SkewBound <= 0 {
		cfg.SkewBound = DefaultSkewBound
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	cfg.Replicas = max(cfg.Replicas, 1)
	if cfg.Logger == nil {
		cfg.Logger = telemetry.Discard
	}
	if err := EnsureStream(ctx, cfg.JetStream, StreamConfig(cfg.Replicas, cfg.MaxBytes)); err != nil {
		return nil, fmt.Errorf("open sli ingest: %w", err)
	}
	in := &Ingest{cfg: cfg, log: cfg.Logger, recent: map[string]map[verKey]time.Time{},
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fermion_sli_refused_total",
			Help: "SLI summaries from agents the control plane refused, by reason (malformed, too_large, foreign_node, unknown_version, clock_skew, too_old).",
		}, []string{"reason"}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fermion_sli_accepted_total",
			Help: "SLI summaries from agents stored in the FERMION_SLIS stream (re-sent duplicates included).",
		}),
	}
	for _, r := range v1.SLIRefusedReasons {
		in.refused.WithLabelValues(r)
	}
	if cfg.Metrics != nil {
		var err error
		if in.refused, err = telemetry.Register(cfg.Metrics, in.refused); err != nil {
			return nil, fmt.Errorf("open sli ingest: %w", err)
		}
		if in.accepted, err = telemetry.Register(cfg.Metrics, in.accepted); err != nil {
			return nil, fmt.Errorf("open sli ingest: %w", err)
		}
	}
	return in, nil
}

// StreamConfig is the configuration of v1.StreamSLIs: file storage, bounded by age
// and bytes (oldest dropped), deduplicated over v1.SLIStreamDuplicates. This package
// is the stream's one owner: it creates it and brings an existing one to this
// configuration (EnsureStream); the fleet store only binds to it.
func StreamConfig(replicas int, maxBytes int64) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:       v1.StreamSLIs,
		Subjects:   []string{v1.SubjectSLIStreamAll},
		Storage:    jetstream.FileStorage,
		Replicas:   replicas,
		MaxAge:     v1.SLIStreamMaxAge,
		MaxBytes:   maxBytes,
		Discard:    jetstream.DiscardOld,
		Duplicates: v1.SLIStreamDuplicates,
	}
}

// EnsureStream creates the stream cfg describes, or updates an existing one whose
// settings differ (a stream another version of the server created, or one made with
// other bounds), so that the stream is as its owner says whoever reached JetStream
// first. Its storage cannot change in place: a stream on other storage is an error
// naming both.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) error {
	var storage error // not worth retrying
	err := engine.Retry(ctx, 30*time.Second, 2*time.Second, func(ctx context.Context) error {
		st, err := js.Stream(ctx, cfg.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			_, err = js.CreateStream(ctx, cfg)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				return fmt.Errorf("create stream %s: created meanwhile; checking it again: %w", cfg.Name, err)
			}
			return err
		}
		if err != nil {
			return fmt.Errorf("look up stream %s: %w", cfg.Name, err)
		}
		have := st.CachedInfo().Config
		if have.Storage != cfg.Storage {
			storage = fmt.Errorf("stream %s is on %v storage, want %v: storage cannot change in place; delete the stream (its last 6 h of raw summaries go with it; the rollups keep older windows) and restart the server", cfg.Name, have.Storage, cfg.Storage)
			return nil
		}
		if streamMatches(have, cfg) {
			return nil
		}
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("update stream %s to its owner's settings: %w", cfg.Name, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
	}
	return storage
}

// streamMatches reports whether have already has every setting want names.
func streamMatches(have, want jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, want.Subjects) && have.MaxAge == want.MaxAge && have.MaxBytes == want.MaxBytes &&
		have.Discard == want.Discard && have.Duplicates == want.Duplicates && have.Replicas == max(want.Replicas, 1)
}

// Handle answers one batch from node (the node the subject names, which NATS
// permissions tie to the sender's credentials).
func (in *Ingest) Handle(ctx context.Context, node string, data []byte) v1.SLIBatchReply {
	var batch v1.SLIBatch
	if e := decodeStrict(data, &batch); e != nil {
		return v1.SLIBatchReply{Error: e}
	}
	switch {
	case len(batch.Summaries) > v1.MaxSLIBatchSummaries:
		return v1.SLIBatchReply{Error: &v1.Error{Code: v1.CodeTooLarge, Field: "summaries",
			Message: fmt.Sprintf("%d summaries in one batch, over %d: send fewer per message", len(batch.Summaries), v1.MaxSLIBatchSummaries)}}
	case batch.SentAt.IsZero():
		return v1.SLIBatchReply{Error: &v1.Error{Code: v1.CodeBadRequest, Field: "sentAt", Message: "sentAt is missing: set it to the agent's clock when sending"}}
	}
	now := in.cfg.Now()
	known := in.versions(node, now)
	offset := batch.SentAt.Sub(now)
	skewed := offset > in.cfg.SkewBound || offset < -in.cfg.SkewBound
	if skewed {
		in.log.Warn("refusing SLI summaries from a node whose clock is off; fix its time sync (NTP)",
			"node", node, "offset", offset.Round(time.Millisecond), "bound", in.cfg.SkewBound)
	}

	reply := v1.SLIBatchReply{}
	type pending struct {
		index int
		fut   jetstream.PubAckFuture
	}
	var pubs []pending
	refuse := func(i int, reason, msg string) {
		in.refused.WithLabelValues(reason).Inc()
		reply.Refused = append(reply.Refused, v1.SLIRefusal{Index: i, Reason: reason, Message: msg})
	}
	stop := len(batch.Summaries) // index of the first summary not handled
	for i, b := range batch.Summaries {
		if skewed {
			refuse(i, v1.SLIRefusedClockSkew, fmt.Sprintf("the node's clock is %s off the server's (bound %s); fix its time sync (NTP)", offset.Round(time.Millisecond), in.cfg.SkewBound))
			continue
		}
		s, reason, msg := in.check(node, b, now, known)
		if reason != "" {
			refuse(i, reason, msg)
			continue
		}
		m := nats.NewMsg(v1.SubjectSLIStream(node))
		m.Data = b
		fut, err := in.cfg.JetStream.PublishMsgAsync(m, jetstream.WithMsgID(v1.SLIMsgID(s.Node, s.Seq, s.Key.Deployment, s.Key.Version, s.Key.Route)))
		if err != nil {
			stop = i
			reply.Error = &v1.Error{Code: v1.CodeUnavailable, Message: "store sli summary: " + err.Error()}
			break
		}
		pubs = append(pubs, pending{i, fut})
	}
	// Wait for every publish; the first failure ends what is done, in order.
	for _, p := range pubs {
		if p.index >= stop {
			break
		}
		select {
		case <-p.fut.Ok():
			reply.Accepted++
			in.accepted.Inc()
		case err := <-p.fut.Err():
			stop = p.index
			reply.Error = &v1.Error{Code: v1.CodeUnavailable, Message: "store sli summary: " + err.Error()}
		case <-ctx.Done():
			stop = p.index
			reply.Error = &v1.Error{Code: v1.CodeUnavailable, Message: "store sli summary: " + ctx.Err().Error()}
		}
	}
	// Refusals past a failure are not final: the agent sends those summaries again.
	kept := reply.Refused[:0]
	for _, r := range reply.Refused {
		if r.Index < stop {
			kept = append(kept, r)
		}
	}
	reply.Refused = kept
	reply.Done = stop
	return reply
}

// check decodes and checks one summary; a non-empty reason refuses it.
func (in *Ingest) check(node string, b []byte, now time.Time, known map[verKey]time.Time) (sli.Summary, string, string) {
	if len(b) > sli.MaxSummaryBytes {
		return sli.Summary{}, v1.SLIRefusedTooLarge, fmt.Sprintf("%d bytes, over the %d-byte limit for one summary", len(b), sli.MaxSummaryBytes)
	}
	s, err := sli.DecodeSummary(b)
	if err != nil {
		return s, v1.SLIRefusedMalformed, err.Error()
	}
	switch {
	case s.Node != node:
		return s, v1.SLIRefusedForeignNode, fmt.Sprintf("summary for node %q sent by node %q: a node reports only its own", s.Node, node)
	case s.End.After(now.Add(in.cfg.SkewBound)):
		return s, v1.SLIRefusedClockSkew, fmt.Sprintf("interval ends at %s, %s after the server's clock (bound %s): the node's clock was ahead",
			s.End.UTC().Format(time.RFC3339), s.End.Sub(now).Round(time.Millisecond), in.cfg.SkewBound)
	case s.End.Before(now.Add(-v1.SLIStreamMaxAge)):
		return s, v1.SLIRefusedTooOld, fmt.Sprintf("interval ended %s ago, longer than the %s raw summaries are kept", now.Sub(s.End).Round(time.Second), v1.SLIStreamMaxAge)
	}
	last, ok := known[verKey{s.Key.Deployment, s.Key.Version}]
	if !ok || (!last.Equal(now) && s.End.After(last.Add(in.cfg.Grace))) {
		return s, v1.SLIRefusedUnknownVersion, fmt.Sprintf("node %s does not run version %q of %q", node, s.Key.Version, s.Key.Deployment)
	}
	return s, "", ""
}

// versions returns what node runs now (at now) and what it ran lately (when this
// replica last saw it assigned), and remembers the former for Grace.
func (in *Ingest) versions(node string, now time.Time) map[verKey]time.Time {
	cur := in.cfg.Versions(node)
	in.mu.Lock()
	defer in.mu.Unlock()
	rec := in.recent[node]
	if rec == nil {
		rec = map[verKey]time.Time{}
	}
	for k, t := range rec {
		if now.Sub(t) > in.cfg.Grace {
			delete(rec, k)
		}
	}
	for _, v := range cur {
		rec[verKey{v.Deployment, v.Version}] = now
		rec[verKey{v.App, v.Version}] = now
	}
	if len(rec) == 0 {
		delete(in.recent, node)
	} else {
		in.recent[node] = rec
	}
	// Nodes that stopped sending (removed, renamed) are swept now and then, so the
	// table stays the size of the live fleet.
	if now.Sub(in.swept) > in.cfg.Grace {
		in.swept = now
		for n, r := range in.recent {
			for k, t := range r {
				if now.Sub(t) > in.cfg.Grace {
					delete(r, k)
				}
			}
			if len(r) == 0 {
				delete(in.recent, n)
			}
		}
	}
	out := make(map[verKey]time.Time, len(rec))
	for k, t := range rec {
		out[k] = t
	}
	return out
}

func decodeStrict(data []byte, v any) *v1.Error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &v1.Error{Code: v1.CodeBadRequest, Message: "decode sli batch: " + err.Error()}
	}
	if dec.More() {
		return &v1.Error{Code: v1.CodeBadRequest, Message: "decode sli batch: trailing data after the JSON value"}
	}
	return nil
}
