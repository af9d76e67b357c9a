package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/controlplane/state"
)

const leaderKey = "controllers"

// election holds or seeks the leader lease and moves the fence with it: the
// controllers act only while it leads (Acting), and everything else reads who leads
// from it.
type election struct {
	cfg     *Config
	logger  *slog.Logger
	metrics *metrics
	st      *state.Store
	lead    *state.Fence
	event   func(context.Context, v1.Event)
	// elected is called once this replica leads and its fences are in place;
	// steppedDown when it stops leading. Both must not block.
	elected, steppedDown func()

	leader     atomic.Bool
	leaderName atomic.Value // string
}

func newElection(cfg *Config, logger *slog.Logger, m *metrics, st *state.Store) *election {
	e := &election{cfg: cfg, logger: logger, metrics: m, st: st}
	e.leaderName.Store("")
	e.lead = state.NewFence(st, cfg.Name, e.stepDown)
	return e
}

// Acting reports whether the controllers may decide now: this replica leads, its
// fences are in place and its lease is provably current on its own clock.
func (s *election) Acting() bool { return s.leader.Load() && s.lead.Acting(time.Now()) }

type leaderRecord struct {
	Server  string    `json:"server"`
	Renewed time.Time `json:"renewed"`
}

// leaderLoop holds or seeks the leader lease: a key in a bucket whose entries expire
// LeaderTTL after their last write. The holder renews it with compare-and-swap every
// LeaderTTL/4; when the key has expired, any replica may create it.
//
// The holder counts its lease on its own monotonic clock from when it *sent* the
// renewal that succeeded: it is provably held until sent + 3/4 TTL (the bucket keeps
// the key at least TTL after storing it, which is later than sending). Past that
// (a renewal that failed, or a process paused by SIGSTOP, a VM freeze or a long GC)
// it steps down at once, before anyone else can take over, and has to prove the lease
// again. Its controllers' writes are fenced besides (fence.go), for the pause that
// falls between the check and the write.
func (s *election) leaderLoop(ctx context.Context) {
	var rev uint64 // the lease's revision while held, or the last one held
	tick := time.NewTicker(s.cfg.LeaderTTL / 4)
	defer tick.Stop()
	defer func() {
		if s.leader.Load() {
			// Hand over at once rather than after the TTL.
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			s.st.Leader.Delete(dctx, leaderKey, jetstream.LastRevision(rev))
			cancel()
			s.stepDown("shutting down")
		}
	}()
	last := time.Now()
	for {
		sent := time.Now()
		s.notePause(sent.Sub(last), s.cfg.LeaderTTL/4)
		last = sent
		if s.leader.Load() && !s.lead.Acting(sent) {
			s.stepDown(fmt.Sprintf("could not prove the leader lease for %s (renewals failed, or this process was paused)", s.cfg.LeaderTTL*3/4))
		}
		rec, _ := json.Marshal(leaderRecord{Server: s.cfg.Name, Renewed: time.Now().UTC()})
		octx, cancel := context.WithTimeout(ctx, s.cfg.LeaderTTL/4)
		switch {
		case s.leader.Load():
			r, err := s.st.Leader.Update(octx, leaderKey, rec, rev)
			switch {
			case err == nil:
				rev = r
				s.lead.Renewed(sent.Add(s.cfg.LeaderTTL * 3 / 4))
			case state.IsCASConflict(err) || errors.Is(err, jetstream.ErrKeyNotFound):
				s.stepDown("lost the leader lease: " + err.Error())
			default:
				s.logger.Warn("renew the leader lease", "err", err)
			}
		case rev != 0:
			// Stepped down without seeing anyone else take over: if the key still
			// holds our last revision, no one has held it since, and renewing it
			// with compare-and-swap proves the lease again without waiting for the
			// TTL. Otherwise seek it like anyone else.
			if r, err := s.st.Leader.Update(octx, leaderKey, rec, rev); err == nil {
				rev = r
				s.becomeLeader(ctx, r, sent, "proved the leader lease again")
			} else {
				rev = 0
			}
		default:
			e, err := s.st.Leader.Get(octx, leaderKey)
			switch {
			case errors.Is(err, jetstream.ErrKeyNotFound):
				if r, err := s.st.Leader.Create(octx, leaderKey, rec); err != nil {
					s.logger.Debug("seek the leader lease", "err", err)
				} else {
					rev = r
					s.becomeLeader(ctx, r, sent, "acquired the leader lease")
				}
			case err != nil:
				s.logger.Debug("read the leader lease", "err", err)
			default:
				var lr leaderRecord
				json.Unmarshal(e.Value(), &lr)
				s.leaderName.Store(lr.Server)
				// The key names this replica: a renewal whose reply was lost, or a
				// restart. Only this replica writes its name, so no one else has held
				// the lease since, and renewing it with compare-and-swap proves it.
				if lr.Server == s.cfg.Name {
					if r, err := s.st.Leader.Update(octx, leaderKey, rec, e.Revision()); err == nil {
						rev = r
						s.becomeLeader(ctx, r, sent, "proved the leader lease again")
					}
				}
			}
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// becomeLeader starts leading with the lease at revision rev, whose write was sent at
// sent: it fences the controllers' buckets with rev as the term, then lets the
// controllers act. Nodes are not judged lost until a full lost period has passed.
func (s *election) becomeLeader(ctx context.Context, rev uint64, sent time.Time, how string) {
	s.lead.Begin(rev, sent.Add(s.cfg.LeaderTTL*3/4), time.Now())
	fctx, cancel := context.WithTimeout(ctx, s.cfg.LeaderTTL/4)
	err := s.lead.Install(fctx, rev)
	cancel()
	if err != nil {
		s.stepDown("fence the controllers' buckets: " + err.Error())
		return
	}
	if !s.lead.Acting(time.Now()) {
		s.stepDown("the leader lease lapsed while fencing")
		return
	}
	s.setLeader(true, s.cfg.Name)
	s.metrics.terms.Inc()
	s.logger.Info(how+"; running the controllers", "term", rev)
	s.event(ctx, v1.Event{Type: v1.EventLeader, Message: fmt.Sprintf("controllers now run on %s (term %d)", s.cfg.Name, rev)})
	s.elected()
}

// stepDown stops the controllers acting at once.
func (s *election) stepDown(why string) {
	was := s.lead.End()
	s.setLeader(false, "")
	if was {
		s.logger.Warn("stepped down as leader", "why", why)
		if s.steppedDown != nil {
			s.steppedDown()
		}
	}
}

// notePause restarts the hearing window when a loop that should have woken after
// about every period woke after gap: the process was paused (SIGSTOP, a frozen VM) or
// starved, and renewals that arrived meanwhile may not be in the tables yet.
func (s *election) notePause(gap, period time.Duration) {
	if gap <= period+pauseSlack {
		return
	}
	s.lead.Deafened(time.Now())
	s.metrics.pauses.Inc()
	s.logger.Warn("this process did not run for a while; no node is judged lost until a full lost period has passed", "gap", gap.Round(time.Millisecond))
}

// pauseSlack is how late a loop may wake before it counts as a pause. Mistaking a
// busy machine for a pause only delays marking nodes lost.
const pauseSlack = time.Second

func (s *election) setLeader(on bool, name string) {
	s.leader.Store(on)
	s.leaderName.Store(name)
	if on {
		s.metrics.leader.Set(1)
	} else {
		s.metrics.leader.Set(0)
	}
}

// leaderNow reads who holds the leader lease from the bucket (the cached name may be
// up to a renewal interval old), falling back to the cached name.
func (s *election) leaderNow(ctx context.Context) string {
	if s.leader.Load() {
		return s.cfg.Name
	}
	e, err := s.st.Leader.Get(ctx, leaderKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return ""
	}
	var lr leaderRecord
	if err != nil || json.Unmarshal(e.Value(), &lr) != nil {
		return s.currentLeader()
	}
	return lr.Server
}

func (s *election) currentLeader() string {
	n, _ := s.leaderName.Load().(string)
	return n
}
