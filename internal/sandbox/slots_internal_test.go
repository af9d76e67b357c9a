package sandbox

import "testing"

// TestSlotsHandOff walks the semaphore through its states: slots taken up to the
// limit, waiters served oldest first by hand-off (the slot stays taken), a waiter that
// leaves before its turn skipped, one handed a slot as it leaves keeping it, and the
// drain channel closed by the last release.
func TestSlotsHandOff(t *testing.T) {
	s := newSlots(2)
	if !s.tryTakeLocked() || !s.tryTakeLocked() {
		t.Fatal("could not take the two free slots")
	}
	if s.tryTakeLocked() {
		t.Fatal("took a third slot of two")
	}
	w1, w2, w3 := s.enqueueLocked(), s.enqueueLocked(), s.enqueueLocked()
	if s.leaveLocked(w2) {
		t.Fatal("a waiter leaving before any release was granted a slot")
	}
	if s.waiting != 2 {
		t.Fatalf("waiting = %d after one of three left, want 2", s.waiting)
	}
	granted := func(w *slotWaiter) bool {
		select {
		case <-w.ready:
			return true
		default:
			return false
		}
	}
	s.releaseLocked()
	if !granted(w1) || granted(w3) || s.busy != 2 {
		t.Fatalf("first release: w1 granted %v, w3 granted %v, busy %d; want the oldest handed the slot, busy 2", w1.granted, w3.granted, s.busy)
	}
	s.releaseLocked()
	if !s.leaveLocked(w3) {
		t.Fatal("a waiter handed a slot as it left lost it")
	}
	if s.waiting != 0 || s.head != nil || s.tail != nil {
		t.Fatalf("queue not empty: waiting %d", s.waiting)
	}
	drained := s.drainLocked()
	for i := range 2 {
		select {
		case <-drained:
			t.Fatalf("drained with %d slots taken", 2-i)
		default:
		}
		s.releaseLocked()
	}
	select {
	case <-drained:
	default:
		t.Fatal("not drained with every slot free")
	}
	if ch := s.drainLocked(); ch == nil {
		t.Fatal("drain of a free semaphore returned nil")
	} else if _, open := <-ch; open {
		t.Fatal("drain of a free semaphore is not closed")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a release of a slot never taken did not panic")
		}
	}()
	s.releaseLocked()
}
