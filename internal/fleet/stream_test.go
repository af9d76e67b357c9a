package fleet

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"fermion.dev/fermion/internal/engine"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/slo"
)

func startEngine(t *testing.T) jetstream.JetStream {
	t.Helper()
	eng, err := engine.Start(context.Background(), engine.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	return eng.JetStream()
}

// createRawStream stands in for the raw stream's owner (internal/sliingest, which this
// package may not import): the store binds to the stream, never creates it. Only the
// duplicate window matters to these tests; the owner's full settings are checked in
// internal/controlplane (TestSLIStreamHasOneOwner).
func createRawStream(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: StreamRaw,
		Subjects: []string{SubjectRaw}, Duplicates: DuplicateWindow}); err != nil {
		t.Fatal(err)
	}
}

// Publish puts s into the raw stream as an agent's receiver does.
func Publish(ctx context.Context, js jetstream.JetStream, s *sli.Summary) error {
	m := nats.NewMsg(RawSubject(s.Node))
	m.Data = sli.EncodeSummary(nil, *s)
	m.Header.Set(jetstream.MsgIDHeader, MsgID(s))
	_, err := js.PublishMsg(ctx, m)
	return err
}

// runIngest runs an Ingest over a new store with clock now until the test ends.
func runIngest(t *testing.T, js jetstream.JetStream, now func() time.Time) (*Store, *Ingest, *badLog) {
	t.Helper()
	st := newStore(t)
	bad := &badLog{}
	in := &Ingest{JS: js, Store: st, Now: now, OnBad: bad.add}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ingest: %v", err)
		}
	})
	return st, in, bad
}

type badLog struct {
	mu   sync.Mutex
	errs []error
}

func (b *badLog) add(_ string, err error) {
	b.mu.Lock()
	b.errs = append(b.errs, err)
	b.mu.Unlock()
}

func (b *badLog) n() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.errs)
}

// TestStreamRebuild: every replica's store is built from the streams, so a restart
// answers the same, and a window older than the raw stream survives as a rollup.
func TestStreamRebuild(t *testing.T) {
	ctx := context.Background()
	js := startEngine(t)
	// The store waits for the raw stream's owner, whichever starts first.
	opened := make(chan error, 1)
	go func() { opened <- OpenStreams(ctx, js, 1) }()
	createRawStream(t, js)
	if err := <-opened; err != nil {
		t.Fatal(err)
	}
	if err := OpenStreams(ctx, js, 1); err != nil { // idempotent
		t.Fatal(err)
	}
	wall := time.Now()
	base := sli.Boundary(wall, DefaultWidth).Add(-10 * time.Minute)
	for i := range 30 {
		s := summary("n1", "a", "v1", "/", base.Add(time.Duration(i)*iv), 9, 1, time.Millisecond)
		if err := Publish(ctx, js, s); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 { // re-sent: deduped by JetStream (same Nats-Msg-Id)…
			if err := Publish(ctx, js, s); err != nil {
				t.Fatal(err)
			}
		}
		if i == 5 { // …and by the store (a backfill after the duplicate window)
			m := nats.NewMsg(RawSubject("n1"))
			m.Data = sli.EncodeSummary(nil, *s)
			if _, err := js.PublishMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Malformed input and a node speaking for another are refused; the rest is kept.
	for _, m := range []struct {
		subj string
		data []byte
	}{
		{RawSubject("n1"), []byte("not a summary")},
		{RawSubject("n1"), sli.EncodeSummary(nil, *summary("n2", "a", "v1", "/", base, 1, 0, time.Millisecond))},
	} {
		if _, err := js.Publish(ctx, m.subj, m.data); err != nil {
			t.Fatal(err)
		}
	}
	now := func() time.Time { return wall }
	st, in, bad := runIngest(t, js, now)
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if s := st.Stats(); s.Raw["accepted"] != 30 || s.Raw["duplicate"] != 1 || bad.n() != 2 || !in.CaughtUp() {
			return fmt.Errorf("stats %v, %d refused, caught up %v", s.Raw, bad.n(), in.CaughtUp())
		}
		return nil
	})
	q := Query{By: []string{"app", "version", "node"}, Window: time.Hour}
	want := st.Query(q, wall, nil)
	if len(want.Groups) != 1 || want.Groups[0].Requests != 300 || want.Groups[0].Errors != 30 {
		t.Fatalf("groups %+v", want.Groups)
	}

	// The leader publishes the closed window; every replica reads it back.
	r := &Rollups{JS: js, Store: st, Acting: func() bool { return true }, Now: now}
	if n, err := r.PublishOnce(ctx); err != nil || n != 1 {
		t.Fatalf("published %d rollups: %v", n, err)
	}
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if s := st.Stats(); s.Rollups["accepted"] != 1 {
			return fmt.Errorf("rollups %v", s.Rollups)
		}
		return nil
	})
	if n, _ := r.PublishOnce(ctx); n != 0 {
		t.Fatalf("re-published %d unchanged rollups", n)
	}

	t.Run("restart", func(t *testing.T) {
		st2, in2, _ := runIngest(t, js, now)
		fermiontest.WaitFor(t, 10*time.Second, func() error {
			if !in2.CaughtUp() {
				return fmt.Errorf("not caught up: %v", st2.Stats())
			}
			return nil
		})
		got := st2.Query(q, wall, nil)
		if len(got.Groups) != 1 || !reflect.DeepEqual(got.Groups[0], want.Groups[0]) {
			t.Fatalf("after a restart %+v, want %+v", got.Groups, want.Groups)
		}
		// Nothing changed, so a new leader has nothing to publish.
		r2 := &Rollups{JS: js, Store: st2, Acting: func() bool { return true }, Now: now}
		if n, err := r2.PublishOnce(ctx); err != nil || n != 0 {
			t.Fatalf("a new leader published %d rollups: %v", n, err)
		}
	})
	t.Run("restart after the raw stream's age", func(t *testing.T) {
		later := wall.Add(7 * time.Hour)
		st3, in3, _ := runIngest(t, js, func() time.Time { return later })
		fermiontest.WaitFor(t, 10*time.Second, func() error {
			if !in3.CaughtUp() {
				return fmt.Errorf("not caught up: %v", st3.Stats())
			}
			return nil
		})
		if s := st3.Stats(); s.Raw["too_old"] != 31 || s.Rollups["accepted"] != 1 {
			t.Fatalf("stats %+v", s)
		}
		spec := &slo.Spec{App: "a", SLI: slo.SLI{Kind: slo.Availability}, Scope: slo.Scope{Per: slo.ScopeNode}}
		from := later.Add(-8 * time.Hour)
		ser := st3.Series(spec, from, later)
		if len(ser) != 1 || ser[0].Scope != "n1" {
			t.Fatalf("series %v", ser)
		}
		// The rollup holds the whole first window: 30 intervals.
		if c := st3.Counts(ser[0], spec.SLI, from, later); c.Total != 300 || c.Good != 270 {
			t.Fatalf("counts %+v from the rollup, want 270/300", c)
		}
	})
}

// TestIngestStopsWithItsStreamGone: a replica whose NATS went away still stops when
// asked (the consumer's resets are bounded and ctx is honoured between them).
func TestIngestStopsWithItsStreamGone(t *testing.T) {
	eng, err := engine.Start(context.Background(), engine.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	createRawStream(t, eng.JetStream())
	if err := OpenStreams(context.Background(), eng.JetStream(), 1); err != nil {
		t.Fatal(err)
	}
	st := newStore(t)
	in := &Ingest{JS: eng.JetStream(), Store: st}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if !in.CaughtUp() {
			return fmt.Errorf("not caught up")
		}
		return nil
	})
	eng.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ingest did not stop 30 s after its context ended")
	}
}
