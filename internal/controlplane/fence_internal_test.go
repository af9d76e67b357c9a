package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/controlplane/state"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/telemetry"
)

func startLeader(t *testing.T) *Server {
	t.Helper()
	s, err := Start(context.Background(), Config{DataDir: t.TempDir(), NATSListen: "127.0.0.1:0",
		LeaseRenew: 200 * time.Millisecond, LeaseLost: 2 * time.Second, LeaderTTL: 2 * time.Second, ResyncInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		if !s.Acting() {
			return errors.New("not acting yet")
		}
		return nil
	})
	return s
}

// TestDeposedLeaderCannotWrite fences the assignments bucket with a newer term, as a
// replica that took the lease over would: the old leader's next write is refused by
// the stream, writes nothing, and the old leader stops acting at once.
func TestDeposedLeaderCannotWrite(t *testing.T) {
	s := startLeader(t)
	ctx := context.Background()
	assignments := s.st.Assignments
	a := v1.Assignment{Deployment: "d", Node: "n"}
	if _, err := assignments.FencedPut(ctx, s.lead, "n.d", &a); err != nil {
		t.Fatalf("the leader's fenced write: %v", err)
	}
	rec, _ := json.Marshal(state.FenceRecord{Server: "usurper", Term: 1 << 40})
	if _, err := s.st.Assignments.KV().Put(ctx, state.FenceKey, rec); err != nil {
		t.Fatal(err)
	}
	_, err := assignments.FencedPut(ctx, s.lead, "n.e", &a)
	if !errors.Is(err, state.ErrDeposed) {
		t.Fatalf("write after being fenced out: %v, want %v", err, state.ErrDeposed)
	}
	if s.Acting() || s.IsLeader() {
		t.Fatal("still leading after the stream refused a write for its fence")
	}
	if _, err := s.st.Assignments.KV().Get(ctx, "n.e"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("the refused write is in the bucket: %v", err)
	}
	// It cannot fence the buckets again under its older lease either.
	if err := s.lead.Install(ctx, 1<<20); !errors.Is(err, state.ErrDeposed) {
		t.Fatalf("installing an older fence: %v", err)
	}
}

// TestPausedLeaderStepsDown makes the lease lapse on the leader's own clock, as a
// process paused past it finds on resuming: it stops acting before it writes, proves
// the lease again (no one else took it) and restarts its wait before judging nodes.
func TestPausedLeaderStepsDown(t *testing.T) {
	s := startLeader(t)
	ctx := context.Background()
	term := s.lead.Term()
	s.lead.Renewed(time.Now().Add(-time.Millisecond))
	s.lead.Deafened(time.Now().Add(-time.Hour))
	if s.Acting() {
		t.Fatal("acting with a lapsed lease")
	}
	if _, err := s.st.Placements.FencedPut(ctx, s.lead, "d", &v1.Placement{}); !errors.Is(err, state.ErrNotActing) {
		t.Fatalf("write with a lapsed lease: %v", err)
	}
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		now := s.lead.Term()
		if now == 0 || now == term || !s.Acting() {
			return errors.New("not leading under a new term yet")
		}
		return nil
	})
	if h := s.lead.HearingFor(time.Now()); h >= s.cfg.LeaseLost {
		t.Fatalf("hearing for %s after proving the lease again; want the wait restarted", h)
	}
}

// TestNotePause restarts the hearing window only for a gap beyond the slack.
func TestNotePause(t *testing.T) {
	s := &election{logger: telemetry.Discard, metrics: newMetrics(nil, nil), lead: &state.Fence{}}
	old := time.Now().Add(-time.Hour)
	for _, tc := range []struct {
		name  string
		gap   time.Duration
		reset bool
	}{
		{"on time", 500 * time.Millisecond, false},
		{"late within the slack", 500*time.Millisecond + pauseSlack, false},
		{"paused", 45 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.lead.Deafened(old)
			s.notePause(tc.gap, 500*time.Millisecond)
			if got := s.lead.HearingFor(time.Now()) < time.Minute; got != tc.reset {
				t.Fatalf("window restarted = %v, want %v", got, tc.reset)
			}
		})
	}
}

// TestClusterFencedWritesInParallel writes many fenced records at once on the leader of
// a three-replica cluster, as a placement on many nodes does: a replicated stream lets
// one expected-sequence check on the fence's subject be in flight at a time, and every
// write must still land, in turn.
func TestClusterFencedWritesInParallel(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	ports := fermiontest.Ports(t, 3)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	servers := make([]*Server, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		dir := t.TempDir()
		wg.Go(func() {
			servers[i], errs[i] = Start(context.Background(), Config{Name: fmt.Sprintf("cp-%d", i), DataDir: dir, NATSListen: "127.0.0.1:0",
				ClusterName: "fence-test", ClusterListen: fmt.Sprintf("127.0.0.1:%d", ports[i]), Routes: routes, ClusterSecret: "fence-test-secret",
				LeaseRenew: 200 * time.Millisecond, LeaseLost: 2 * time.Second, LeaderTTL: 2 * time.Second, ResyncInterval: time.Second})
		})
	}
	wg.Wait()
	for _, s := range servers {
		if s != nil {
			t.Cleanup(s.Close)
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	var leader *Server
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		for _, s := range servers {
			if s.Acting() {
				leader = s
				return nil
			}
		}
		return errors.New("no acting leader yet")
	})
	ctx := context.Background()
	b := leader.st.Assignments
	const n = 64
	werrs := make([]error, n)
	sem := make(chan struct{}, assignmentWriters)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			_, werrs[i] = b.FencedPut(ctx, leader.lead, fmt.Sprintf("node-%d.d", i), &v1.Assignment{Deployment: "d", Node: fmt.Sprintf("node-%d", i)})
		})
	}
	wg.Wait()
	if err := errors.Join(werrs...); err != nil {
		t.Fatalf("parallel fenced writes on the leader: %v", err)
	}
	if !leader.Acting() {
		t.Fatal("the leader stepped down over its own writes")
	}
}
