package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	v1 "fermion.dev/fermion/api/v1"
)

const leaderKey = "controllers"

type leaderRecord struct {
	Server  string    `json:"server"`
	Renewed time.Time `json:"renewed"`
}

// leaderLoop holds or seeks the leader lease: a key in a bucket whose entries expire
// LeaderTTL after their last write. The holder renews it with compare-and-swap every
// LeaderTTL/4; when the key has expired, any replica may create it. A holder that
// cannot renew for 3/4 of the TTL steps down before anyone else can take over.
func (s *Server) leaderLoop(ctx context.Context) {
	var rev uint64
	var lastRenew time.Time
	tick := time.NewTicker(s.cfg.LeaderTTL / 4)
	defer tick.Stop()
	defer func() {
		if s.leader.Load() {
			// Hand over at once rather than after the TTL.
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			s.st.leader.Delete(dctx, leaderKey, jetstream.LastRevision(rev))
			cancel()
			s.setLeader(false, "")
		}
	}()
	for {
		rec, _ := json.Marshal(leaderRecord{Server: s.cfg.Name, Renewed: time.Now().UTC()})
		octx, cancel := context.WithTimeout(ctx, s.cfg.LeaderTTL/4)
		if s.leader.Load() {
			r, err := s.st.leader.Update(octx, leaderKey, rec, rev)
			switch {
			case err == nil:
				rev, lastRenew = r, time.Now()
			case isCASConflict(err) || errors.Is(err, jetstream.ErrKeyNotFound) || time.Since(lastRenew) > s.cfg.LeaderTTL*3/4:
				s.logger.Warn("lost the leader lease", "err", err)
				s.setLeader(false, "")
			}
		} else {
			e, err := s.st.leader.Get(octx, leaderKey)
			switch {
			case errors.Is(err, jetstream.ErrKeyNotFound):
				if r, err := s.st.leader.Create(octx, leaderKey, rec); err != nil {
					s.logger.Debug("seek the leader lease", "err", err)
				} else {
					rev, lastRenew = r, time.Now()
					s.leaderSince.Store(time.Now().UnixNano())
					s.setLeader(true, s.cfg.Name)
					s.logger.Info("acquired the leader lease; running the controllers")
					s.event(ctx, v1.Event{Type: v1.EventLeader, Message: "controllers now run on " + s.cfg.Name})
					s.kickControllers()
					s.markAllDirty()
				}
			case err != nil:
				s.logger.Debug("read the leader lease", "err", err)
			case err == nil:
				var lr leaderRecord
				json.Unmarshal(e.Value(), &lr)
				s.leaderName.Store(lr.Server)
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

func (s *Server) setLeader(on bool, name string) {
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
func (s *Server) leaderNow(ctx context.Context) string {
	if s.leader.Load() {
		return s.cfg.Name
	}
	e, err := s.st.leader.Get(ctx, leaderKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return ""
	}
	var lr leaderRecord
	if err != nil || json.Unmarshal(e.Value(), &lr) != nil {
		return s.currentLeader()
	}
	return lr.Server
}

func (s *Server) currentLeader() string {
	n, _ := s.leaderName.Load().(string)
	return n
}
