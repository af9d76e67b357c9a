package sli

import "fmt"

// Buffer keeps encoded summaries while the control plane is unreachable, oldest first,
// bounded by total bytes and by count. When a push would exceed a bound it drops the
// oldest entries and counts them, so after a long partition the newest data survives
// and the receiver's SLO windows lose their oldest end, not their recent one.
//
// Backfill reads Oldest, sends, then Acks what the receiver confirmed: delivery is
// at least once, and receivers dedupe by (Node, Seq, Key). A Buffer is not safe for
// concurrent use; its owner (the agent's publisher) serialises access.
type Buffer struct {
	maxBytes, maxCount int
	items              [][]byte // ring
	head, n            int
	bytes              int
	dropped            uint64
}

// NewBuffer returns a Buffer holding at most maxCount summaries and maxBytes bytes of
// them. Both must be positive.
func NewBuffer(maxBytes, maxCount int) (*Buffer, error) {
	if maxBytes <= 0 || maxCount <= 0 {
		return nil, fmt.Errorf("sli buffer bounds %d bytes, %d summaries: both must be positive", maxBytes, maxCount)
	}
	return &Buffer{maxBytes: maxBytes, maxCount: maxCount}, nil
}

// Push appends one encoded summary, dropping the oldest entries as needed to stay
// within the bounds, and returns how many it dropped. The Buffer keeps b; the caller
// must not modify it afterwards. A summary larger than the byte bound is refused.
func (q *Buffer) Push(b []byte) (dropped int, err error) {
	if len(b) > q.maxBytes {
		return 0, fmt.Errorf("buffer sli summary: %d bytes, larger than the buffer's %d-byte bound", len(b), q.maxBytes)
	}
	for q.n > 0 && (q.n+1 > q.maxCount || q.bytes+len(b) > q.maxBytes) {
		q.popFront()
		dropped++
	}
	q.dropped += uint64(dropped)
	if q.n == len(q.items) {
		q.grow()
	}
	q.items[(q.head+q.n)%len(q.items)] = b
	q.n++
	q.bytes += len(b)
	return dropped, nil
}

func (q *Buffer) grow() {
	size := max(2*len(q.items), 16)
	size = min(size, q.maxCount)
	items := make([][]byte, size)
	for i := 0; i < q.n; i++ {
		items[i] = q.items[(q.head+i)%len(q.items)]
	}
	q.items, q.head = items, 0
}

func (q *Buffer) popFront() {
	q.bytes -= len(q.items[q.head])
	q.items[q.head] = nil
	q.head = (q.head + 1) % len(q.items)
	q.n--
}

// Oldest returns up to max of the oldest summaries, in the order they were pushed,
// without removing them. The slices are the Buffer's; do not modify them.
func (q *Buffer) Oldest(max int) [][]byte {
	max = min(max, q.n)
	out := make([][]byte, max)
	for i := range out {
		out[i] = q.items[(q.head+i)%len(q.items)]
	}
	return out
}

// Ack removes the n oldest summaries, which the receiver has confirmed. Acking more
// than the Buffer holds empties it (entries may have been dropped since Oldest).
func (q *Buffer) Ack(n int) {
	for ; n > 0 && q.n > 0; n-- {
		q.popFront()
	}
}

// Len is how many summaries the Buffer holds.
func (q *Buffer) Len() int { return q.n }

// Bytes is the total size of the summaries the Buffer holds.
func (q *Buffer) Bytes() int { return q.bytes }

// Dropped is how many summaries were dropped to stay within the bounds, ever.
func (q *Buffer) Dropped() uint64 { return q.dropped }
