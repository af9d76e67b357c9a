package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/sli"
)

const (
	// DefaultSLIBufferBytes bounds the summaries an agent keeps while the control
	// plane is away: at 20 versions and 500 B per summary, about 2 h of 10 s intervals.
	DefaultSLIBufferBytes = 8 << 20
	// sliBatchBytes bounds one SLIBatch's summaries (encoded), well under the agent
	// protocol's 1 MiB message limit once base64'd in JSON.
	sliBatchBytes = 512 << 10
	// sliBatchesPerWake is how many batches one wake of the sender sends before it
	// checks whether it should stop.
	sliBatchesPerWake = 4
	// sliMinSummaryBytes is the smallest summary's size, which with the byte bound
	// gives the buffer's count bound.
	sliMinSummaryBytes = 32
)

// Results of fermion_sli_sent_total.
const (
	sliAccepted = "accepted" // stored by the control plane
	sliRefused  = "refused"  // refused for good (malformed, unknown version, clock skew…) and dropped
	sliFailed   = "failed"   // not acknowledged (unreachable, store unavailable): kept, sent again
)

type sliMetrics struct {
	bufferBytes prometheus.Gauge
	dropped     prometheus.Counter
	sent        *prometheus.CounterVec // result
}

func newSLIMetrics(reg prometheus.Registerer) (*sliMetrics, error) {
	m := &sliMetrics{
		bufferBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fermion_sli_buffer_bytes",
			Help: "Encoded SLI summaries the agent holds that the control plane has not acknowledged (bounded by --sli-buffer).",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "fermion_sli_dropped_total",
			Help: "SLI summaries the agent dropped, oldest first, to keep its buffer within --sli-buffer while the control plane was away.",
		}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fermion_sli_sent_total",
			Help: "SLI summaries sent to the control plane, by result: accepted (stored), refused (dropped; the server says why in the agent's log), failed (not acknowledged; sent again).",
		}, []string{"result"}),
	}
	for _, r := range []string{sliAccepted, sliRefused, sliFailed} {
		m.sent.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.bufferBytes, err = register(reg, m.bufferBytes); err != nil {
		return nil, err
	}
	if m.dropped, err = register(reg, m.dropped); err != nil {
		return nil, err
	}
	if m.sent, err = register(reg, m.sent); err != nil {
		return nil, err
	}
	return m, nil
}

// sliSender flushes the data plane's aggregator at every interval boundary into a
// bounded buffer (the flush goroutine) and sends the buffer, oldest first, whenever the
// node is registered (the send goroutine). Two goroutines, so that a send waiting for an
// answer that a partition swallowed never delays a flush: every interval stays its own.
// It removes from the buffer only what the server says it is done with, so a partition
// leaves no gap: the backlog drains in order on reconnect (backfill), and the server
// dedupes what it had already stored.
//
// Lock order: mu is a leaf, never held while sending.
type sliSender struct {
	n   *Node
	agg *sli.Aggregator
	m   *sliMetrics

	mu  sync.Mutex
	buf *sli.Buffer // guarded by mu

	// Send goroutine only. buffering is set from the first send that could not reach
	// the control plane until the backlog has drained; it makes the sender log once
	// each way.
	buffering      bool
	bufferingSince time.Time
	sentSince      int // summaries acknowledged since buffering started
	refusals       int // refusals logged, for loud()
}

// sliLoop runs the SLI sender's two goroutines until ctx is done. It returns at once
// when the data plane aggregates no SLIs (telemetry off).
func (n *Node) sliLoop(ctx context.Context) {
	agg := n.cfg.DataPlane.SLIs()
	if agg == nil {
		return
	}
	s := &sliSender{n: n, agg: agg, buf: n.sliBuf, m: n.sliMetrics}
	var wg sync.WaitGroup
	wg.Go(func() { s.flushLoop(ctx) })
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-n.sliKick:
			}
			s.send(ctx)
		}
	})
	wg.Wait()
}

// flushLoop flushes at every interval boundary and wakes the sender.
func (s *sliSender) flushLoop(ctx context.Context) {
	n := s.n
	iv := s.agg.Interval()
	next := sli.Boundary(time.Now(), iv).Add(iv)
	timer := time.NewTimer(time.Until(next))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			end := next
			if now := time.Now(); now.Sub(next) >= iv {
				// Late by a whole interval (a stalled process, a clock step): close one
				// longer interval rather than leave a gap.
				end = sli.Boundary(now, iv)
			}
			s.flush(end)
			next = end.Add(iv)
			timer.Reset(time.Until(next))
			n.signal(n.sliKick)
		}
	}
}

// flush closes the open interval at end and buffers its summaries.
func (s *sliSender) flush(end time.Time) {
	n := s.n
	n.cfg.DataPlane.slis.observePools(time.Now())
	if n.cfg.TelemetryBacklog != nil {
		s.agg.SetTelemetryBacklog(uint64(max(n.cfg.TelemetryBacklog(), 0)))
	}
	sums := s.agg.Flush(end)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sum := range sums {
		sum.Node = n.cfg.Name // the aggregator may have been made before the node was named
		dropped, err := s.buf.Push(sli.EncodeSummary(nil, sum))
		if err != nil {
			s.m.dropped.Inc()
			n.log.Warn("SLI summary dropped", "deployment", sum.Key.Deployment, "version", sum.Key.Version, "err", err)
			continue
		}
		if dropped > 0 {
			s.m.dropped.Add(float64(dropped))
		}
	}
	s.m.bufferBytes.Set(float64(s.buf.Bytes()))
}

// send sends up to sliBatchesPerWake batches, oldest first, and kicks the loop again
// when more are waiting.
func (s *sliSender) send(ctx context.Context) {
	n := s.n
	for range sliBatchesPerWake {
		s.mu.Lock()
		items, dropped0 := s.oldestLocked(), s.buf.Dropped()
		s.mu.Unlock()
		if len(items) == 0 {
			break
		}
		nc := n.sliConn.Load()
		if nc == nil || !n.Connected() || !nc.IsConnected() {
			s.startBuffering("not connected to the control plane")
			return
		}
		if !n.sliExemplars.Load() {
			items = withoutExtensions(items)
		}
		var reply v1.SLIBatchReply
		_, err := request(ctx, nc, v1.SubjectSLIs(n.cfg.Name), v1.SLIBatch{SentAt: time.Now(), Summaries: items}, &reply)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.m.sent.WithLabelValues(sliFailed).Add(float64(len(items)))
			s.startBuffering(err.Error())
			return
		}
		done := min(max(reply.Done, 0), len(items))
		s.mu.Lock()
		// Entries the flush dropped meanwhile were the oldest, ours: ack only the rest.
		s.buf.Ack(done - int(s.buf.Dropped()-dropped0))
		s.m.bufferBytes.Set(float64(s.buf.Bytes()))
		s.mu.Unlock()
		s.sentSince += done
		s.m.sent.WithLabelValues(sliAccepted).Add(float64(reply.Accepted))
		s.m.sent.WithLabelValues(sliRefused).Add(float64(len(reply.Refused)))
		for _, r := range reply.Refused {
			if s.refusals++; loud(s.refusals) {
				n.log.Warn("the control plane refused an SLI summary; dropped", "reason", r.Reason, "err", r.Message, "refusals", s.refusals)
			}
		}
		if again := strippedRefusals(items, reply.Refused); len(again) > 0 {
			s.resend(ctx, nc, again)
		}
		if reply.Error != nil || done < len(items) {
			s.m.sent.WithLabelValues(sliFailed).Add(float64(len(items) - done))
			s.startBuffering(fmt.Sprintf("the control plane stored %d of %d: %v", done, len(items), reply.Error))
			return
		}
	}
	s.mu.Lock()
	left, dropped := s.buf.Len(), s.buf.Dropped()
	s.mu.Unlock()
	switch {
	case left > 0:
		n.signal(n.sliKick) // more to send: go round again
	case s.buffering:
		n.log.Info("SLI backfill finished", "summaries", s.sentSince, "after", time.Since(s.bufferingSince).Round(time.Millisecond),
			"droppedEver", dropped)
		s.buffering = false
	}
}

// oldestLocked returns the next batch: the oldest summaries within the batch bounds.
// The slices are the buffer's, never modified: safe to read after s.mu is released.
func (s *sliSender) oldestLocked() [][]byte {
	all := s.buf.Oldest(v1.MaxSLIBatchSummaries)
	size := 0
	for i, b := range all {
		if size += len(b); size > sliBatchBytes && i > 0 {
			return all[:i]
		}
	}
	return all
}

// strippedRefusals returns, without their extensions, the summaries of items refused as
// malformed that carried extensions: what a replica that predates them (a cluster
// being upgraded one replica at a time) refuses, and would take without them.
func strippedRefusals(items [][]byte, refused []v1.SLIRefusal) [][]byte {
	var out [][]byte
	for _, r := range refused {
		if r.Reason != v1.SLIRefusedMalformed || r.Index < 0 || r.Index >= len(items) {
			continue
		}
		if base := sli.WithoutExtensions(items[r.Index]); len(base) < len(items[r.Index]) {
			out = append(out, base)
		}
	}
	return out
}

// resend sends summaries once more, best effort: they were refused, so they are no
// longer in the buffer, and failing again only counts them.
func (s *sliSender) resend(ctx context.Context, nc *nats.Conn, items [][]byte) {
	var reply v1.SLIBatchReply
	if _, err := request(ctx, nc, v1.SubjectSLIs(s.n.cfg.Name), v1.SLIBatch{SentAt: time.Now(), Summaries: items}, &reply); err != nil || reply.Error != nil {
		return
	}
	// They were counted refused once; count what the second try stored.
	s.m.sent.WithLabelValues(sliAccepted).Add(float64(reply.Accepted))
}

// withoutExtensions returns items as a server that predates summary extensions reads
// them; the buffer's own slices are left as they are.
func withoutExtensions(items [][]byte) [][]byte {
	out := make([][]byte, len(items))
	for i, b := range items {
		out[i] = sli.WithoutExtensions(b)
	}
	return out
}

func (s *sliSender) startBuffering(why string) {
	if s.buffering {
		return
	}
	s.buffering, s.bufferingSince, s.sentSince = true, time.Now(), 0
	s.mu.Lock()
	n, b := s.buf.Len(), s.buf.Bytes()
	s.mu.Unlock()
	s.n.log.Warn("buffering SLI summaries until the control plane takes them", "why", why, "buffered", n, "bufferBytes", b)
}
