package sandbox

import (
	"context"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/sys"
)

// TestWatchRacesEnd hammers the race between a call's end (endWatch) and a watch
// firing that would interrupt it (watch), without a guest: every call is already past
// its deadline, so a firing that sees it interrupts it. Whichever wins, an interrupt
// is either reported by endWatch, and complete by then, or never made for that call:
// none lands after the call's end, where it would hit the next call on the instance.
// Run it under -race too.
func TestWatchRacesEnd(t *testing.T) {
	var cancels atomic.Int64 // interrupt's effect: the instance's cancel called
	inst := &instance{cancel: func() { cancels.Add(1) }}
	t.Cleanup(inst.stopWatch)
	rounds := 20000
	if testing.Short() {
		rounds = 2000
	}
	reported := 0
	for n := range rounds {
		inst.why.Store(0)
		cancels.Store(0)
		now := monoNow()
		st := &callState{ctx: context.Background(), deadline: now - 1}
		// A timeout of 0 makes the watch timer due now; a firing of our own races
		// too, whenever the timer's is late.
		inst.startWatch(st, now, 0)
		var wg sync.WaitGroup
		wg.Go(inst.watch)
		if n%2 == 1 {
			runtime.Gosched() // let the firing go first more often
		}
		why := inst.endWatch()
		got := cancels.Load() // what the interrupt had done when endWatch returned
		wg.Wait()
		switch {
		case why == 0 && (inst.why.Load() != 0 || cancels.Load() != 0):
			t.Fatalf("round %d: endWatch reported no interrupt, but one was made for the ended call (why %d, cancels %d)",
				n, inst.why.Load(), cancels.Load())
		case why != 0 && why != sys.ExitCodeDeadlineExceeded:
			t.Fatalf("round %d: endWatch reported %d, want %d", n, why, sys.ExitCodeDeadlineExceeded)
		case why != 0 && got == 0: // two firings (ours, the timer's) may both interrupt it
			t.Fatalf("round %d: endWatch reported an interrupt before it was complete (cancels %d)", n, got)
		case why != 0:
			reported++
		}
		if w := inst.watchSeq.Load(); w != 0 {
			t.Fatalf("round %d: watchSeq = %d after the call's end, want 0", n, w)
		}
	}
	// Both outcomes normally occur; which does is the scheduler's, so it is only logged.
	t.Logf("%d of %d calls interrupted", reported, rounds)
}

// TestWatchArmsAfterFiring: a call starting after a firing that found no call (the
// timer disarmed) arms the timer again, and one starting while it is armed early
// enough leaves it alone.
func TestWatchArmsAfterFiring(t *testing.T) {
	inst := &instance{cancel: func() {}}
	t.Cleanup(inst.stopWatch)
	// Only this test's firings: the real timer is stopped, as if not yet due, after
	// every start (watchAt left as startWatch set it).
	hold := func() {
		inst.watchMu.Lock()
		inst.watchT.Stop()
		inst.watchMu.Unlock()
	}
	now := monoNow()
	st := &callState{ctx: context.Background(), deadline: now + mono(time.Hour)}
	inst.startWatch(st, now, time.Hour)
	hold()
	at := inst.watchAt.Load()
	if want := int64(now) + int64(cancelPoll); at != want {
		t.Fatalf("watchAt = %d after the first start, want %d", at, want)
	}
	if why := inst.endWatch(); why != 0 {
		t.Fatalf("endWatch = %d, want 0", why)
	}
	// A later call due later than the armed timer: left as it is.
	st2 := &callState{ctx: context.Background(), deadline: now + mono(time.Hour)}
	inst.startWatch(st2, now+mono(time.Millisecond), time.Hour)
	hold()
	if got := inst.watchAt.Load(); got != at {
		t.Fatalf("watchAt = %d, want %d left as it was", got, at)
	}
	inst.endWatch()
	inst.watch() // a firing between calls disarms it
	if got := inst.watchAt.Load(); got != 0 {
		t.Fatalf("watchAt = %d after a firing between calls, want 0", got)
	}
	// A call due sooner than the armed timer re-arms it for itself.
	st3 := &callState{ctx: context.Background(), deadline: now + mono(time.Hour)}
	inst.startWatch(st3, now, time.Millisecond)
	hold()
	if got, want := inst.watchAt.Load(), int64(now)+int64(time.Millisecond); got != want {
		t.Fatalf("watchAt = %d after a start, want %d", got, want)
	}
	inst.endWatch()
}

// TestCallStateFields: callReactor sets a reused callState field by field, leaving
// logs as flush left it. A field added to callState must be set there too; this lists
// the fields it sets, so that adding one fails here until it is.
func TestCallStateFields(t *testing.T) {
	set := []string{"f", "ctx", "deadline", "resp", "reply", "respErr", "got", "pending", "logs", "waited"}
	typ := reflect.TypeFor[callState]()
	var got []string
	for i := range typ.NumField() {
		got = append(got, typ.Field(i).Name)
	}
	if !slices.Equal(got, set) {
		t.Fatalf("callState's fields are %v; callReactor sets %v: set the new ones there and list them here", got, set)
	}
}
