package state

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/engine"
	"fermion.dev/fermion/internal/fermiontest"
)

// openStore starts an in-process engine and opens the store on it, with the tables
// loaded and watched until the test ends.
func openStore(t *testing.T) *Store {
	t.Helper()
	ctx := context.Background()
	eng, err := engine.Start(ctx, engine.Config{DataDir: t.TempDir(), SyncAlways: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eng.Close)
	js, err := jetstream.New(eng.Conn())
	if err != nil {
		t.Fatal(err)
	}
	st, err := OpenRetry(ctx, js, 1, 10*time.Second, 1000)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	st.Run(runCtx, func(fn func(context.Context)) { wg.Go(func() { fn(runCtx) }) }, func(msg string, args ...any) { t.Log(append([]any{msg}, args...)...) })
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := st.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestTableReadsFollowWrites writes through a table and reads the writes back from its
// in-memory copy, with revisions, the node index and the watchers.
func TestTableReadsFollowWrites(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	var seen atomic.Int64
	var deleted atomic.Int64
	st.Assignments.Watch(func(_ string, a *v1.Assignment) {
		if a == nil {
			deleted.Add(1)
		} else {
			seen.Add(1)
		}
	})
	var last uint64
	for _, key := range []string{"n1.a", "n1.b", "n2.a"} {
		node, dep, _ := strings.Cut(key, ".")
		rev, err := st.Assignments.Put(ctx, key, &v1.Assignment{Node: node, Deployment: dep})
		if err != nil {
			t.Fatal(err)
		}
		last = rev
	}
	if err := st.Assignments.WaitRev(ctx, last); err != nil {
		t.Fatal(err)
	}
	if got := st.Assignments.Keys(); !slices.Equal(got, []string{"n1.a", "n1.b", "n2.a"}) {
		t.Fatalf("keys %v", got)
	}
	a, rev, ok := st.Assignments.Get("n2.a")
	if !ok || a.Node != "n2" || rev != last {
		t.Fatalf("get n2.a: %+v rev %d ok %v, want node n2 at revision %d", a, rev, ok, last)
	}
	tableRev, of := st.Assignments.OfNode("n1")
	if len(of) != 2 || tableRev < last {
		t.Fatalf("of node n1: %d records at table revision %d, want 2 at %d or later", len(of), tableRev, last)
	}
	list := st.Assignments.List()
	if len(list) != 3 || list[0].Key != "n1.a" || list[2].Rev != last {
		t.Fatalf("list %+v", list)
	}
	if err := st.Assignments.Delete(ctx, "n1.b"); err != nil {
		t.Fatal(err)
	}
	if err := st.Assignments.WaitGone(ctx, "n1.b"); err != nil {
		t.Fatal(err)
	}
	if _, of := st.Assignments.OfNode("n1"); len(of) != 1 {
		t.Fatalf("of node n1 after a delete: %d records", len(of))
	}
	fermiontest.WaitFor(t, 5*time.Second, func() error {
		if seen.Load() != 3 || deleted.Load() != 1 {
			return fmt.Errorf("watchers saw %d puts and %d deletes, want 3 and 1", seen.Load(), deleted.Load())
		}
		return nil
	})
}

// TestUpdateRetriesLostRaces has many writers increment one record at once: the
// compare-and-swap loses races and retries from a fresh read, and no increment is lost.
func TestUpdateRetriesLostRaces(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	const writers, each = 8, 5
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() {
			for range each {
				_, _, err := st.Nodes.Update(ctx, "n", func(cur *v1.Node) (*v1.Node, error) {
					n := v1.Node{Name: "n"}
					if cur != nil {
						n = *cur
					}
					n.Capacity.Instances++
					return &n, nil
				})
				if err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	last, err := LastSeq(ctx, st.Nodes)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Nodes.WaitRev(ctx, last); err != nil {
		t.Fatal(err)
	}
	n, rev, _ := st.Nodes.Get("n")
	if n.Capacity.Instances != writers*each {
		t.Fatalf("%d increments stored, want %d", n.Capacity.Instances, writers*each)
	}
	// Writing nothing returns the revision read; an error stops without writing.
	if got, r, err := st.Nodes.Update(ctx, "n", func(*v1.Node) (*v1.Node, error) { return nil, nil }); got != nil || r != rev || err != nil {
		t.Fatalf("no-op update: %v %d %v, want nil %d nil", got, r, err, rev)
	}
	stop := errors.New("stop")
	if _, _, err := st.Nodes.Update(ctx, "n", func(*v1.Node) (*v1.Node, error) { return nil, stop }); !errors.Is(err, stop) {
		t.Fatalf("update whose function fails: %v", err)
	}
}

// TestConditionalWrites checks the writes that depend on a revision or a sequence.
func TestConditionalWrites(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	last, err := LastSeq(ctx, st.Deployments)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := st.Deployments.PutIfLast(ctx, "d", &v1.Deployment{Name: "d"}, last)
	if err != nil {
		t.Fatalf("write at the sequence read: %v", err)
	}
	if _, err := st.Deployments.PutIfLast(ctx, "e", &v1.Deployment{Name: "e"}, last); !IsCASConflict(err) {
		t.Fatalf("write at a stale sequence: %v, want a conflict", err)
	}
	if err := st.Deployments.DeleteAt(ctx, "d", rev+100); !IsCASConflict(err) {
		t.Fatalf("delete at a wrong revision: %v, want a conflict", err)
	}
	if err := st.Deployments.DeleteAt(ctx, "d", rev); err != nil {
		t.Fatalf("delete at its revision: %v", err)
	}
}

// TestFencedWritesNeedTheLease checks that a fence that is not acting writes nothing,
// and that a fenced-out one steps down.
func TestFencedWritesNeedTheLease(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	var deposed atomic.Value
	f := NewFence(st, "a", func(why string) { deposed.Store(why) })
	if _, err := st.Placements.FencedPut(ctx, f, "d", &v1.Placement{}); !errors.Is(err, ErrNotActing) {
		t.Fatalf("write before leading: %v, want %v", err, ErrNotActing)
	}
	f.Begin(5, time.Now().Add(time.Minute), time.Now())
	if _, err := st.Placements.FencedPut(ctx, f, "d", &v1.Placement{}); !errors.Is(err, ErrNotActing) {
		t.Fatalf("write before the fences are installed: %v, want %v", err, ErrNotActing)
	}
	if err := f.Install(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Placements.FencedPut(ctx, f, "d", &v1.Placement{Message: "ours"}); err != nil {
		t.Fatalf("write while leading: %v", err)
	}
	// Another replica leads under a newer term.
	g := NewFence(st, "b", func(string) {})
	g.Begin(9, time.Now().Add(time.Minute), time.Now())
	if err := g.Install(ctx, 9); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Placements.FencedPut(ctx, f, "d", &v1.Placement{Message: "stale"}); !errors.Is(err, ErrDeposed) {
		t.Fatalf("write after another fence: %v, want %v", err, ErrDeposed)
	}
	if why, _ := deposed.Load().(string); why == "" {
		t.Fatal("the deposed fence did not step down")
	}
	if err := f.Install(ctx, 5); !errors.Is(err, ErrDeposed) {
		t.Fatalf("fencing again under an older term: %v, want %v", err, ErrDeposed)
	}
	if _, err := st.Placements.FencedPut(ctx, g, "d", &v1.Placement{Message: "new"}); err != nil {
		t.Fatalf("the new leader's write: %v", err)
	}
}
