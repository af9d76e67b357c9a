package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"fermion.dev/fermion/api/abi"
	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/autoscale"
	"fermion.dev/fermion/internal/telemetry"
)

// Request is one HTTP request for a function.
type Request struct {
	ID         string // request id, tagged on guest log lines
	Method     string
	URI        string // path and query
	Host       string
	RemoteAddr string
	TLS        bool // the request came over HTTPS (CGI: HTTPS=on, REQUEST_SCHEME=https)
	Header     http.Header
	// CanonicalHeader says Header's names are all canonical already, as net/http's
	// server leaves them (it canonicalises every name it parses and refuses a request
	// with a name it cannot): the sandbox then lists them for the guest as they are,
	// instead of canonicalising each name of every request again. Leave it false for a
	// map built any other way.
	CanonicalHeader bool
	// Added are header fields the host adds to the request (the gateway's request id,
	// trace context and X-Forwarded-Proto), names canonical and each once: the guest
	// gets them in place of Header's fields of the same names. They are kept out of
	// Header so the gateway adds them without writing into net/http's map of the
	// client's fields (a map insert each, and the map's growth when the client sent
	// seven fields or more) and the sandbox sends them without iterating and
	// canonicalising them as map entries.
	Added Header
	Body  []byte
	// Route is the route prefix that matched (SCRIPT_NAME for command modules).
	Route string
	// Reply, when set, is where a reactor's response is decoded, reusing its storage
	// (the Response itself and a small copy buffer) instead of allocating them: the
	// response Invoke returns is then Reply, and the one decoded there before is
	// overwritten. The gateway keeps one per connection, which serves one request
	// at a time.
	Reply *Response
}

// Response is a function's answer.
type Response struct {
	Status int
	Header Header
	Body   []byte
	// Cold is true when the request waited for a new instance.
	Cold bool
	// Instance numbers the instance that served the request, from 1 per Function in
	// the order they were made (a command module's run is an instance): what a slow
	// request's exemplar names, to match it with the instance's timeline and log lines.
	Instance uint64
	// End is when the guest call ended, from the clock reading that ends it (zero for
	// command modules): the gateway counts the response's write deadline from it
	// rather than reading the clock again.
	End time.Time

	inline [4]abi.Header // Header's backing array when the guest sent few headers
	// buf is the copy of guest memory Body and Header view, kept for the next
	// response decoded here (Request.Reply) when it is small.
	buf []byte
}

// maxKeptReply is the largest copy buffer a reused Response keeps: small responses,
// the common case, then cost no allocation, and a connection holds little.
const maxKeptReply = 2 << 10

// Reset empties r for reuse as a Request.Reply: its status, headers and body are
// dropped, and only its copy buffer (at most maxKeptReply bytes) is kept, so a reply
// held between requests pins nothing of the last one.
func (r *Response) Reset() {
	buf := r.buf
	*r = Response{}
	r.buf = buf
}

// Header is a response's header fields as the function sent them: in its order, names
// spelled its way, a name possibly repeated. (A list, not an http.Header: the gateway
// copies it into its ResponseWriter once, with no map in between.)
type Header []abi.Header

// Get returns the first value of the named field, names compared case-insensitively,
// or "" when there is none.
func (h Header) Get(name string) string {
	for _, kv := range h {
		if strings.EqualFold(kv.Name, name) {
			return kv.Value
		}
	}
	return ""
}

// has reports whether h has a field named name, spelled exactly so (Request.Added's
// names are canonical).
func (h Header) has(name string) bool {
	for _, kv := range h {
		if kv.Name == name {
			return true
		}
	}
	return false
}

// headerFromMap lists m's fields, each name's values together in their order.
func headerFromMap(m http.Header) Header {
	n := 0
	for _, vs := range m {
		n += len(vs)
	}
	h := make(Header, 0, n)
	for k, vs := range m {
		for _, v := range vs {
			h = append(h, abi.Header{Name: k, Value: v})
		}
	}
	return h
}

// Stats is a snapshot of a function's pool: Warm instances are idle and ready, Busy ones
// serve a request or are starting, Total is both.
type Stats struct {
	Warm, Busy, Total int
}

// Function is one loaded function version: a compiled module, its runtime (which
// carries the memory limit) and a pool of instances.
type Function struct {
	// The pool comes first: the words every request writes (mu to closed) then lie in
	// one 128-byte-aligned block, as the allocator puts a Function 8 bytes into a slot
	// aligned to its size class (1 KiB): one pair of cache lines, which x86 cores fetch
	// together, moves between the cores serving requests, not three lines as when they
	// sat mid-struct. TestPoolWordsTogether keeps them there.

	// mu guards the pool and its concurrency slots: a request takes a slot and the
	// warmest idle instance in one critical section and gives both back in another
	// (see acquire). It is held only for list and counter updates; what it orders with
	// other locks: f.mu may be taken under nothing of the request path, and nothing but
	// waiter hand-offs (a send on a buffered channel) and leaf locks is taken under it.
	mu sync.Mutex
	// slots bounds concurrent requests: busy of limit are taken. A request holds a slot
	// for as long as it uses an instance, so busy instances never outnumber slots; for
	// reactors limit is at most max_instances, which is what keeps the pool within its
	// cap. Top-ups hold a slot while they create an instance, and Close waits for busy
	// to reach zero.
	slots slots
	idle  []*instance // LIFO: the most recently used instance is the warmest
	total int         // live instances, idle and busy
	// Autoscaling (reactors): peak is the most instances serving requests at once since
	// the last tick, which folds it into scaler; desired is scaler's size for the pool,
	// the floor that top-ups fill and idle reaping keeps. toppingUp counts the instances
	// top-ups are creating: live, not idle, but serving no request, so not demand.
	toppingUp int
	peak      int
	memBytes  int64 // linear memory of the live instances, as of their last release
	closed    bool
	desired   int
	scaler    *autoscale.Recommender
	// replace counts instances discarded after a request that left the pool below its
	// desired size: the next that many top-up starts replace them (StartReplace),
	// whichever top-up goroutine makes them.
	replace int

	stop chan struct{}
	wg   sync.WaitGroup // reaper and top-up goroutines

	engine   *Engine
	spec     Spec
	id       string
	abi      string
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	metrics  *telemetry.FunctionMetrics
	logger   *slog.Logger
	tracer   trace.Tracer
	tracing  bool // a tracer was configured; spans are skipped otherwise
	// interruptible: the module carries the fermion_interrupt global (interrupt.go);
	// otherwise the runtime was built WithCloseOnContextDone.
	interruptible bool
	// memHold is what each live instance holds of the node's memory: limits.memory in
	// whole pages (nodememory.go).
	memHold int64
	// initialMemory is the bytes of the module's initial memory: what a new instance
	// that runs _initialize has faulted in at once on a fresh mapping (memory_linux.go).
	initialMemory uint64
	// grants are the files grants' roots, shared by every instance; closed with rt.
	grants []grantMount
	// snaps is the snapshot new instances start from, if any (snapshot.go).
	snaps snapshots
	// warmups tracks the warmup hook's consecutive failures (warmup.go).
	warmups warmupState
	// data is the data segments the host writes into each instance that does not start
	// from a snapshot; nil when wazero writes them (datapassive.go).
	data []dataSegment
	// timeline records the instances' lives (timeline.go).
	timeline timeline
	// memPool keeps the linear memories of discarded instances for new ones
	// (memory_linux.go).
	memPool memoryPool

	lastInst atomic.Uint64 // the last instance's number (Response.Instance)
}

func newFunction(e *Engine, spec Spec, rt wazero.Runtime, compiled wazero.CompiledModule, kind string) *Function {
	capacity := spec.Limits.MaxConcurrency
	if capacity <= 0 {
		capacity = spec.Scaling.MaxInstances
	}
	if kind == ABIReactor && capacity > spec.Scaling.MaxInstances {
		capacity = spec.Scaling.MaxInstances
	}
	logger := e.logger.With("function", spec.Name, "version", spec.Version)
	for k, v := range spec.Labels {
		logger = logger.With(k, v)
	}
	f := &Function{
		engine:   e,
		spec:     spec,
		id:       spec.Name + "@" + spec.Version,
		abi:      kind,
		rt:       rt,
		compiled: compiled,
		metrics:  e.metrics.Function(spec.Name, spec.Version),
		logger:   logger,
		tracer:   e.tracer,
		tracing:  e.tracing,
		slots:    newSlots(capacity),
		stop:     make(chan struct{}),
	}
	target := spec.Scaling.TargetUtilizationPercentage
	if target == 0 {
		target = 100 // a hand-built Spec: the manifest's default
	}
	f.scaler = autoscale.New(autoscale.Config{Min: spec.Scaling.MinWarm, Max: spec.Scaling.MaxInstances,
		Window: spec.Scaling.IdleTimeout, TargetPercent: target})
	if kind == ABIReactor {
		f.desired = spec.Scaling.MinWarm
	}
	f.metrics.Instances(func() telemetry.Pool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return telemetry.Pool{Warm: len(f.idle), Busy: f.total - len(f.idle), Desired: f.desired, MemoryBytes: f.memBytes}
	})
	return f
}

// Name returns the function's name.
func (f *Function) Name() string { return f.spec.Name }

// Version returns the function's version.
func (f *Function) Version() string { return f.spec.Version }

// ABI returns the detected ABI.
func (f *Function) ABI() string { return f.abi }

// Traces reports whether the function records spans of its own (with the engine's
// tracer), children of the span in the context Invoke is given; without, it never
// reads that span, and a caller need not put one there.
func (f *Function) Traces() bool { return f.tracing }

// Spec returns the spec the function was loaded from.
func (f *Function) Spec() Spec { return f.spec }

// Stats returns a snapshot of the pool.
func (f *Function) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Stats{Warm: len(f.idle), Busy: f.total - len(f.idle), Total: f.total}
}

// Invoke runs one request. Errors are *Error values with the status to send.
func (f *Function) Invoke(ctx context.Context, req *Request) (*Response, error) {
	if int64(len(req.Body)) > f.spec.Limits.MaxRequestBody {
		f.metrics.LimitRejection(telemetry.LimitRequestBody)
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Reason: telemetry.LimitRequestBody,
			Msg: "request body exceeds the function's limit of " + v1.Count(f.spec.Limits.MaxRequestBody, "byte")}
	}
	// The span is looked up only when tracing: with nothing there (the gateway leaves
	// its ids' span out for a function that does not trace) the lookup would walk the
	// request's whole context chain.
	actx, span := ctx, trace.Span(nil)
	if f.tracing {
		actx, span = f.tracer.Start(ctx, "acquire instance")
	}
	end := func() {
		if f.tracing {
			span.End()
		}
	}
	inst, err := f.acquire(ctx, actx)
	if err != nil {
		if f.tracing {
			span.SetStatus(codes.Error, err.Error())
		}
		end()
		return nil, err
	}

	if f.abi == ABICommand {
		end()
		defer f.releaseSlot()
		select {
		case <-f.stop: // the runtime may be closed if Close stopped waiting for requests
			return nil, errClosed(f.id)
		default:
		}
		return f.invokeCommand(ctx, req)
	}
	// The slot goes back with the instance (putInstance), or here when there is none.
	// Deferred so that a panic on the way (a bug: wazero turns the guest's own into
	// errors) does not keep it, which Close would wait for.
	held := true
	defer func() {
		if held {
			f.releaseSlot()
		}
	}()
	cold := false
	if inst == nil {
		inst, cold, err = f.getInstance(actx)
	}
	if f.tracing {
		span.SetAttributes(attribute.Bool("fermion.cold", cold))
	}
	end()
	if err != nil {
		return nil, markCold(err, cold)
	}
	if cold {
		f.metrics.ColdStart()
	}
	resp, reason, err := f.callReactor(ctx, inst, req)
	// lastUsed is the call's end (callReactor). Read before putInstance: once back in
	// the pool, the instance is another request's, whose call sets it again (go test
	// -race found it).
	id, callEnd := inst.id, inst.lastUsed
	if inst.rec != nil { // timeline.go
		status := 0
		if resp != nil {
			status = resp.Status
		}
		f.timeline.request(inst.rec, uint64(inst.uses+1), callEnd, status, err) // counted by putInstance
	}
	held = false
	f.putInstance(inst, reason) // and the slot
	if err != nil {
		return nil, markCold(err, cold)
	}
	resp.Cold, resp.Instance, resp.End = cold, id, callEnd
	return resp, nil
}

// markCold tells the gateway, through an *Error, that the failed request had waited
// for a new instance.
func markCold(err error, cold bool) error {
	if se, ok := err.(*Error); ok && cold {
		se.Cold = true
	}
	return err
}

// acquire takes a concurrency slot and, for a reactor, the most recently used idle
// instance, or nil when none is idle (the caller then makes one: getInstance).
//
// Why one critical section: a request used to take its slot from a buffered channel
// and its instance under f.mu, and to give both back the same way: four lock and
// unlock pairs per request on two words every request shares, each a cache line that
// moves between cores when two of them serve. Under one mutex, slot and instance are
// one lock pair each way (putInstance gives both back). Only a request that finds
// every slot taken goes the slow way (waitSlot), queued in order; so does one whose
// client has already left, so that a closing function still answers "closed" first.
func (f *Function) acquire(ctx, actx context.Context) (*instance, error) {
	if ctx.Err() == nil {
		f.mu.Lock()
		if !f.closed && f.slots.tryTakeLocked() {
			var inst *instance
			if n := len(f.idle); n > 0 {
				inst = f.idle[n-1]
				f.idle[n-1] = nil
				f.idle = f.idle[:n-1]
				f.peak = max(f.peak, f.serving())
			}
			f.mu.Unlock()
			return inst, nil
		}
		f.mu.Unlock()
	}
	if err := f.waitSlot(actx); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		// The client left while the request waited: running it would only interrupt it
		// at once and cost the pool an instance.
		f.releaseSlot()
		return nil, &Error{Status: 499, Reason: telemetry.ReasonCanceled, Msg: "request canceled before it started", Err: err}
	}
	return nil, nil
}

// waitSlot takes a concurrency slot, waiting at most the queue timeout. A function that
// is closing refuses at once, even while waiting: a waiting request would otherwise
// time out and be counted as over the concurrency limit.
func (f *Function) waitSlot(ctx context.Context) error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return errClosed(f.id)
	}
	if f.slots.tryTakeLocked() {
		f.mu.Unlock()
		return nil
	}
	if f.spec.Limits.QueueTimeout <= 0 {
		f.mu.Unlock()
		f.metrics.LimitRejection(telemetry.LimitConcurrency)
		return errOverloaded(f.id, f.slots.limit)
	}
	w := f.slots.enqueueLocked()
	f.mu.Unlock()

	t := time.NewTimer(f.spec.Limits.QueueTimeout)
	defer t.Stop()
	var err error
	select {
	case <-w.ready:
		return nil
	case <-f.stop:
		err = errClosed(f.id)
	case <-t.C:
		f.metrics.LimitRejection(telemetry.LimitConcurrency)
		err = errOverloaded(f.id, f.slots.limit)
	case <-ctx.Done():
		// 499 (client closed request): the client left; not a server error.
		err = &Error{Status: 499, Reason: telemetry.ReasonCanceled,
			Msg: "request canceled while waiting for an instance", Err: ctx.Err()}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.slots.leaveLocked(w) {
		return err
	}
	// Handed a slot as it gave up: the request runs after all (its client's leaving is
	// Invoke's to answer), unless the function is closing.
	if f.closed {
		f.slots.releaseLocked()
		return errClosed(f.id)
	}
	return nil
}

// releaseSlot gives back a slot taken with no instance, or whose instance was not put
// back (putInstance gives back both under one lock).
func (f *Function) releaseSlot() {
	f.mu.Lock()
	f.slots.releaseLocked()
	f.mu.Unlock()
}

// getInstance pops a warm instance or creates one. The caller holds a slot.
func (f *Function) getInstance(ctx context.Context) (*instance, bool, error) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, false, errClosed(f.id)
	}
	if n := len(f.idle); n > 0 {
		// One went idle since acquire looked (or the request waited for its slot).
		inst := f.idle[n-1]
		f.idle[n-1] = nil
		f.idle = f.idle[:n-1]
		f.peak = max(f.peak, f.serving())
		f.mu.Unlock()
		return inst, false, nil
	}
	f.total++
	f.peak = max(f.peak, f.serving())
	f.mu.Unlock()
	inst, err := f.newInstance(ctx, telemetry.StartRequest)
	if err != nil {
		f.mu.Lock()
		f.total--
		f.mu.Unlock()
		return nil, true, f.startFailed(err)
	}
	return inst, true, nil
}

// startFailed turns a failure to create an instance into the request's error, counted
// like the same failure during a request: a failed _initialize is a guest execution that
// trapped, ran out of memory or ran past the deadline.
func (f *Function) startFailed(err error) *Error {
	var nm *nodeMemoryError
	if errors.As(err, &nm) {
		return f.nodeMemoryRefused(err)
	}
	var we *WarmupError
	if errors.As(err, &we) { // warmup.go
		return we.requestError(f.id)
	}
	var se *startError
	if !errors.As(err, &se) {
		return &Error{Status: http.StatusInternalServerError, Reason: telemetry.ReasonTrap,
			Msg: "function failed to start", Err: err}
	}
	switch {
	case se.timeout > 0:
		f.metrics.LimitRejection(telemetry.LimitTimeout)
		return &Error{Status: http.StatusGatewayTimeout, Reason: telemetry.ReasonTimeout,
			Msg: fmt.Sprintf("function %s did not start within its %s timeout", f.id, se.timeout), Err: err}
	case se.memory > 0:
		f.metrics.LimitRejection(telemetry.LimitMemory)
		f.metrics.Trap()
		return &Error{Status: http.StatusInternalServerError, Reason: telemetry.ReasonOOM,
			Msg: fmt.Sprintf("function %s ran out of memory while starting (limit %d MiB)", f.id, se.memory>>20), Err: err}
	}
	f.metrics.Trap()
	return &Error{Status: http.StatusInternalServerError, Reason: telemetry.ReasonTrap,
		Msg: "function failed to start; see its logs", Err: err}
}

// putInstance returns an instance to the pool, or discards it when reason is set, it
// reached max_requests_per_instance, or the function is closing; and gives back the
// request's slot, in the same critical section when the instance goes back to the pool.
func (f *Function) putInstance(inst *instance, reason string) {
	inst.uses++ // lastUsed: set by callReactor from the clock read that ends the call
	if reason == "" && f.spec.Scaling.MaxRequestsPerInstance > 0 && inst.uses >= f.spec.Scaling.MaxRequestsPerInstance {
		reason = telemetry.ReasonRecycled
	}
	if reason == "" {
		// A guest's memory only grows, and seldom after its first requests: most
		// requests write no memory figure. The record's is written before the lock,
		// which then covers only what requests share. (Whether it is busy or idle, the
		// timeline reads from the idle list: Timelines.)
		size := int64(inst.mem.Size())
		grew := size - inst.memBytes
		if grew != 0 && inst.rec != nil { // before another request can take it
			inst.rec.memBytes.Store(uint64(size))
		}
		// The instance keeps holding its memory in the pool (see instance.hold).
		f.mu.Lock()
		if grew != 0 {
			f.memBytes += grew
			inst.memBytes = size
		}
		if inst.rec != nil {
			inst.rec.countLocked(uint64(inst.uses), inst.lastUsed)
		}
		if !f.closed {
			f.idle = append(f.idle, inst)
			f.slots.releaseLocked()
			f.mu.Unlock()
			return
		}
		f.mu.Unlock()
		reason = telemetry.ReasonClosed
	}
	f.discard(inst, reason)
	f.mu.Lock()
	if !f.closed && f.total < f.desired {
		f.replace++
	}
	f.mu.Unlock()
	// Before the request's slot is free: a pool whose every slot is taken is busy
	// anyway, and the next tick tops it up.
	f.topUp()
	f.releaseSlot()
}

// discard closes an instance that is not in the idle list.
func (f *Function) discard(inst *instance, reason string) {
	if inst.lm != nil && (reason == telemetry.ReasonIdle || reason == telemetry.ReasonClosed) {
		inst.lm.discardMemory() // the pool shrinks: its memory goes back to the kernel
	}
	inst.close()
	f.engine.memory.release(f.memHold)
	f.mu.Lock()
	f.total--
	f.memBytes -= inst.memBytes
	if inst.rec != nil && inst.uses > 0 { // an instance discarded after a request
		inst.rec.countLocked(uint64(inst.uses), inst.lastUsed)
	}
	f.mu.Unlock()
	f.metrics.Discard(reason)
	f.timeline.discard(inst.rec, time.Now(), reason, "")
	if reason != telemetry.ReasonIdle && reason != telemetry.ReasonClosed && reason != telemetry.ReasonRecycled {
		f.logger.Warn("instance discarded", "reason", reason, "uses", inst.uses)
	}
}

// prewarm creates min_warm instances before any traffic arrives.
func (f *Function) prewarm(ctx context.Context) error {
	if f.abi != ABIReactor {
		return nil
	}
	for i := 0; i < f.prewarmCount(); i++ { // warmup.go
		f.mu.Lock()
		f.total++
		f.mu.Unlock()
		inst, err := f.newInstance(ctx, telemetry.StartPrewarm)
		if err != nil {
			f.mu.Lock()
			f.total--
			f.mu.Unlock()
			return err
		}
		f.mu.Lock()
		f.idle = append(f.idle, inst)
		f.mu.Unlock()
	}
	return nil
}

// topUp brings the pool up to its desired size (min_warm, or what the autoscaler asks
// for) in the background. Each new instance takes a slot without waiting, so creating
// them never competes with requests for the instance cap; when no slot is free the pool
// is busy anyway and the next tick tops up.
//
// Each start has a reason: StartReplace while discards wait for their replacement
// (f.replace), else StartPrewarm while the pool is below min_warm, else StartScale:
// above min_warm only the autoscaler's demand puts the desired size.
func (f *Function) topUp() {
	if f.abi != ABIReactor {
		return
	}
	f.mu.Lock()
	need := !f.closed && f.total < f.desired
	if !need {
		f.replace = 0 // a request's new instance took the discarded one's place
	}
	if !need || !f.slots.tryTakeLocked() {
		f.mu.Unlock()
		return
	}
	f.mu.Unlock()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			f.mu.Lock()
			if f.closed || f.total >= f.desired {
				f.replace = 0
				f.slots.releaseLocked()
				f.mu.Unlock()
				return
			}
			var reason string
			switch {
			case f.replace > 0:
				reason = telemetry.StartReplace
				f.replace--
			case f.total < f.spec.Scaling.MinWarm:
				reason = telemetry.StartPrewarm
			default:
				reason = telemetry.StartScale
			}
			f.total++
			f.toppingUp++
			f.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), f.spec.Limits.Timeout)
			inst, err := f.newInstance(ctx, reason)
			cancel()
			if err != nil {
				f.mu.Lock()
				f.total--
				f.toppingUp--
				if reason == telemetry.StartReplace {
					f.replace++ // still to replace: the next tick's start does
				}
				f.slots.releaseLocked()
				f.mu.Unlock()
				var nm *nodeMemoryError
				if errors.As(err, &nm) {
					// Not a fault of the function: the node is full. Requests that need
					// an instance are refused and counted; the next tick tries again.
					f.logger.Debug("prewarm instance", "err", err)
				} else {
					f.logger.Error("prewarm instance", "err", err)
				}
				return
			}
			if !f.putInstanceFresh(inst) {
				return
			}
		}
	}()
}

// putInstanceFresh adds an instance a top-up created, never used, to the idle list. It
// reports whether the top-up keeps its slot for the next instance: when a request
// waits for one, the slot goes to it (and so, most likely, does the instance just
// made), and the top-up ends.
func (f *Function) putInstanceFresh(inst *instance) (keepSlot bool) {
	f.mu.Lock()
	f.toppingUp--
	if f.closed {
		f.slots.releaseLocked()
		f.mu.Unlock()
		f.discard(inst, telemetry.ReasonClosed)
		return false
	}
	f.idle = append(f.idle, inst)
	if f.slots.waiting > 0 {
		f.slots.releaseLocked()
		f.mu.Unlock()
		return false
	}
	f.mu.Unlock()
	return true
}

// startReaper runs the pool's housekeeping: every second (or every idle_timeout/2 when
// that is shorter) the autoscaler takes the busy peak since the last tick and sets the
// desired size, and the pool is topped up to it; every idle_timeout/2 (at least 100 ms,
// at most 30 s) instances idle longer than idle_timeout are closed, down to the desired
// size.
func (f *Function) startReaper() {
	if f.abi != ABIReactor {
		return
	}
	reapEvery := min(max(f.spec.Scaling.IdleTimeout/2, 100*time.Millisecond), 30*time.Second)
	tick := min(reapEvery, time.Second)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		t := time.NewTicker(tick)
		defer t.Stop()
		lastReap := time.Now()
		for {
			select {
			case <-f.stop:
				return
			case now := <-t.C:
				f.scale(now)
				if now.Sub(lastReap) >= reapEvery {
					lastReap = now
					f.reap(now)
				}
				f.topUp()
			}
		}
	}()
}

// serving is the number of instances serving requests (or starting for one). f.mu held.
func (f *Function) serving() int { return f.total - len(f.idle) - f.toppingUp }

// scale folds the busy peak since the last tick into the autoscaler and takes its size.
func (f *Function) scale(now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	busy := f.serving()
	f.scaler.Observe(now, max(f.peak, busy))
	f.peak = busy
	f.desired = f.scaler.Desired(now)
}

func (f *Function) reap(now time.Time) {
	var old []*instance
	f.mu.Lock()
	// idle is LIFO, so the oldest are at the front.
	n := 0
	for n < len(f.idle) && f.total-n > f.desired && now.Sub(f.idle[n].lastUsed) > f.spec.Scaling.IdleTimeout {
		n++
	}
	if n > 0 {
		old = append(old, f.idle[:n]...)
		f.idle = append(f.idle[:0], f.idle[n:]...)
	}
	f.mu.Unlock()
	for _, inst := range old {
		f.discard(inst, telemetry.ReasonIdle)
	}
	f.memPool.trim(now.Add(-f.spec.Scaling.IdleTimeout))
}

// Close stops new requests, waits for in-flight ones (until ctx is done), then closes
// every instance and the runtime. If ctx ends first, Close returns an error at once and
// the runtime is closed when the requests still running have ended, each within its
// timeout: closing it under a running guest is a data race inside wazero.
func (f *Function) Close(ctx context.Context) error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	// No slot is taken from here on: once every one is back, no request is in flight.
	drained := f.slots.drainLocked()
	f.mu.Unlock()
	close(f.stop) // wakes the queued requests, which leave refused

	done := true
	select {
	case <-drained:
	default:
		select {
		case <-drained:
		case <-ctx.Done():
			done = false
		}
	}
	f.wg.Wait()
	f.mu.Lock()
	idle := f.idle
	f.idle = nil
	f.mu.Unlock()
	for _, inst := range idle {
		f.discard(inst, telemetry.ReasonClosed)
	}
	f.engine.metrics.Forget(f.spec.Name, f.spec.Version)
	if !done {
		f.engine.closing.Add(1)
		go func() {
			defer f.engine.closing.Done()
			<-drained
			f.rt.Close(context.Background())
			closeGrants(f.grants)
			f.memPool.close()
		}()
		return fmt.Errorf("drain %s: %w; its runtime closes when the requests still running end", f.id, ctx.Err())
	}
	err := f.rt.Close(context.WithoutCancel(ctx))
	closeGrants(f.grants)
	f.memPool.close()
	return err
}
