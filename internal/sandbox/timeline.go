package sandbox

import (
	"cmp"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/telemetry"
)

// The per-instance timeline (the console's Debug view): each Function keeps a record
// of its live instances and of the last TimelineKeep discarded ones, each with a
// bounded list of events. Hooks: newInstance (created, initialised, failed starts,
// warmup failures), Invoke (requests, failures), putInstance (idle) and discard.
//
// The request path writes the instance's request count and last request's time as
// plain words under the pool's lock, which putInstance holds anyway to push the
// instance back (Timelines reads them under it too), and touches the record
// otherwise only with atomics (error count, memory when it grew); the record's mutex is
// taken only for events, which a request adds twice at most in an instance's life
// (its first request) plus once per failure. A reactor instance's record does not
// say whether it is busy: Timelines tells from the pool's idle list, sparing every
// request two atomic stores.

const (
	// TimelineKeep is how many discarded instances a Function remembers.
	TimelineKeep = 32
	// timelineEvents bounds one instance's events. The first three (created,
	// initialised, first request) and the discard are always kept; failures in
	// between replace the oldest failure once the list is full.
	timelineEvents = 16
	// timelineDetail bounds an event's detail (an error message).
	timelineDetail = 300
)

// Instance states in InstanceTimeline.State. A reactor instance's record stays
// stateIdle from its start to its discard; Timelines shows it busy while it is out of
// the idle list. A command module's run is stateBusy once started.
const (
	stateStarting uint32 = iota
	stateIdle
	stateBusy
	stateDiscarded
)

var stateNames = [...]string{"starting", "idle", "busy", "discarded"}

// Event kinds.
const (
	EventCreated      = "created"
	EventInitialized  = "initialized"
	EventWarmed       = "warmed"
	EventFirstRequest = "first_request"
	EventFailed       = "request_failed"
	EventDiscarded    = "discarded"
)

// StartCommand is the Start of a command module's instance: instantiated for one
// request, whose _start then runs (reactors' are "initialize" or "snapshot").
const StartCommand = "command"

// ReasonExited is the discard reason of a command module's instance whose run ended
// as a command's does, _start returning or the guest exiting with status 0, whatever
// it wrote (a malformed response is the request's failure, its detail).
const ReasonExited = "exited"

// ReasonStart is the discard reason of an instance that failed to start for another
// cause than a trap, a timeout, memory or its warmup hook (instantiation, a snapshot
// restore).
const ReasonStart = "start"

// instRecord is one instance's timeline. The atomics are the request path's; requests
// and lastReq are under the owning Function's mu (see countLocked); the rest is
// written once before the record is published, or under timeline.mu.
type instRecord struct {
	id      uint64
	created time.Time
	start   string // "snapshot" or "initialize"
	reason  string // a telemetry.StartXxx value

	state    atomic.Uint32
	errors   atomic.Uint64
	memBytes atomic.Uint64
	initNano atomic.Int64

	// Under Function.mu.
	requests uint64
	lastReq  int64 // unix nanoseconds, 0 before the first request

	// Under timeline.mu.
	events        []v1.InstanceEvent
	discarded     time.Time
	discardReason string
	discardDetail string
	lastFailure   string // the last failed request's error: the discard's detail
}

// timeline is a Function's record. mu is a leaf lock.
type timeline struct {
	mu      sync.Mutex
	live    map[uint64]*instRecord
	gone    []*instRecord // ring of the last TimelineKeep discarded, next is the oldest
	next    int
	dropped int // discarded records overwritten in gone
}

// add records a new instance, starting.
func (t *timeline) add(id uint64, created time.Time, start, reason string) *instRecord {
	r := &instRecord{id: id, created: created, start: start, reason: reason,
		events: make([]v1.InstanceEvent, 1, 4)}
	r.events[0] = v1.InstanceEvent{Time: created, Kind: EventCreated, Detail: reason}
	t.mu.Lock()
	if t.live == nil {
		t.live = map[uint64]*instRecord{}
	}
	t.live[id] = r
	t.mu.Unlock()
	return r
}

// ready marks the instance initialised (and warmed, when there is a hook) at now.
func (t *timeline) ready(r *instRecord, initDone, now time.Time, warmed bool, mem uint64) {
	r.initNano.Store(int64(now.Sub(r.created)))
	r.memBytes.Store(mem)
	t.mu.Lock()
	r.addEventLocked(v1.InstanceEvent{Time: initDone, Kind: EventInitialized, Detail: r.start})
	if warmed {
		r.addEventLocked(v1.InstanceEvent{Time: now, Kind: EventWarmed})
	}
	t.mu.Unlock()
	r.state.CompareAndSwap(stateStarting, stateIdle)
}

// request records the events of an instance's nth request, which ended at end: the
// first request, and a failure (err, or a 5xx status, which is counted). The count and
// the time are countLocked's. Every other request, nearly all, costs the comparisons
// here: request is small enough to be inlined at the call, unlike recordRequest.
func (t *timeline) request(r *instRecord, n uint64, end time.Time, status int, err error) {
	if n == 1 || err != nil || status >= 500 {
		t.recordRequest(r, n, end, status, err)
	}
}

// recordRequest is request's work for a first or failed request.
func (t *timeline) recordRequest(r *instRecord, n uint64, end time.Time, status int, err error) {
	if err != nil || status >= 500 {
		r.errors.Add(1)
	}
	if n != 1 && err == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if n == 1 {
		r.addEventLocked(v1.InstanceEvent{Time: end, Kind: EventFirstRequest})
	}
	if err != nil {
		detail := clip(errorDetail(err))
		r.lastFailure = detail
		r.addEventLocked(v1.InstanceEvent{Time: end, Kind: EventFailed, Detail: detail})
	}
}

// countLocked records that the instance has served n requests, the last ending at
// end. The owning Function's mu held: putInstance takes it anyway to give the instance
// back, so the request path writes two plain words where it wrote two atomics.
func (r *instRecord) countLocked(n uint64, end time.Time) {
	r.requests = n
	r.lastReq = end.UnixNano()
}

// discard records the instance's end, and moves it from live to the ring of discarded
// records. detail explains reason when the instance's last request did not (a failed
// start).
func (t *timeline) discard(r *instRecord, now time.Time, reason, detail string) {
	if r == nil {
		return
	}
	r.state.Store(stateDiscarded)
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.live[r.id]; !ok {
		return // already discarded
	}
	delete(t.live, r.id)
	if detail == "" && reason != telemetry.ReasonIdle && reason != telemetry.ReasonClosed && reason != telemetry.ReasonRecycled {
		detail = r.lastFailure
	}
	r.discarded, r.discardReason, r.discardDetail = now, reason, clip(detail)
	if len(r.events) >= timelineEvents {
		r.events = r.events[:timelineEvents-1] // the discard always has its place
	}
	r.events = append(r.events, v1.InstanceEvent{Time: now, Kind: EventDiscarded, Detail: reason})
	if len(t.gone) < TimelineKeep {
		t.gone = append(t.gone, r)
		return
	}
	t.gone[t.next] = r
	t.next = (t.next + 1) % TimelineKeep
	t.dropped++
}

// addEventLocked appends e, keeping the first three events and a place for the discard:
// once full, the oldest event after the first three makes room. timeline.mu held.
func (r *instRecord) addEventLocked(e v1.InstanceEvent) {
	if len(r.events) >= timelineEvents-1 {
		const keep = 3
		copy(r.events[keep:], r.events[keep+1:])
		r.events = r.events[:len(r.events)-1]
	}
	r.events = append(r.events, e)
}

// snapshot returns the timelines (the owning Function's mu held, for the counts), live ones first (oldest first), then the discarded
// ones (most recently discarded first), and how many discarded ones were forgotten.
func (t *timeline) snapshot() ([]v1.InstanceTimeline, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]v1.InstanceTimeline, 0, len(t.live)+len(t.gone))
	for _, r := range t.live {
		out = append(out, r.viewLocked())
	}
	slices.SortFunc(out, func(a, b v1.InstanceTimeline) int { return cmp.Compare(a.ID, b.ID) })
	for i := range len(t.gone) {
		// Newest first: the slot before next, going back.
		j := (t.next - 1 - i + 2*len(t.gone)) % len(t.gone)
		out = append(out, t.gone[j].viewLocked())
	}
	return out, t.dropped
}

// viewLocked is r as the API shows it. timeline.mu and the Function's mu held.
func (r *instRecord) viewLocked() v1.InstanceTimeline {
	v := v1.InstanceTimeline{
		ID: r.id, State: stateNames[r.state.Load()], Created: r.created, Start: r.start, Reason: r.reason,
		InitMillis: float64(r.initNano.Load()) / 1e6, Requests: r.requests, Errors: r.errors.Load(),
		MemoryBytes: r.memBytes.Load(), Discarded: r.discarded, DiscardReason: r.discardReason,
		DiscardDetail: r.discardDetail, Events: slices.Clone(r.events),
	}
	if !r.discarded.IsZero() {
		v.State = stateNames[stateDiscarded]
	}
	if ns := r.lastReq; ns != 0 {
		v.LastRequest = time.Unix(0, ns)
	}
	return v
}

// startFailure names why an instance failed to start, for its discard.
func startFailure(err error) string {
	var we *WarmupError
	var se *startError
	switch {
	case errors.As(err, &we):
		return telemetry.ReasonWarmup
	case errors.As(err, &se) && se.timeout > 0:
		return telemetry.ReasonTimeout
	case errors.As(err, &se) && se.memory > 0:
		return telemetry.ReasonOOM
	case errors.As(err, &se):
		return telemetry.ReasonTrap
	}
	return ReasonStart
}

// errorDetail is a request error as an event's detail: its reason and message.
func errorDetail(err error) string {
	var e *Error
	if errors.As(err, &e) {
		s := e.Reason + ": " + e.Msg
		if e.Err != nil {
			s += ": " + e.Err.Error()
		}
		return s
	}
	return err.Error()
}

func clip(s string) string {
	if len(s) <= timelineDetail {
		return s
	}
	return s[:timelineDetail] + "…"
}

// Timelines returns the function's instance timelines: live ones (oldest first), then
// the last TimelineKeep discarded ones (most recent first), with Version set; and how
// many discarded ones are no longer held. A command module's instances, one per
// request, are recorded the same way (invokeCommand).
func (f *Function) Timelines() ([]v1.InstanceTimeline, int) {
	var idle map[uint64]bool
	f.mu.Lock() // the records' counts are under it (countLocked); timeline.mu is a leaf
	if f.abi == ABIReactor {
		idle = make(map[uint64]bool, len(f.idle))
		for _, inst := range f.idle {
			idle[inst.id] = true
		}
	}
	out, dropped := f.timeline.snapshot()
	f.mu.Unlock()
	for i := range out {
		out[i].Version = f.spec.Version
		// Started and live but not in the pool: serving a request (or, for a moment,
		// made by a top-up on its way to the pool).
		if idle != nil && out[i].State == stateNames[stateIdle] && !idle[out[i].ID] {
			out[i].State = stateNames[stateBusy]
		}
	}
	return out, dropped
}
