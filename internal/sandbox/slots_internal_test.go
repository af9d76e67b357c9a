package sandbox

import (
	"testing"
	"unsafe"
)

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

// TestPoolWordsTogether: the words every request writes lie within one 128-byte-aligned
// block of memory, one pair of cache lines (see the Function type): they are the
// Function's first fields, and its allocation (size class 1 KiB, after the 8-byte
// header the runtime puts before larger objects with pointers) starts 8 bytes into
// such a block. Adding fields that move Function to a size class of another alignment
// fails here: put them behind a pointer, or align the pool's words another way.
func TestPoolWordsTogether(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the layout is arranged for 64-bit platforms; a 32-bit Function is in another size class")
	}
	var f Function
	hot := uintptr(0)
	for _, w := range []struct {
		name      string
		off, size uintptr
	}{
		{"mu", unsafe.Offsetof(f.mu), unsafe.Sizeof(f.mu)},
		{"slots", unsafe.Offsetof(f.slots), unsafe.Sizeof(f.slots)},
		{"idle", unsafe.Offsetof(f.idle), unsafe.Sizeof(f.idle)},
		{"total", unsafe.Offsetof(f.total), unsafe.Sizeof(f.total)},
		{"toppingUp", unsafe.Offsetof(f.toppingUp), unsafe.Sizeof(f.toppingUp)},
		{"peak", unsafe.Offsetof(f.peak), unsafe.Sizeof(f.peak)},
		{"memBytes", unsafe.Offsetof(f.memBytes), unsafe.Sizeof(f.memBytes)},
		{"closed", unsafe.Offsetof(f.closed), unsafe.Sizeof(f.closed)},
	} {
		hot = max(hot, w.off+w.size)
	}
	keep := make([]*Function, 8)
	for i := range keep {
		keep[i] = new(Function)
		if start := uintptr(unsafe.Pointer(keep[i])) % 128; start+hot > 128 {
			t.Fatalf("a Function (%d bytes) starts %d bytes into a 128-byte block, and its pool's words end %d bytes after that: they span two blocks",
				unsafe.Sizeof(f), start, hot)
		}
	}
}

// FuzzSlots runs the semaphore through a sequence of operations, as the pool uses them,
// against a model: a count of holders and a FIFO list of waiters. Each byte is an
// operation: take a slot (queuing when none is free, as waitSlot does), a waiter leaving
// (the next byte picks which), or a holder releasing. After each, the semaphore must
// agree with the model: no more holders than the limit, waiters only while every slot
// is held, slots handed over oldest waiter first.
func FuzzSlots(f *testing.F) {
	f.Add(uint8(2), []byte{0, 0, 0, 0, 2, 2, 0, 3, 1, 1, 2})
	f.Add(uint8(1), []byte{0, 0, 0, 0, 2, 1, 2, 2, 2, 0, 2})
	f.Add(uint8(3), []byte{0, 0, 0, 0, 0, 1, 4, 2, 1, 0, 2, 2, 2, 2})
	f.Fuzz(func(t *testing.T, limit uint8, ops []byte) {
		limit = limit%4 + 1
		s := newSlots(int(limit))
		holders := 0
		var queue []*slotWaiter // the model's, oldest first
		for i := 0; i < len(ops); i++ {
			switch ops[i] % 3 {
			case 0: // a request comes
				if s.tryTakeLocked() {
					holders++
				} else {
					if holders < int(limit) {
						t.Fatalf("op %d: no slot taken with %d of %d held", i, holders, limit)
					}
					queue = append(queue, s.enqueueLocked())
				}
			case 1: // a waiter gives up
				if len(queue) == 0 || i+1 >= len(ops) {
					continue
				}
				i++
				k := int(ops[i]) % len(queue)
				if s.leaveLocked(queue[k]) {
					t.Fatalf("op %d: a waiter still queued in the model was granted a slot", i)
				}
				queue = append(queue[:k], queue[k+1:]...)
			case 2: // a holder is done
				if holders == 0 {
					continue
				}
				s.releaseLocked()
				if len(queue) > 0 {
					w := queue[0]
					queue = queue[1:]
					select {
					case <-w.ready:
					default:
						t.Fatalf("op %d: the oldest waiter was not handed the slot", i)
					}
					if !s.leaveLocked(w) {
						t.Fatalf("op %d: a waiter handed a slot lost it on leaving", i)
					}
				} else {
					holders--
				}
			}
			if s.busy != holders || s.waiting != len(queue) {
				t.Fatalf("op %d: busy %d, waiting %d; the model has %d holders, %d waiters", i, s.busy, s.waiting, holders, len(queue))
			}
			w := s.head
			for k, want := range queue {
				if w != want {
					t.Fatalf("op %d: waiter %d of the queue is not the model's", i, k)
				}
				w = w.next
			}
			if w != nil {
				t.Fatalf("op %d: the queue is longer than the model's %d", i, len(queue))
			}
		}
	})
}
