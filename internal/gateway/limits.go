package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"fermion.dev/fermion/internal/telemetry"
)

// Limits bound what clients can hold of a node: connections, the time they may take to
// send a request or read a response, and the memory a connection may pin. Zero fields
// take the defaults below; a negative field switches that limit off.
type Limits struct {
	// MaxConnections caps the connections open on the listener. At the cap a new
	// connection takes the place of the oldest idle keep-alive connection; when none is
	// idle it gets a 503 with Retry-After (plain HTTP) or is closed (TLS: a handshake
	// would cost what the cap saves) without its request being read.
	MaxConnections int
	// HeaderTimeout bounds the time from the start of a request (its connection's
	// opening, for the first) to the end of its header.
	HeaderTimeout time.Duration
	// BodyTimeout is the longest silence allowed while a request body is read, and the
	// grace before MinBodyRate applies.
	BodyTimeout time.Duration
	// MinBodyRate is the average rate, in bytes per second, a body must keep up after
	// BodyTimeout: a client trickling its body slower is cut (408), however large the
	// body; an upload at any reasonable rate is not.
	MinBodyRate int64
	// WriteTimeout is the longest a client may leave the response unread.
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections that send no next request.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header (431 past it).
	MaxHeaderBytes int
}

// Defaults of Limits, sized for an edge node. An open connection costs the node ~40 KiB
// (goroutine, buffers; measured in bench/RESULTS.md), so the cap bounds that share of
// memory near 160 MiB, while a 2,000-connection flood with 500 slow clients fits under it
// and is served (see docs/RATIONALE.md, "Why cap connections…").
const (
	DefaultMaxConnections = 4096
	DefaultHeaderTimeout  = 10 * time.Second
	DefaultBodyTimeout    = 10 * time.Second
	DefaultMinBodyRate    = 512
	DefaultWriteTimeout   = 10 * time.Second
	DefaultIdleTimeout    = 60 * time.Second
	DefaultMaxHeaderBytes = 64 << 10
)

// withDefaults fills zero fields with the defaults and turns negative ones into 0 (off).
func (l Limits) withDefaults() Limits {
	pick := func(v, def time.Duration) time.Duration {
		switch {
		case v == 0:
			return def
		case v < 0:
			return 0
		}
		return v
	}
	l.HeaderTimeout = pick(l.HeaderTimeout, DefaultHeaderTimeout)
	l.BodyTimeout = pick(l.BodyTimeout, DefaultBodyTimeout)
	l.WriteTimeout = pick(l.WriteTimeout, DefaultWriteTimeout)
	l.IdleTimeout = pick(l.IdleTimeout, DefaultIdleTimeout)
	l.MaxConnections = int(pick(time.Duration(l.MaxConnections), DefaultMaxConnections))
	l.MinBodyRate = int64(pick(time.Duration(l.MinBodyRate), DefaultMinBodyRate))
	l.MaxHeaderBytes = int(pick(time.Duration(l.MaxHeaderBytes), DefaultMaxHeaderBytes))
	return l
}

// Validate reports a limit that cannot work, naming its field.
func (l Limits) Validate() error {
	if l.MaxHeaderBytes > 0 && l.MaxHeaderBytes < 1024 {
		return fmt.Errorf("max header bytes %d is below 1 KiB: ordinary requests would get 431; use at least 1KiB", l.MaxHeaderBytes)
	}
	if l.MinBodyRate > 0 && l.BodyTimeout < 0 {
		return errors.New("a minimum body rate needs a body timeout (its grace period); set both or switch both off")
	}
	return nil
}

// retryAfter is what a refused connection is told to wait, in seconds.
const retryAfter = "1"

// refusal is the whole answer to a connection past the cap: short enough for one write.
var refusal = []byte("HTTP/1.1 503 Service Unavailable\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Retry-After: " + retryAfter + "\r\n" +
	"Connection: close\r\n" +
	"Content-Length: 47\r\n" +
	"\r\n" +
	"gateway at its connection limit; retry later.\r\n")

const (
	// maxRefusers bounds the goroutines answering refused connections; past it, a refused
	// connection is closed without an answer.
	maxRefusers = 256
	// refuseTimeout bounds one refusal: writing the 503 and reading what the client sent
	// (so that closing does not reset the connection before the client reads the 503).
	refuseTimeout = time.Second
)

// connLimiter is a listener that caps its open connections. Lock order: mu is a leaf.
//
// A connection's HTTP state changes twice per request (active, idle); it is kept in the
// connection's atomics, not in a list under mu, so requests take no shared lock and
// allocate nothing for it. Only admit at the cap, which is rare, looks for the longest
// idle connection, by walking the connections that hold slots (at most max of them);
// after a walk that found none idle, admit walks again only idleRescan later, so that a
// flood at the cap costs a walk per idleRescan, not one per refused connection.
type connLimiter struct {
	net.Listener
	max     int  // 0: no cap
	respond bool // answer refused connections with a plain HTTP 503
	// writeSlack is how far before the deadline asked for a connection's socket write
	// deadline may fall (see trackedConn.SetWriteDeadline); 0: exact.
	writeSlack time.Duration
	// grace is how long a background read waits off the socket (awaitBackground);
	// 0: backgroundGrace. A field, not the constant, so that tests can shorten it.
	grace time.Duration
	// beforePark, when set (by tests), runs as a background read is about to park: the
	// moment an abort must not be lost in.
	beforePark func(*trackedConn)
	metrics    *telemetry.Metrics
	refuse     chan struct{} // a slot per refusal in flight
	wg         sync.WaitGroup
	epoch      time.Time // deadlines and idleSince count from here (monotonic)
	// idleTimeout, when set, closes keep-alive connections idle that long (sweepIdle);
	// stopSweep ends the sweeper, once, at Close.
	idleTimeout time.Duration
	stopSweep   chan struct{}
	closeOnce   sync.Once

	mu    sync.Mutex
	open  int
	conns *trackedConn // the connections holding slots, linked through next/prev
	// noIdleUntil: a walk found no idle connection; admit looks again from then (ns
	// since epoch).
	noIdleUntil int64
}

// idleRescan is how long admit at the cap trusts a walk that found no idle connection.
// A connection that goes idle meanwhile makes room only after it: the newcomers in
// between get the 503 (Retry-After: 1), as if it had not been idle yet.
const idleRescan = 10 * time.Millisecond

func newConnLimiter(ln net.Listener, max int, respond bool, m *telemetry.Metrics) *connLimiter {
	m.SetGatewayConnectionLimit(max)
	return &connLimiter{Listener: ln, max: max, respond: respond, metrics: m, refuse: make(chan struct{}, maxRefusers), epoch: time.Now()}
}

// Accept returns the next connection admitted under the cap, refusing the others.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc, victim := l.admit(c)
		if victim != nil {
			victim.closeSocket() // its server goroutine sees the read fail and ends
			l.metrics.GatewayIdleClose()
		}
		if tc != nil {
			return tc, nil
		}
		l.refuseConn(c)
	}
}

// admit takes a slot for c: a free one, or the longest idle connection's (returned as
// victim, for the caller to close). Both nil: the cap is reached and nothing is idle.
func (l *connLimiter) admit(c net.Conn) (tc, victim *trackedConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max > 0 && l.open >= l.max {
		victim = l.longestIdleLocked(l.now())
		if victim == nil {
			return nil, nil
		}
		l.unlinkLocked(victim)
		victim.closed = true // its slot is c's now; its Close counts nothing
		victim.state.Store(int32(http.StateClosed))
		tc = &trackedConn{Conn: c, l: l}
		l.linkLocked(tc)
		return tc, victim
	}
	l.open++
	l.metrics.GatewayConnectionsAdd(1)
	tc = &trackedConn{Conn: c, l: l}
	l.linkLocked(tc)
	return tc, nil
}

// longestIdleLocked returns the connection idle for longest, or nil when none is idle
// (or none was at a walk less than idleRescan before now).
func (l *connLimiter) longestIdleLocked(now int64) *trackedConn {
	if now < l.noIdleUntil {
		return nil
	}
	var best *trackedConn
	var since int64
	for c := l.conns; c != nil; c = c.next {
		if c.state.Load() != int32(http.StateIdle) {
			continue
		}
		if s := c.idleSince.Load(); best == nil || s < since {
			best, since = c, s
		}
	}
	if best == nil {
		l.noIdleUntil = now + int64(idleRescan)
	}
	return best
}

// Why does a request write nothing that all connections share? With two cores serving
// connections, a word written per request by every connection (as the count of idle
// connections was: two atomic adds per request) moves between the cores' caches at
// every request: BenchmarkConnRequest with two goroutines measured ~150 ns of wall
// time per request for it, more than the rest of limits.go together. The idle count
// only let admit at the cap and the sweeper skip walking the connections when none was
// idle; the sweeper walks a few times per idle timeout anyway, and admit remembers a
// walk that found none for idleRescan. Each connection keeps its own idle stamp (one
// monotonic clock reading per request, ~30 ns, on its own cache line).

func (l *connLimiter) linkLocked(c *trackedConn) {
	c.next = l.conns
	if l.conns != nil {
		l.conns.prev = c
	}
	l.conns = c
}

func (l *connLimiter) unlinkLocked(c *trackedConn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else if l.conns == c {
		l.conns = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	}
	c.prev, c.next = nil, nil
}

// refuseConn answers a connection past the cap, in the background, without reading its
// request into memory.
func (l *connLimiter) refuseConn(c net.Conn) {
	l.metrics.GatewayRejection(telemetry.RejectConnections)
	if !l.respond {
		c.Close()
		return
	}
	select {
	case l.refuse <- struct{}{}:
	default:
		c.Close()
		return
	}
	l.wg.Go(func() {
		defer func() { <-l.refuse }()
		c.SetDeadline(time.Now().Add(refuseTimeout))
		if _, err := c.Write(refusal); err == nil {
			// Half-close and read to EOF: closing with unread input would send a reset,
			// which can destroy the 503 before the client reads it.
			if cw, ok := c.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
				var buf [512]byte
				for {
					if _, err := c.Read(buf[:]); err != nil {
						break
					}
				}
			}
		}
		c.Close()
	})
}

// Close stops accepting and the idle sweeper, and waits for the refusals in flight
// (each at most refuseTimeout).
func (l *connLimiter) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() {
		if l.stopSweep != nil {
			close(l.stopSweep)
		}
	})
	l.wg.Wait()
	return err
}

// Why does the limiter close idle connections, and not net/http? With an IdleTimeout,
// net/http moves the read deadline of every keep-alive connection after every response
// (time.Now, two clock readings, then a runtime timer added under the wait for the next
// request and deleted when it comes): about a microsecond per request, for a timeout
// that almost never fires. The limiter already knows which connections are idle and
// since when (setState), so one sweeper per listener closes those idle past the
// timeout, checking every idleSweeps-th of it: a connection is closed between
// IdleTimeout and IdleTimeout·(1+1/idleSweeps) after its last response, at no cost
// per request.

// idleSweeps is how many times per idle timeout the sweeper looks.
const idleSweeps = 8

// sweepIdle starts the goroutine that closes connections idle for timeout; Close stops
// it. Call it before serving.
func (l *connLimiter) sweepIdle(timeout time.Duration) {
	l.idleTimeout = timeout
	l.stopSweep = make(chan struct{})
	every := max(timeout/idleSweeps, time.Millisecond)
	l.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-l.stopSweep:
				return
			case <-t.C:
				l.closeIdle(l.now())
			}
		}
	})
}

// closeIdle closes the connections idle for at least the idle timeout at now (ns since
// epoch). Their server goroutines see the read fail and end, giving the slots back.
func (l *connLimiter) closeIdle(now int64) {
	var old []*trackedConn
	l.mu.Lock()
	for c := l.conns; c != nil; c = c.next {
		// Taken out of the idle state first, as admit takes a victim: a request that
		// makes it active from here on finds it closing.
		if now-c.idleSince.Load() < int64(l.idleTimeout) || !c.state.CompareAndSwap(int32(http.StateIdle), int32(http.StateClosed)) {
			continue
		}
		if now-c.idleSince.Load() < int64(l.idleTimeout) {
			// It served a request and went idle again between the two looks (setState
			// stamps it before the state): keep it, unless it has just become active.
			c.state.CompareAndSwap(int32(http.StateClosed), int32(http.StateIdle))
			continue
		}
		old = append(old, c)
	}
	l.mu.Unlock()
	for _, c := range old {
		// A connection that has started its next request is a header timeout, as when
		// the read deadline cut it (readTimedOut); one that sent nothing was only idle.
		if c.bytesRead() != c.readAtIdle.Load() && c.counted.CompareAndSwap(false, true) {
			l.metrics.GatewayRejection(telemetry.RejectHeaderTimeout)
		}
		c.closeSocket()
	}
}

// trackedConn is an admitted connection: it holds its slot until closed, and knows its
// HTTP state (from the server's ConnState hook) to tell header timeouts from idle ones.
type trackedConn struct {
	net.Conn
	l *connLimiter

	state atomic.Int32 // http.ConnState
	// rd counts the Reads under way (its low readShift bits) and the bytes read (the
	// bits above): one atomic add at each end of a Read.
	rd         atomic.Int64
	readAtIdle atomic.Int64 // bytes read when it last became idle
	idleSince  atomic.Int64 // when it last became idle, in ns since l.epoch
	counted    atomic.Bool  // a header timeout was counted
	wcounted   atomic.Bool  // a write timeout was counted

	// Guarded by l.mu.
	prev, next *trackedConn // in l.conns while it holds its slot
	closed     bool         // its slot is given back (or taken over)

	// Write deadlines, in ns since l.epoch (0: none): wantW is the deadline last asked
	// for, setW the one on the socket, written under wmu (a leaf lock), which every
	// change to the socket's deadline holds. See SetWriteDeadline.
	wmu         sync.Mutex
	wantW, setW atomic.Int64
	// Read deadlines, likewise, under rmu (a leaf lock). See SetReadDeadline.
	rmu         sync.Mutex
	wantR, setR atomic.Int64
	// writing counts the Writes under way (and rd the Reads), each counted before it
	// looks at the deadline asked for, while a deadline asked for is stored before
	// looking at the count: either the Write sees the new deadline, and syncs it
	// first, or SetWriteDeadline sees the Write, and (only if that deadline has
	// passed, when it must end the Write at once) syncs it itself. So a Write or Read
	// with no change to make takes no lock, and only a deadline asked for while one is
	// under way needs the clock.
	writing atomic.Int32

	// bg is the phase of net/http's background read (bgNone, bgParked, bgClosed); wake
	// ends a parked one, and timer is its grace. wake and timer are made at the first
	// park, by the goroutine reading (net/http reads a connection from one goroutine at
	// a time), and only it touches timer; whoever moves bg from bgParked sends on wake.
	// See awaitBackground.
	bg    atomic.Int32
	wake  chan bgWake
	timer *time.Timer

	// x is the exchange its HTTP/1 requests reuse, one at a time (exchangeFor); only
	// the goroutine serving the connection touches it.
	x *exchange
}

// rd's layout: Reads under way below readShift, bytes read above.
const (
	readShift = 16
	readMask  = 1<<readShift - 1
)

func (c *trackedConn) Read(p []byte) (int, error) {
	if c.wantR.Load() == deadlinePast {
		// What the socket would answer, and before any system call (the runtime's
		// poller fails a read whose deadline has passed first), but without putting
		// the deadline on it: net/http's abort of its background read comes before
		// that read, most of the time, and is cleared right after.
		c.readTimedOut()
		return 0, os.ErrDeadlineExceeded
	}
	if len(p) == 1 && c.wantR.Load() == 0 && c.state.Load() == int32(http.StateActive) {
		if err := c.awaitBackground(); err != nil {
			return 0, err
		}
	}
	c.rd.Add(1) // under way before looking at the deadline (see the fields' comment)
	if c.wantR.Load() != c.setR.Load() {
		c.rmu.Lock()
		err := c.syncReadDeadlineLocked()
		c.rmu.Unlock()
		if err != nil {
			c.rd.Add(-1)
			return 0, err
		}
	}
	n, err := c.Conn.Read(p)
	c.rd.Add(int64(n)<<readShift - 1)
	if err != nil && isTimeout(err) {
		c.readTimedOut()
	}
	return n, err
}

// bytesRead is how much has been read from the connection (modulo 2^48: only
// compared for equality).
func (c *trackedConn) bytesRead() int64 { return c.rd.Load() >> readShift }

// readTimedOut counts a header timeout: a read deadline passed while a request header
// was due (a new connection, or an idle one that had started its next request). Body
// deadlines pass while the connection is active and are counted by the body reader; an
// idle connection with nothing sent is the keep-alive timeout, which is no rejection.
func (c *trackedConn) readTimedOut() {
	switch http.ConnState(c.state.Load()) {
	case http.StateNew:
	case http.StateIdle:
		if c.bytesRead() == c.readAtIdle.Load() {
			return
		}
	default:
		return
	}
	if c.counted.CompareAndSwap(false, true) {
		c.l.metrics.GatewayRejection(telemetry.RejectHeaderTimeout)
	}
}

// Why lazy write deadlines? Every response sets a write deadline (WriteTimeout) and
// clears it afterwards, and net/http clears it again after each request: on the socket
// each is a change to the runtime's timer heap, the most expensive part of a small
// response after the write itself. So the socket's deadline follows the one asked for
// lazily, when something is written:
//
//   - asked for none: the socket's is cleared;
//   - asked for one: the socket's is kept when it falls at most writeSlack before it
//     (never after), and otherwise moved to it.
//
// A connection serving requests less than writeSlack apart (WriteTimeout/4) touches the
// timer heap about once per writeSlack instead of twice per response, and every write
// still ends within WriteTimeout, cut no sooner than WriteTimeout−writeSlack. A deadline
// asked for that has already passed while a Write is under way is set at once: it is
// how a blocked write is aborted (with none under way, the next Write fails at once).

// SetWriteDeadline records t as the connection's write deadline; the socket follows at
// the next write (syncWriteDeadline), or at once when t has passed and a Write is
// under way.
func (c *trackedConn) SetWriteDeadline(t time.Time) error {
	want := c.l.deadline(t)
	if c.wantW.Load() != want {
		c.wantW.Store(want) // before looking at writing (see the fields' comment)
	}
	if c.writing.Load() > 0 && c.l.passed(want) {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		return c.syncWriteDeadlineLocked()
	}
	return nil
}

// armWrite asks for a write deadline timeout from now, as SetWriteDeadline would with
// time.Now().Add(timeout), but with one monotonic clock reading where time.Now takes
// two (wall and monotonic) and with no check that it has passed: it has not.
func (c *trackedConn) armWrite(timeout time.Duration) {
	c.wantW.Store(c.l.now() + int64(timeout))
}

// armWriteFrom asks for a write deadline timeout after from, a time read earlier
// during the request with its monotonic reading (the guest call's end): no clock
// reading at all. from is at most microseconds old, so the deadline is that much
// earlier than armWrite's would be.
func (c *trackedConn) armWriteFrom(from time.Time, timeout time.Duration) {
	c.wantW.Store(c.l.deadline(from.Add(timeout)))
}

// Why do deadlines count from the limiter's epoch? A request moves its connection's
// deadlines about six times (see the lazy deadlines below), and each move used to read
// the clock to tell whether the deadline had passed: time.Now, two clock readings
// (wall and monotonic) that cost about 100 ns each on the virtual machines measured
// (bench/RESULTS.md). As nanoseconds since epoch, a deadline at or before the epoch,
// as net/http's "a long time ago" to abort a pending read, is known passed without
// the clock, and any other takes one monotonic reading (time.Since).

// deadlinePast is what deadline makes of any time at or before the epoch, such as
// net/http's "a long time ago" that ends its background read.
const deadlinePast = 1

// deadline is t in ns since l.epoch, at least 1, or 0 for the zero time (none).
func (l *connLimiter) deadline(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return max(int64(t.Sub(l.epoch)), deadlinePast)
}

// now is the time since l.epoch, from the monotonic clock alone.
func (l *connLimiter) now() int64 { return int64(time.Since(l.epoch)) }

// passed reports whether the deadline want (from deadline) has passed: one at or
// before the epoch without reading the clock.
func (l *connLimiter) passed(want int64) bool {
	return want == deadlinePast || (want != 0 && want <= l.now())
}

// SetDeadline sets both deadlines, through SetReadDeadline and SetWriteDeadline so
// that their records of the socket's stay true.
func (c *trackedConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// Why lazy read deadlines? net/http moves a keep-alive connection's read deadline five
// times per request (idle timeout, header timeout, cleared after the header, cleared
// for its background read, set in the past to end that read, cleared again), most of
// them with no read in between. So SetReadDeadline records the deadline and a Read
// puts it on the socket first, exactly (no slack: a read deadline that fired early
// would cancel a request through net/http's background read). A deadline that has
// passed while a Read is pending is set at once, since that is how net/http ends a
// pending read (net/http's background read, parked off the socket, is ended without
// it: background.go). The one
// difference from a plain connection: moving a deadline later, or clearing it, while a
// Read is pending does not reach that Read (net/http never does).

// SetReadDeadline records t as the connection's read deadline; the socket follows at
// the next Read (syncReadDeadline), or at once when t has passed and a Read is
// pending.
func (c *trackedConn) SetReadDeadline(t time.Time) error {
	want := c.l.deadline(t)
	// Stored before looking at rd (see the fields' comment); one already there was
	// stored so by whoever asked for it. net/http asks for none three times in a row.
	if c.wantR.Load() != want {
		c.wantR.Store(want)
	}
	// Stored before looking at the phase, as awaitBackground parks before looking at
	// the deadline: a parked background read is ended here, off the socket.
	if want != 0 && c.bg.Load() == bgParked && c.l.passed(want) && c.bg.CompareAndSwap(bgParked, bgNone) {
		c.wake <- bgAborted
		return nil
	}
	if c.rd.Load()&readMask != 0 && c.l.passed(want) {
		c.rmu.Lock()
		defer c.rmu.Unlock()
		return c.syncReadDeadlineLocked()
	}
	return nil
}

// syncReadDeadlineLocked puts the read deadline asked for on the socket. c.rmu held.
func (c *trackedConn) syncReadDeadlineLocked() error {
	want := c.wantR.Load()
	if want == c.setR.Load() {
		return nil
	}
	var t time.Time
	if want != 0 {
		t = c.l.epoch.Add(time.Duration(want))
	}
	if err := c.Conn.SetReadDeadline(t); err != nil {
		return err
	}
	c.setR.Store(want)
	return nil
}

func (c *trackedConn) Write(p []byte) (int, error) {
	c.writing.Add(1) // under way before looking at the deadline (see the fields' comment)
	if !c.writeDeadlineKept(c.wantW.Load(), c.setW.Load()) {
		c.wmu.Lock()
		err := c.syncWriteDeadlineLocked()
		c.wmu.Unlock()
		if err != nil {
			c.writing.Add(-1)
			return 0, err
		}
	}
	n, err := c.Conn.Write(p)
	c.writing.Add(-1)
	if err != nil && isTimeout(err) && c.wcounted.CompareAndSwap(false, true) {
		// Counted here, once per connection, not by the handler: a small response is
		// written after the handler has returned (see writeBody).
		c.l.metrics.GatewayRejection(telemetry.RejectWriteTimeout)
	}
	return n, err
}

// syncWriteDeadlineLocked brings the socket's write deadline in line with the one asked
// for, as the comment above SetWriteDeadline says. c.wmu held.
func (c *trackedConn) syncWriteDeadlineLocked() error {
	want := c.wantW.Load()
	if c.writeDeadlineKept(want, c.setW.Load()) {
		return nil
	}
	var t time.Time
	if want != 0 {
		t = c.l.epoch.Add(time.Duration(want))
	}
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	c.setW.Store(want)
	return nil
}

// writeDeadlineKept reports whether the socket's write deadline set may stay for the
// one asked for, want: the same, or at most writeSlack before it.
func (c *trackedConn) writeDeadlineKept(want, set int64) bool {
	return want == set || (want != 0 && set != 0 && set <= want && want-set <= int64(c.l.writeSlack))
}

func (c *trackedConn) Close() error {
	l := c.l
	l.mu.Lock()
	if !c.closed {
		c.closed = true
		l.open--
		l.metrics.GatewayConnectionsAdd(-1)
		l.unlinkLocked(c)
	}
	c.state.Store(int32(http.StateClosed))
	l.mu.Unlock()
	return c.closeSocket()
}

// closeSocket closes the connection underneath and ends a parked background read,
// which then reads from the closed socket and fails, as a pending read would have.
func (c *trackedConn) closeSocket() error {
	err := c.Conn.Close()
	if c.bg.Swap(bgClosed) == bgParked {
		c.wake <- bgClosing
	}
	return err
}

// setState follows the server's view of the connection: idle ones can be closed for a
// newcomer at the cap. It takes no lock and writes nothing other connections share:
// admit and closeIdle read the state and idleSince.
func (c *trackedConn) setState(s http.ConnState) {
	if s == http.StateIdle {
		c.readAtIdle.Store(c.bytesRead())
		// Stamped before the state turns idle, so that whoever sees it idle sees this
		// period's stamp (closeIdle relies on it).
		c.idleSince.Store(c.l.now())
	}
	c.state.Store(int32(s))
}

// connState is the http.Server's ConnState hook.
func connState(c net.Conn, s http.ConnState) {
	if tc := tracked(c); tc != nil {
		tc.setState(s)
	}
}

// tracked finds the trackedConn under c (a TLS connection wraps it).
func tracked(c net.Conn) *trackedConn {
	for c != nil {
		switch v := c.(type) {
		case *trackedConn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// bodyReader reads a request body under the body limits: each read must come within
// BodyTimeout of the previous one, and after the first BodyTimeout the body must average
// MinBodyRate. It moves the connection's read deadline before each read.
type bodyReader struct {
	r        io.Reader
	rc       *http.ResponseController
	idle     time.Duration
	minRate  int64
	start    time.Time
	n        int64
	timedOut bool
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.idle > 0 {
		now := time.Now()
		deadline := now.Add(b.idle)
		if b.minRate > 0 {
			due := b.start.Add(b.idle + time.Duration(float64(b.n)/float64(b.minRate)*float64(time.Second)))
			if due.Before(deadline) {
				deadline = due
			}
		}
		// ErrNotSupported (a ResponseWriter that is not the server's) leaves the body
		// without a deadline, as before.
		b.rc.SetReadDeadline(deadline)
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	if err != nil && err != io.EOF && isTimeout(err) {
		b.timedOut = true
	}
	return n, err
}

// writeChunk is how much of a response is written under one write deadline.
const writeChunk = 64 << 10

// smallBody is the largest body writeBody leaves in net/http's buffers for the server
// to write once the handler returns: net/http's bufferBeforeChunkingSize, the
// response's own buffer, which a body that fits does not leave before then.
const smallBody = 2 << 10

// serverCountsBody reports whether the server, not the gateway, should declare the
// Content-Length of a response to r whose body is n bytes: on the gateway's own server
// (tc set) a body writeBody leaves in net/http's buffer until the handler returns,
// and net/http then declares its length itself (HTTP/1: chunkWriter.writeHeader;
// HTTP/2: the stream's writeChunk), for 0 bytes too. Not for HEAD, where net/http
// leaves an empty body's length out (the handler may not have written it): the
// gateway declares what the guest answered.
//
// Why? A Content-Length in the handler's map is one more field for net/http to copy
// (Header.Clone at WriteHeader), sort and scan as it writes (Header.writeSubset), and
// a string to format here; the server's own goes straight into its buffer.
func serverCountsBody(tc *trackedConn, r *http.Request, n int) bool {
	return tc != nil && n <= smallBody && r.Method != http.MethodHead
}

// writeBody writes body under the write timeout: every chunk must be taken by the client
// within WriteTimeout. It reports whether the client stopped reading. tc is the
// request's connection when the gateway's own server serves it (nil otherwise): its
// deadline is then moved directly, with one monotonic clock reading (armWrite), or
// none for the first chunk when from, the guest call's end, is known (armWriteFrom).
//
// The deadline is not cleared afterwards: net/http clears it after every response
// (after finishing the request, before reading the next), and with the lazy deadlines
// of trackedConn, which only reach the socket when something is written, clearing it
// here as well would only cost a lock.
//
// Why is a small body not flushed? On the gateway's own server (tc set), a body of at
// most smallBody bytes stays in net/http's buffers until the handler returns, and the
// server writes it then, still under the deadline armed here (net/http clears the
// write deadline only after finishing the request). Flushing from the handler instead
// makes net/http copy the header map (a response written before its handler is done
// may see the handler change it), 0.7 µs of a 25 µs request. The write stays bounded
// by the timeout, and a client that stops reading is still counted: trackedConn.Write
// counts the timeout. Only the request's own record (status, error reason) no longer
// shows it, since the handler has returned; larger bodies, the ones that can fill a
// socket's buffers, are written and flushed here and are recorded as before.
func writeBody(w http.ResponseWriter, rc *http.ResponseController, tc *trackedConn, body []byte, timeout time.Duration, from time.Time) (timedOut bool) {
	if timeout <= 0 {
		w.Write(body)
		return false
	}
	arm := func() error {
		if tc != nil {
			tc.armWrite(timeout)
			return nil
		}
		return rc.SetWriteDeadline(time.Now().Add(timeout))
	}
	if tc != nil && !from.IsZero() {
		// The first chunk's deadline counts from the guest call's end: no clock reading.
		tc.armWriteFrom(from, timeout)
	} else if arm() != nil {
		w.Write(body)
		return false
	}
	if tc != nil && len(body) <= smallBody {
		w.Write(body) // buffered: the server writes it under the deadline, as above
		return false
	}
	var err error
	for len(body) > 0 && err == nil {
		n := min(len(body), writeChunk)
		_, err = w.Write(body[:n])
		body = body[n:]
		if len(body) > 0 && err == nil {
			arm()
		}
	}
	if err == nil {
		err = rc.Flush() // within the deadline, so the last bytes are bounded too
	}
	return err != nil && isTimeout(err)
}

// connKey is the key of a request's *trackedConn in its context (Serve's ConnContext).
type connKey struct{}

// connContext is the http.Server's ConnContext hook: it puts the tracked connection
// under c (a TLS connection wraps it) in c's context.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if tc := tracked(c); tc != nil {
		return context.WithValue(ctx, connKey{}, tc)
	}
	return ctx
}

// connOf returns the gateway connection r came on, or nil when another server serves it.
func connOf(r *http.Request) *trackedConn {
	tc, _ := r.Context().Value(connKey{}).(*trackedConn)
	return tc
}
