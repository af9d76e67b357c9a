package sandbox

// slots is a function's concurrency limit: a counting semaphore with a queue of the
// requests waiting for a slot, oldest first. It has no lock of its own: every method
// runs under its owner's mutex (Function.mu), so that taking a slot and taking an idle
// instance are one critical section, and so are giving both back (see
// Function.acquire). Only a request that finds every slot taken waits, on a channel of
// its own; releasing a slot while one waits hands the slot over without freeing it, so
// a request arriving meanwhile cannot overtake the queue.
type slots struct {
	limit, busy int
	// waiters are the queued requests, head the oldest; waiting counts them.
	head, tail *slotWaiter
	waiting    int
	// drained, made by drainLocked, is closed once busy is zero: what Close waits for.
	drained chan struct{}
}

// slotWaiter is one request waiting for a slot.
type slotWaiter struct {
	// ready receives the slot handed over; buffered, so the hand-off never blocks the
	// releaser, which holds the owner's mutex.
	ready chan struct{}
	// granted: the slot is the waiter's, whether or not it has received from ready.
	granted    bool
	prev, next *slotWaiter
}

func newSlots(limit int) slots { return slots{limit: limit} }

// tryTakeLocked takes a slot when one is free. No request waits then: requests queue
// only while every slot is taken, and a slot released to a waiter stays taken.
func (s *slots) tryTakeLocked() bool {
	if s.busy >= s.limit {
		return false
	}
	s.busy++
	return true
}

// enqueueLocked queues a request for the next slot released.
func (s *slots) enqueueLocked() *slotWaiter {
	w := &slotWaiter{ready: make(chan struct{}, 1), prev: s.tail}
	if s.tail != nil {
		s.tail.next = w
	} else {
		s.head = w
	}
	s.tail = w
	s.waiting++
	return w
}

// leaveLocked takes w, which stopped waiting, out of the queue. It reports whether w was
// handed a slot first: the slot is then w's, to use or release.
func (s *slots) leaveLocked(w *slotWaiter) (granted bool) {
	if w.granted {
		return true
	}
	s.unlinkLocked(w)
	return false
}

func (s *slots) unlinkLocked(w *slotWaiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		s.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		s.tail = w.prev
	}
	w.prev, w.next = nil, nil
	s.waiting--
}

// releaseLocked gives a slot back: to the oldest waiter, or to the free ones.
func (s *slots) releaseLocked() {
	if w := s.head; w != nil {
		s.unlinkLocked(w)
		w.granted = true
		w.ready <- struct{}{}
		return
	}
	if s.busy == 0 {
		panic("sandbox: concurrency slot released twice")
	}
	s.busy--
	if s.busy == 0 && s.drained != nil {
		close(s.drained)
		s.drained = nil
	}
}

// drainLocked returns a channel closed once no slot is taken. The owner must take no
// slot after calling it (Function.closed refuses them).
func (s *slots) drainLocked() <-chan struct{} {
	ch := make(chan struct{})
	if s.busy == 0 {
		close(ch)
	} else {
		s.drained = ch
	}
	return ch
}
