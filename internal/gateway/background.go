package gateway

import (
	"os"
	"time"
)

// Why does the background read wait off the socket? For every HTTP/1 request whose body
// is read (or that has none), net/http (Go 1.26, connReader.startBackgroundRead) starts
// a goroutine reading one byte from the connection, so that a client that leaves cancels
// the request's context and a pipelined byte is kept; when the handler is done it ends
// that read with a read deadline in the past (abortPendingRead), waits for it, and
// clears the deadline. On a socket that is, per request, either two changes to the
// runtime poller's deadline and a read failed at once (when the abort comes first,
// most of the time: `go` queues the reader behind the handler), or a read system call
// that finds nothing (EAGAIN, ~2–3 µs of kernel time on the machines measured), a park
// in the poller and the same two deadline changes (when the other core runs the reader
// while the handler runs).
//
// So trackedConn.Read recognises that read and keeps it off the socket:
//
//   - An abort that came first has left the deadline "a long time ago" (deadlinePast):
//     the Read fails at once with os.ErrDeadlineExceeded, a net.Error whose Timeout()
//     net/http takes for its own abort, as the socket's would be, and the deadline
//     never reaches the socket, which keeps the one it had (setR), so the cleared
//     deadline that follows needs no change there either.
//   - Otherwise the read parks (awaitBackground) for at most the grace period: the
//     abort (SetReadDeadline with a passed deadline) or Close ends it off the socket;
//     past the grace the read goes to the socket as before, so a client that leaves
//     during a longer request is still noticed and cancels it.
//
// The price: a client that leaves is noticed backgroundGrace into a request, not at
// once. A request shorter than that finishes anyway (its response write then fails),
// and a guest running longer is canceled backgroundGrace later than before.
//
// What is taken for the background read: a 1-byte Read while the connection is active
// (the server's ConnState) with no read deadline asked for (startBackgroundRead clears
// it just before). Verified against net/http (server.go) and crypto/tls (conn.go):
//
//   - Request headers are read while the connection is new or idle (StateActive comes
//     after readRequest), through the connection's bufio.Reader, 4 KiB.
//   - Bodies are read through that bufio.Reader too, whose reads from the connection
//     are its free space: 1 byte only when it holds 4,095 unread bytes with no line end
//     (a chunk-size line that long). Under the gateway's body limits such a read also
//     has a read deadline (bodyReader), so it is not taken; with BodyTimeout off it
//     would wait at most the grace before reading, and a deadline that has passed
//     fails it as the socket would.
//   - Over TLS, trackedConn is read by the tls.Conn, always into at least
//     bytes.MinRead (512) bytes of its record buffer (readFromUntil): TLS connections
//     keep their background read on the socket, as before.
//   - A hijacked connection is no longer active.

// backgroundGrace is how long a background read waits off the socket before reading
// from it. Requests on the gateway take tens of µs to a few ms, so almost every one ends
// within it and its background read never reaches the socket; a client that leaves is
// noticed at most 20 ms later than at once, a small share of any request long enough
// for it to matter (a guest's timeout is seconds). A timer per parked read costs two
// changes to the runtime's timer heap, against a read system call that would find
// nothing.
const backgroundGrace = 20 * time.Millisecond

// Phases of a connection's background read (trackedConn.bg).
const (
	bgNone   int32 = iota // none parked: a Read goes to the socket as usual
	bgParked              // parked in awaitBackground
	bgClosed              // the connection is closed: nothing parks any more
)

// bgWake is what ended a parked background read.
type bgWake uint8

const (
	bgAborted bgWake = iota // a passed read deadline (net/http's abort)
	bgClosing               // the connection was closed
)

// awaitBackground parks the background read (see above) until net/http's abort, which
// makes it return the deadline error the socket would have, or Close or the grace,
// which make it return nil: the Read then goes to the socket (and fails at once once
// the connection is closed).
//
// Exactly one of the abort, Close and the timer moves bg from bgParked, by
// CompareAndSwap (Close by Swap), and only the one that did sends on wake (abort,
// Close) or lets the Read go (the timer): a buffered send never blocks and is always
// received. The abort cannot be missed: SetReadDeadline stores the deadline and then
// looks at the phase, while this stores the phase and then looks at the deadline; Go's
// atomics are sequentially consistent, so at least one sees the other, and if both do,
// the CompareAndSwap picks one. When the timer wins, bg is bgNone again and the Read
// goes on as any other, under the protocol of rd and wantR (see the fields' comment),
// which a deadline asked for from then on meets. A deadline in the future asked for
// while it is parked applies to it once it reads, as to any Read starting then; none
// is (net/http asks for none, and the gateway's body reader asks before the body's
// last read, which is what starts the background read).
func (c *trackedConn) awaitBackground() error {
	if c.wake == nil {
		c.wake = make(chan bgWake, 1)
	}
	if h := c.l.beforePark; h != nil {
		h(c)
	}
	if !c.bg.CompareAndSwap(bgNone, bgParked) {
		return nil // closed: the socket fails the read
	}
	if want := c.wantR.Load(); want != 0 && c.bg.CompareAndSwap(bgParked, bgNone) {
		// A deadline asked for since the Read began: the abort, or another, which the
		// Read then runs under as any other.
		if want == deadlinePast {
			return os.ErrDeadlineExceeded
		}
		return nil
	}
	grace := c.l.grace
	if grace <= 0 {
		grace = backgroundGrace
	}
	if c.timer == nil {
		c.timer = time.NewTimer(grace)
	} else {
		c.timer.Reset(grace) // stopped or fired and drained: no stale tick (Go ≥ 1.23)
	}
	select {
	case w := <-c.wake:
		c.timer.Stop()
		return w.err()
	case <-c.timer.C:
		if c.bg.CompareAndSwap(bgParked, bgNone) {
			return nil
		}
		// The abort or Close won meanwhile and sends.
		return (<-c.wake).err()
	}
}

// err is what the parked Read returns: the abort's deadline error, or nil to read the
// (closed) socket.
func (w bgWake) err() error {
	if w == bgAborted {
		return os.ErrDeadlineExceeded
	}
	return nil
}
