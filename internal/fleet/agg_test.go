package fleet

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// TestGroupTierAgreesWithNodes feeds a store what the fleet sends (re-sent summaries,
// late backfills past the detail tier, summaries crossing their window, agents with
// odd interval lengths, clocks ahead) and checks that every query answers exactly as
// the per-node data does, and that the group tier does answer the plain ones.
func TestGroupTierAgreesWithNodes(t *testing.T) {
	shapes := []struct {
		name string
		by   []string
		q    Query
	}{
		{"top", []string{"app", "version"}, Query{}},
		{"regions", []string{"app", "version", "region"}, Query{}},
		{"zones", []string{"app", "version", "region", "zone"}, Query{}},
		{"one app", []string{"version"}, Query{App: "a1"}},
		{"one region", []string{"app"}, Query{Region: "eu"}},
		{"everything", []string{}, Query{}},
		{"nodes", []string{"app", "node"}, Query{}},
	}
	for _, tt := range []struct {
		name string
		// mess says what the round does besides regular intervals.
		mess         func(rng *rand.Rand, st *Store, at, now time.Time)
		wantGroupHit bool
	}{
		{"regular", func(*rand.Rand, *Store, time.Time, time.Time) {}, true},
		{"resent", func(rng *rand.Rand, st *Store, at, now time.Time) {
			// the same interval again: the dedupe refuses it in both tiers
			st.Add(summary("n1", "a1", "v1", "/", at, 3, 1, time.Millisecond), now)
		}, true},
		{"backfill", func(rng *rand.Rand, st *Store, at, now time.Time) {
			if rng.IntN(4) == 0 {
				st.Add(summary("n2", "a1", "v1", "/b", at.Add(-time.Duration(60+rng.IntN(30))*iv), 5, 0, 3*time.Millisecond), now)
			}
		}, false},
		{"crossing", func(rng *rand.Rand, st *Store, at, now time.Time) {
			s := summary("n3", "a2", "v1", "/c", at.Add(5*time.Second), 2, 2, time.Millisecond)
			st.Add(s, now) // half of it in the next window at each boundary
		}, false},
		{"ahead", func(rng *rand.Rand, st *Store, at, now time.Time) {
			st.Add(summary("n1", "a2", "v2", "/d", at.Add(90*time.Second), 1, 0, 7*time.Millisecond), now)
		}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			st := newStore(t)
			groupHits := 0
			for tick := range 150 {
				at := t0.Add(time.Duration(tick) * iv)
				now := at.Add(iv)
				for _, n := range []string{"n1", "n2", "n3", "n4", "n5"} {
					for _, av := range [][2]string{{"a1", "v1"}, {"a1", "v2"}, {"a2", "v1"}, {"a2", "v2"}} {
						if rng.IntN(5) == 0 {
							continue // a gap
						}
						st.Add(summary(n, av[0], av[1], "/", at, uint64(rng.IntN(20)), uint64(rng.IntN(3)),
							time.Duration(100+rng.IntN(5000))*time.Microsecond), now)
					}
				}
				tt.mess(rng, st, at, now)
				st.Prune(now)
				if tick%7 != 0 {
					continue
				}
				for _, sh := range shapes {
					for _, w := range []time.Duration{time.Minute, 5 * time.Minute, 7*time.Minute + 13*time.Second, 10 * time.Minute, 15 * time.Minute} {
						q := sh.q
						q.By, q.Window = sh.by, w
						qnow := now.Add(time.Duration(rng.IntN(10)) * time.Second)
						got, want := st.Query(q, qnow, nil), st.query(q, qnow, nil, false)
						if !reflect.DeepEqual(got, want) {
							t.Fatalf("tick %d, %s over %v at %v:\ngroup tier %+v\nper node   %+v", tick, sh.name, w, qnow, got.Groups, want.Groups)
						}
						st.mu.RLock()
						by := map[string]bool{}
						for _, d := range q.By {
							by[d] = true
						}
						if st.groupTierCovers(q, by, qnow.Add(-w).UnixNano(), qnow.UnixNano()) {
							groupHits++
						}
						st.mu.RUnlock()
					}
				}
			}
			if tt.wantGroupHit && groupHits == 0 {
				t.Fatal("the group tier never answered")
			}
			t.Logf("group tier answered %d queries", groupHits)
		})
	}
}

// TestGroupTierFollowsAMovedNode moves a node to another zone: queries reaching back
// to its intervals under the old zone read the per-node data (which places them
// where the node is now), and the group tier answers again once those age out.
func TestGroupTierFollowsAMovedNode(t *testing.T) {
	place := map[string][2]string{"m1": {"eu", "eu-a"}, "m2": {"us", "us-a"}}
	st, err := New(Config{Nodes: func(n string) (string, string, map[string]string, bool) {
		p, ok := place[n]
		return p[0], p[1], nil, ok
	}})
	if err != nil {
		t.Fatal(err)
	}
	q := Query{By: []string{"app", "region", "zone"}, Window: 5 * time.Minute}
	covers := func(now time.Time) bool {
		st.mu.RLock()
		defer st.mu.RUnlock()
		return st.groupTierCovers(q, map[string]bool{"app": true, "region": true, "zone": true}, now.Add(-q.Window).UnixNano(), now.UnixNano())
	}
	var now time.Time
	for tick := range 200 {
		if tick == 60 {
			place["m1"] = [2]string{"eu", "eu-b"}
		}
		at := t0.Add(time.Duration(tick) * iv)
		now = at.Add(iv)
		for _, n := range []string{"m1", "m2"} {
			st.Add(summary(n, "a", "v", "/", at, 4, 1, time.Millisecond), now)
		}
		st.Prune(now)
		got, want := st.Query(q, now, nil), st.query(q, now, nil, false)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("tick %d: group tier %+v, per node %+v", tick, got.Groups, want.Groups)
		}
		switch {
		case tick == 59 && !covers(now):
			t.Fatal("the group tier does not answer before the move")
		case tick > 60 && tick < 90 && covers(now):
			t.Fatalf("tick %d: the group tier answers with m1's intervals under its old zone", tick)
		case tick == 199 && !covers(now):
			t.Fatal("the group tier does not answer once the old intervals aged out")
		}
	}
	if g := st.Query(q, now, nil).Groups; len(g) != 2 || g[0].Zone+" "+g[1].Zone != "eu-b us-a" {
		t.Fatalf("groups %+v", g)
	}
}
