package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/controlplane/state"
)

// eventLog records lifecycle events in the event stream and reads them back. Every
// role records through its event func (eventLog.event); only the API reads.
type eventLog struct {
	cfg     *Config
	logger  *slog.Logger
	metrics *metrics
	st      *state.Store
}

// event records one lifecycle step. Recording is best effort: a failure is logged and
// counted, never returned, so that bookkeeping cannot fail the step it describes.
func (s *eventLog) event(ctx context.Context, e v1.Event) {
	e.Time = time.Now().UTC()
	e.Server = s.cfg.Name
	b, _ := json.Marshal(e)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := s.st.JS.Publish(ctx, "fermion.events."+e.Type, b); err != nil {
		s.logger.Warn("record event", "type", e.Type, "err", err)
		s.metrics.eventFailures.Inc()
		return
	}
	s.metrics.events.WithLabelValues(e.Type).Inc()
	s.logger.Info("event", "type", e.Type, "deployment", e.Deployment, "node", e.Node, "message", e.Message)
}

// eventFilter selects events.
type eventFilter struct {
	Deployment, Node, Type string
	Types                  []string // any of these types (with Type empty)
	Policy                 string   // only decisions of this policy
	Since                  time.Time
	After                  uint64
	Limit                  int
}

func (f *eventFilter) match(e *v1.Event) bool {
	return (f.Deployment == "" || e.Deployment == f.Deployment) && (f.Node == "" || e.Node == f.Node) &&
		(f.Policy == "" || (e.Violation != nil && e.Violation.Policy == f.Policy))
}

func (f *eventFilter) consumerConfig() jetstream.OrderedConsumerConfig {
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if f.Type != "" {
		cfg.FilterSubjects = []string{"fermion.events." + f.Type}
	}
	for _, t := range f.Types {
		cfg.FilterSubjects = append(cfg.FilterSubjects, "fermion.events."+t)
	}
	switch {
	case f.After > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, f.After+1
	case !f.Since.IsZero():
		t := f.Since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	return cfg
}

func decodeEvent(m jetstream.Msg) (v1.Event, bool) {
	var e v1.Event
	if json.Unmarshal(m.Data(), &e) != nil {
		return e, false
	}
	if md, err := m.Metadata(); err == nil {
		e.Seq = md.Sequence.Stream
	}
	return e, true
}

// events returns the last f.Limit events the filter selects, oldest first.
func (s *eventLog) events(ctx context.Context, f eventFilter) ([]v1.Event, error) {
	info, err := s.st.Events.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	out := []v1.Event{}
	if info.State.Msgs == 0 || (f.After > 0 && f.After >= info.State.LastSeq) {
		return out, nil
	}
	cons, err := s.st.Events.OrderedConsumer(ctx, f.consumerConfig())
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	for {
		batch, err := cons.FetchNoWait(500)
		if err != nil {
			return nil, fmt.Errorf("read events: %w", err)
		}
		n, last := 0, uint64(0)
		for m := range batch.Messages() {
			n++
			e, ok := decodeEvent(m)
			last = e.Seq
			if ok && f.match(&e) {
				out = append(out, e)
				if len(out) > f.Limit {
					out = out[1:]
				}
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, fmt.Errorf("read events: %w", err)
		}
		if n == 0 || last >= info.State.LastSeq {
			return out, nil
		}
	}
}

// followEvents calls fn for each event the filter selects from after (a sequence),
// as they are recorded, until ctx is done or fn fails. keepAlive is called when
// nothing happened for a while.
func (s *eventLog) followEvents(ctx context.Context, f eventFilter, fn func(v1.Event) error, keepAlive func() error) error {
	cons, err := s.st.Events.OrderedConsumer(ctx, f.consumerConfig())
	if err != nil {
		return fmt.Errorf("follow events: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("follow events: %w", err)
	}
	defer it.Stop()
	msgs := make(chan jetstream.Msg)
	errc := make(chan error, 1)
	go func() {
		for {
			m, err := it.Next()
			if err != nil {
				errc <- err
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	ka := time.NewTicker(15 * time.Second)
	defer ka.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("follow events: %w", err)
		case m := <-msgs:
			if e, ok := decodeEvent(m); ok && f.match(&e) {
				if err := fn(e); err != nil {
					return err
				}
			}
		case <-ka.C:
			if err := keepAlive(); err != nil {
				return err
			}
		}
	}
}
