package sandbox

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/sys"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"fermion.dev/fermion/api/abi"
	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/telemetry"
)

// instance is one reactor module instance. It serves one request at a time and is owned
// by whoever took it from the pool.
type instance struct {
	id     uint64      // Response.Instance
	rec    *instRecord // its timeline (timeline.go); nil for a snapshot's source instance
	mod    api.Module
	buf    api.Function
	handle api.Function
	mem    api.Memory
	stack  [2]uint64       // CallWithStack scratch: no allocation per call
	ctx    context.Context // made once: carries the instance to host functions
	// cancel, for a module that is not instrumented, cancels the context its calls run
	// under: how interrupt stops it (see interrupt).
	cancel   context.CancelFunc
	cur      *callState // the request being served, set by the instance's owner
	bufPtr   uint32     // guest request buffer, valid for bufCap bytes
	bufCap   uint32
	bufUsed  uint32            // bytes of the last request in the buffer; past them it is zero
	stop     api.MutableGlobal // fermion_interrupt, nil when not instrumented
	count    api.MutableGlobal // fermion_countdown, beside stop
	why      atomic.Uint32     // exit code of the first interrupt
	woken    chan struct{}     // closed by the first interrupt: ends the guest's sleep
	wakeOnce sync.Once
	stdout   *guestLog
	stderr   *guestLog
	scratch  []byte // request encoding, reused
	uses     int
	lastUsed time.Time
	memBytes int64         // linear memory counted in Function.memBytes: changed under Function.mu, read by the owner
	lm       *mappedMemory // the linear memory, when Fermion's allocator made it
	// waited is how long the current guest call has been blocked in host calls that
	// wait (sleeps, outbound HTTP): subtracted from the call's wall time to give its
	// guest CPU time. Only the goroutine running the guest touches it.
	waited time.Duration
	state  callState // the current call's state (cur points here during a call)
	// warmupTimeout is the deadline of the warmup call while it runs (warmup.go); 0
	// for requests, which take limits.timeout.
	warmupTimeout time.Duration

	// The watch timer interrupts the current call at its deadline, or when its client
	// has gone away (see watch). watchSeq orders its firing against the call's end
	// without a lock (see endWatch); watchMu is taken by the timer's firing and by a
	// call's start only when the timer must be reset.
	//
	// watchSeq is the watched call's number times two, 0 between calls; its low bit is
	// set while watch has claimed the call to look at it. A number rather than the
	// callState, which every call of the instance reuses: a firing that looked at one
	// call must not claim the next.
	watchSeq atomic.Uint64
	calls    uint64     // calls watched so far; the owner's
	watched  *callState // the call numbered in watchSeq: written by the owner before, read by watch while it holds the claim
	watchMu  sync.Mutex
	watchT   *time.Timer // under watchMu
	// watchAt is when the armed watch timer fires, a mono (clock.go) in an atomic
	// int64; 0 when it is not armed. Written under watchMu, read by a
	// call's start without it. The timer stays armed across calls (see startWatch).
	watchAt atomic.Int64
}

// cancelPoll is how often a running call looks for its client having gone away. Calls
// shorter than this (nearly all) never do: the timer is reset and stopped, and nothing
// is registered on the request's context.
const cancelPoll = 25 * time.Millisecond

// watch runs when the watch timer fires: it interrupts the watched call once past its
// deadline or once its context is done, and otherwise looks again later.
func (i *instance) watch() {
	i.watchMu.Lock()
	defer i.watchMu.Unlock()
	// Fired: disarmed unless re-armed below. Stored before watchSeq is loaded, so a
	// call starting meanwhile either is seen here or sees 0 and arms the timer itself
	// (startWatch).
	i.watchAt.Store(0)
	seq := i.watchSeq.Load()
	// Claimed, the call cannot end (endWatch waits) nor its state be rewritten for the
	// next one while it is looked at. A call that ended is not followed: the next
	// one's start finds the timer disarmed and arms it.
	if seq == 0 || !i.watchSeq.CompareAndSwap(seq, seq|1) {
		return // between calls: the next call arms it again
	}
	defer i.watchSeq.Store(seq) // endWatch waits for this
	st := i.watched
	now := monoNow()
	switch {
	case now >= st.deadline:
		i.interrupt(sys.ExitCodeDeadlineExceeded)
	case st.ctx.Err() != nil:
		i.interrupt(sys.ExitCodeContextCanceled)
	default:
		d := min(time.Duration(st.deadline-now), cancelPoll)
		i.watchT.Reset(d)
		i.watchAt.Store(int64(now) + int64(d))
	}
}

// startWatch and endWatch bracket a call started at now. endWatch reports the
// interrupt the watcher made, if any: even when the call returned normally, the
// instance is then unusable.
//
// The timer is not stopped when a call ends, and is reset at a call's start only when
// it would fire later than the call's first check is due: a firing that finds no call
// disarms it, and one that finds a later call checks that call's deadline and client
// as it would have at its own first check, and re-arms for the next. So a stream of
// short calls (nearly all) touches the runtime's timer heap about once per cancelPoll
// instead of twice per call; deadlines are as exact as before, each check being due at
// min(deadline, next poll) from wherever the timer stands.
//
// Why no lock on the way (see docs/RATIONALE.md, "Why the watch takes no lock per
// call"): a call's start stores watchSeq and then loads watchAt; a firing stores
// watchAt = 0 and then loads watchSeq. Go's atomics are sequentially consistent, so
// one of the two sees the other's store: either the firing sees this call and checks
// it, or this start sees the timer disarmed and arms it under watchMu. An armed
// timer due no later than this call's first check needs nothing more.
func (i *instance) startWatch(st *callState, now mono, timeout time.Duration) {
	first := min(timeout, cancelPoll)
	due := int64(now) + int64(first)
	i.calls++
	i.watched = st
	i.watchSeq.Store(i.calls << 1)
	if at := i.watchAt.Load(); at != 0 && at <= due {
		return
	}
	i.watchMu.Lock()
	switch at := i.watchAt.Load(); {
	case i.watchT == nil:
		i.watchT = time.AfterFunc(first, i.watch)
		i.watchAt.Store(due)
	case at == 0 || at > due:
		i.watchT.Reset(first)
		i.watchAt.Store(due)
	}
	i.watchMu.Unlock()
}

// endWatch ends the watch of the current call. The compare-and-swap decides between
// the call's end and a firing: it fails only while watch holds its claim on the call,
// and then waits for watch to finish looking (and interrupting, if it does), so that
// no interrupt meant for this call lands on the next one (or on the instance being
// closed), and none is missed here.
func (i *instance) endWatch() (interrupted uint32) {
	seq := i.calls << 1
	for !i.watchSeq.CompareAndSwap(seq, 0) {
		runtime.Gosched() // watch holds its claim: a few instructions, or an interrupt
	}
	return i.why.Load()
}

// stopWatch stops the watch timer for good: the instance is being closed.
func (i *instance) stopWatch() {
	i.watchMu.Lock()
	if i.watchT != nil {
		i.watchT.Stop()
		i.watchAt.Store(0)
	}
	i.watchMu.Unlock()
}

// close closes the instance. Only its owner calls it, never during a call.
func (i *instance) close() {
	i.stopWatch()
	i.release()
	if i.cancel != nil {
		i.cancel()
		closeMarked(i.mod)
	}
	i.mod.Close(context.Background())
}

// closeMarked releases the resources of a module wazero may have marked closed without
// releasing them. A canceled call only sets the module's closed flag; its resources
// (files, linear memory) are released by the next call that finds the flag, normally
// the canceled call itself as it returns, but the flag can be set just after that
// looked. Module.Close then does nothing, as the module is already closed. A call made
// with a done context runs no guest code: it closes the module, or finishes closing it.
func closeMarked(mod api.Module) {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for name, def := range mod.ExportedFunctionDefinitions() {
		if fn := mod.ExportedFunction(name); fn != nil {
			stack := make([]uint64, max(len(def.ParamTypes()), len(def.ResultTypes()), 1))
			fn.CallWithStack(done, stack) // the error is the module's exit code
			return
		}
	}
}

// release ends the instance's hold on its memory (see memory_linux.go), which it has
// from its creation: close releases it before it closes the module, so that the
// module's Free retires the memory at once; a Free that came first (wazero releasing a
// canceled call's module) is retired here.
//
// Why not hold and release around each request, as the pool once did: the memory is
// freed only by the instance's own calls or by close, both its owner's, or by a close
// from elsewhere that leaves it retired by close's release anyway; an instance waiting
// in the pool is held as a prewarmed one always was. Two compare-and-swaps per
// request, ~20 ns, bought nothing (docs/RATIONALE.md, sbacq).
func (i *instance) release() {
	if i.lm != nil {
		i.lm.release()
	}
}

// interrupt stops the instance's current call from another goroutine: through the
// fermion_interrupt global when the module has it, otherwise by canceling the context
// the call runs under, on which wazero (WithCloseOnContextDone) marks the module closed
// and the calling goroutine releases its resources. Closing the module from here
// instead would release them under a WASI function the guest is in (go test -race
// found it: a guest woken from its sleep writing to stdout). code says why
// (sys.ExitCodeDeadlineExceeded or sys.ExitCodeContextCanceled).
func (i *instance) interrupt(code uint32) {
	i.why.CompareAndSwap(0, code)
	if i.woken != nil {
		i.wakeOnce.Do(func() { close(i.woken) })
	}
	switch {
	case i.stop != nil:
		i.stop.Set(1)
		// The guest reads stop only on its checks' slow path: 0 sends it there at its
		// next check (interrupt.go).
		i.count.Set(0)
	case i.cancel != nil:
		i.cancel()
	default: // an instrumented module without its global: never made by instrumentInterrupt
		i.mod.CloseWithExitCode(context.Background(), code)
	}
}

// bindInterrupt finds the interrupt globals of an instrumented module.
func (f *Function) bindInterrupt(inst *instance) {
	if !f.interruptible {
		return
	}
	stop, ok1 := inst.mod.ExportedGlobal(InterruptExport).(api.MutableGlobal)
	count, ok2 := inst.mod.ExportedGlobal(CountdownExport).(api.MutableGlobal)
	if ok1 && ok2 {
		inst.stop, inst.count = stop, count
	}
}

// callState is what host functions need during one guest call. It travels in the
// call's context, because host functions are shared by every instance of the runtime.
type callState struct {
	f *Function
	// ctx and deadline bound outbound calls made during this request; deadline is a
	// mono (clock.go), which outbound turns into a time.Time (startClock.at).
	ctx      context.Context
	deadline mono
	resp     *Response
	reply    *Response // Request.Reply: where to decode the response, if set
	respErr  *Error
	got      bool   // response called
	pending  []byte // outbound result waiting for http_take
	logs     logBuffer
	waited   *time.Duration // the instance's waited: outbound calls add to it
}

type (
	instKey struct{} // reactor calls carry the instance, whose cur is the call's state
	callKey struct{} // command runs carry the callState itself
)

func stateOf(ctx context.Context) *callState {
	if inst, ok := ctx.Value(instKey{}).(*instance); ok {
		return inst.cur
	}
	st, _ := ctx.Value(callKey{}).(*callState)
	return st
}

// moduleConfig is the deny-by-default configuration every instance starts from. The
// guest's sleeps add their length to *waited.
func (f *Function) moduleConfig(stdout, stderr *guestLog, woken <-chan struct{}, waited *time.Duration) wazero.ModuleConfig {
	timeout := f.spec.Limits.Timeout
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions().
		WithStdout(stdout).
		WithStderr(stderr).
		WithSysWalltime().
		WithNanotime(nanotime, sys.ClockResolution(1)). // snapshot.go: one clock for restored instances
		// A guest in the host's sleep cannot see an interrupt, so the sleep ends when the
		// instance is interrupted (deadline, client gone), and never lasts past the
		// deadline anyway.
		WithNanosleep(func(ns int64) {
			t0 := time.Now()
			t := time.NewTimer(min(time.Duration(ns), timeout))
			defer t.Stop()
			select {
			case <-t.C:
			case <-woken:
			}
			*waited += time.Since(t0)
		}).
		WithRandSource(rand.Reader)
	for k, v := range f.spec.Capabilities.Env {
		cfg = cfg.WithEnv(k, v)
	}
	if len(f.grants) > 0 {
		// Not WithReadOnlyDirMount: its DirFS follows symbolic links out of the grant
		// (grantfs.go).
		fs := wazero.NewFSConfig()
		for _, g := range f.grants {
			fs = fs.(sysfs.FSConfig).WithSysFSMount(g.fs, g.dest)
		}
		cfg = cfg.WithFSConfig(fs)
	}
	return cfg
}

// newInstance instantiates the module and runs the guest's _initialize, counting the
// start under reason (a telemetry.StartXxx value). The instance holds its share of the
// node's memory from here until it is discarded.
func (f *Function) newInstance(ctx context.Context, reason string) (_ *instance, err error) {
	if err := f.engine.memory.hold(f.memHold); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.engine.memory.release(f.memHold)
		}
	}()
	span := trace.SpanFromContext(ctx)
	if f.tracing {
		ctx, span = f.tracer.Start(ctx, "create instance")
		defer span.End()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.spec.Limits.Timeout)
	defer cancel()

	inst := &instance{
		id:     f.lastInst.Add(1),
		stdout: &guestLog{f: f, stream: "stdout"},
		stderr: &guestLog{f: f, stream: "stderr"},
		woken:  make(chan struct{}),
	}
	inst.ctx = context.WithValue(context.Background(), instKey{}, inst)
	if f.snaps.rec == nil { // timeline.go: the instance a snapshot is taken from never serves
		start := "initialize"
		if f.snaps.snap != nil {
			start = "snapshot"
		}
		inst.rec = f.timeline.add(inst.id, time.Now(), start, reason)
		defer func() {
			if err != nil {
				f.timeline.discard(inst.rec, time.Now(), startFailure(err), err.Error())
			}
		}()
	}
	if !f.interruptible {
		// _initialize runs under ctx, whose deadline wazero watches itself; requests
		// run under inst.ctx, which interrupt cancels.
		inst.ctx, inst.cancel = context.WithCancel(inst.ctx)
	}
	t0 := time.Now()
	snap := f.snaps.snap
	var reset memoryReset // a reused memory is cleared, or reset to the snapshot
	prefault := f.initialMemory
	if snap != nil {
		reset = snap.writeInto
		prefault = uint64(snap.pages) << 16 // what the restore writes over
	}
	actx := experimental.WithMemoryAllocator(ctx, newMemoryAllocator(func(m *mappedMemory) { inst.lm = m }, &f.memPool, reset, prefault))
	cfg := f.snaps.rec.config(f.moduleConfig(inst.stdout, inst.stderr, inst.woken, &inst.waited), f) // snapshot.go: counts init's reads while a snapshot is taken
	mod, err := f.rt.InstantiateModule(actx, f.compiled, cfg)
	if err != nil {
		inst.release()
		if inst.cancel != nil {
			inst.cancel()
		}
		span.SetStatus(codes.Error, err.Error())
		return nil, fmt.Errorf("instantiate: %w", err)
	}
	inst.mod = mod
	f.bindInterrupt(inst)
	t1 := time.Now()
	// Not looked up for a restored instance: wazero makes a call engine, with its own
	// stack, for every function looked up.
	var init api.Function
	if snap != nil { // snapshot.go: a restored instance skips _initialize
		if err := snap.restore(mod, inst.lm); err != nil {
			inst.close()
			span.SetStatus(codes.Error, err.Error())
			return nil, err
		}
	} else if f.data != nil { // datapassive.go: the host writes the data segments
		var err error
		if mem := mod.Memory(); mem == nil {
			err = errors.New("write data segments: module has no memory")
		} else if buf, ok := mem.Read(0, mem.Size()); !ok {
			err = errors.New("write data segments: read memory: out of range")
		} else {
			err = writeData(buf, f.data)
		}
		if err != nil {
			inst.close()
			span.SetStatus(codes.Error, err.Error())
			return nil, err
		}
	}
	if snap == nil {
		init = mod.ExportedFunction(abi.ExportInitialize)
	}
	if init != nil {
		timer := time.AfterFunc(f.spec.Limits.Timeout, func() { inst.interrupt(sys.ExitCodeDeadlineExceeded) })
		_, err := init.Call(ctx)
		timedOut := !timer.Stop()
		if exit, ok := err.(*sys.ExitError); ok && exit.ExitCode() == sys.ExitCodeDeadlineExceeded {
			timedOut = true // the context's deadline closed the module before the timer fired
		}
		inst.stdout.endInit()
		oomReported := inst.stderr.endInit()
		if err != nil || timedOut {
			serr := &startError{err: err}
			switch {
			case timedOut:
				serr.timeout = f.spec.Limits.Timeout
			case oomReported || (mod.Memory() != nil && uint64(mod.Memory().Size())+1<<20 > f.spec.Limits.MemoryBytes):
				serr.memory = f.spec.Limits.MemoryBytes
			}
			inst.close()
			span.SetStatus(codes.Error, serr.Error())
			return nil, serr
		}
	} else {
		inst.stdout.endInit()
		inst.stderr.endInit()
	}
	t2 := time.Now()
	if init != nil {
		f.metrics.GuestCPU(t2.Sub(t1) - inst.waited) // _initialize is the guest's work too
	}
	if f.snaps.rec == nil { // the instance a snapshot is taken from never serves: not a start
		f.metrics.InstanceStarted(reason, t1.Sub(t0).Seconds(), t2.Sub(t1).Seconds())
		if f.engine.onStart != nil {
			f.engine.onStart(t1.Sub(t0), t2.Sub(t1))
		}
	}
	inst.buf = mod.ExportedFunction(abi.ExportBuf)
	inst.handle = mod.ExportedFunction(abi.ExportHandle)
	inst.mem = mod.Memory()
	inst.lastUsed = t2
	if inst.mem == nil {
		inst.close()
		return nil, errors.New("module has no memory")
	}
	if err := f.warmup(ctx, inst); err != nil { // warmup.go: closed it on failure
		span.SetStatus(codes.Error, err.Error())
		return nil, err
	}
	f.mu.Lock()
	inst.memBytes = int64(inst.mem.Size())
	f.memBytes += inst.memBytes
	f.mu.Unlock()
	if inst.rec != nil {
		f.timeline.ready(inst.rec, t2, time.Now(), f.spec.Warmup != "", uint64(inst.memBytes))
	}
	return inst, nil
}

// startError is a failure of the guest's _initialize.
type startError struct {
	err     error
	timeout time.Duration // set when the deadline stopped it
	memory  uint64        // set when it ran out of memory: limits.memory in bytes
}

func (e *startError) Error() string {
	var msg string
	switch {
	case e.timeout > 0:
		msg = fmt.Sprintf("guest _initialize did not finish within the %s timeout", e.timeout)
	case e.memory > 0:
		msg = fmt.Sprintf("guest _initialize ran out of memory (limits.memory is %d MiB); raise limits.memory", e.memory>>20)
	default:
		msg = "guest _initialize failed"
	}
	if e.err != nil {
		msg += ": " + e.err.Error()
	}
	return msg
}

func (e *startError) Unwrap() error { return e.err }

// callReactor runs one request on inst. reason is non-empty when the instance must be
// discarded.
//
// It brackets runCall, which does the call's work, with the call's clocks, watch and
// logs, under one deferred call: with one defer and one return the compiler inlines
// it at the return (an open-coded defer), where three defers among callReactor's many
// returns were each pushed on the goroutine's defer chain and run by deferreturn.
func (f *Function) callReactor(ctx context.Context, inst *instance, req *Request) (resp *Response, reason string, err error) {
	var span trace.Span
	if f.tracing {
		ctx, span = f.tracer.Start(ctx, "guest execute")
	}
	timeout := f.spec.Limits.Timeout
	if inst.warmupTimeout > 0 { // warmup.go: the hook's own bound
		timeout = inst.warmupTimeout
	}
	st := &inst.state
	start := monoNow() // one clock reading, as integer nanoseconds (clock.go)
	// Every field but logs (which the last call's flush emptied) set for this call,
	// one by one: a composite literal is built whole and copied, logs and all.
	// TestCallStateFields fails when a field is added, to be set here.
	st.f, st.ctx, st.deadline, st.waited, st.reply = f, ctx, start+mono(timeout), &inst.waited, req.Reply
	st.resp, st.respErr, st.got, st.pending = nil, nil, false, nil
	inst.waited = 0
	inst.cur = st
	inst.stdout.st, inst.stderr.st = st, st
	// The deadline and a client going away interrupt the instance (see interrupt.go):
	// even a tight loop stops at its next check. The instance's own timer, reset for
	// each call, instead of a context deadline or a context.AfterFunc keeps the call
	// free of wazero's per-call watcher goroutine and of registering on the request's
	// context.
	inst.startWatch(st, start, timeout)
	defer f.endCall(ctx, inst, req.ID, span, start, &resp, &reason, &err)
	resp, reason, err = f.runCall(ctx, inst, req)
	return resp, reason, err
}

// endCall ends the call callReactor started at start, whatever runCall returned (or
// if it panicked): it ends the watch, takes the call's end from one clock reading,
// counts its guest CPU, turns a call that ended past its deadline into a timeout, and
// logs what the guest wrote.
func (f *Function) endCall(ctx context.Context, inst *instance, requestID string, span trace.Span, start mono,
	resp **Response, reason *string, err *error) {
	st := &inst.state
	why := inst.endWatch()
	// Monotonic only: one clock reading where time.Now takes two (wall and monotonic),
	// each about 100 ns on a virtual machine (bench/RESULTS.md).
	end := monoNow()
	inst.lastUsed = startClock.at(end) // for idle reaping (putInstance) and Response.End
	// Guest CPU time from the call's two clock reads, which the deadline needs anyway:
	// its wall time (with the host's encoding of the request and the non-blocking host
	// calls) less the time it waited.
	f.metrics.GuestCPU(time.Duration(end-start) - inst.waited)
	if why == 0 && end >= st.deadline {
		// Finished late, before the watch fired: a timer's firing lags its deadline.
		why = sys.ExitCodeDeadlineExceeded
	}
	switch why {
	case 0:
	case sys.ExitCodeContextCanceled:
		if *reason == "" {
			*reason = telemetry.ReasonCanceled
		}
	default:
		// Deadlines are absolute: a guest that came back after its deadline (woken from
		// a sleep, an outbound call cut short, output written slowly, an interrupt it
		// never reached) is timed out whatever it answered, and its instance, which may
		// still carry the interrupt, is discarded.
		if e, ok := (*err).(*Error); !ok || e.Reason != telemetry.ReasonTimeout {
			*resp, *err = nil, f.timeoutError()
		}
		*reason = telemetry.ReasonTimeout
	}
	inst.cur = nil
	inst.stdout.st, inst.stderr.st = nil, nil
	st.logs.flush(ctx, f, requestID)
	if span != nil {
		if *err != nil {
			span.SetStatus(codes.Error, (*err).Error())
		}
		span.End()
	}
}

// runCall is callReactor's work: the request written into the guest's buffer, the
// guest's fermion_handle called, and its answer checked.
func (f *Function) runCall(ctx context.Context, inst *instance, req *Request) (*Response, string, error) {
	st := &inst.state
	enc := appendRequest(inst.scratch[:0], req)
	inst.scratch = enc[:0]
	// The guest's buffer only moves when fermion_buf grows it, so one call per request
	// suffices unless the request is larger than any before it.
	if uint32(len(enc)) > inst.bufCap || inst.bufPtr == 0 {
		// The old buffer becomes the guest's garbage, which it may hand out again:
		// empty it first, so the last request does not outlive it there.
		inst.clearBuf(0)
		inst.stack[0] = uint64(uint32(len(enc)))
		if err := inst.buf.CallWithStack(inst.ctx, inst.stack[:]); err != nil {
			e := f.callError(ctx, inst, err)
			return nil, e.Reason, e
		}
		inst.bufPtr, inst.bufCap = uint32(inst.stack[0]), uint32(len(enc))
	}
	if inst.bufPtr == 0 || !inst.mem.Write(inst.bufPtr, enc) {
		return nil, telemetry.ReasonTrap, f.trapError(errors.New("guest returned an invalid request buffer"))
	}
	// No data crosses requests: what the last request left past this one's end (its
	// headers, cookies, body) is zeroed. Only that tail is cleared, not the whole
	// buffer: nothing but the host's requests is ever written there by the host.
	inst.clearBuf(uint32(len(enc)))
	inst.stack[0] = uint64(uint32(len(enc)))
	if err := inst.handle.CallWithStack(inst.ctx, inst.stack[:]); err != nil {
		e := f.callError(ctx, inst, err)
		return nil, e.Reason, e
	}
	switch code := uint32(inst.stack[0]); code {
	case abi.HandleOK:
	case abi.HandlePanic:
		f.metrics.Trap()
		return nil, telemetry.ReasonPanic, &Error{Status: http.StatusInternalServerError, Reason: telemetry.ReasonPanic,
			Msg: "function panicked; see its logs"}
	default:
		return nil, telemetry.ReasonTrap, f.trapError(fmt.Errorf("guest rejected the request (code %d)", code))
	}
	if st.respErr != nil {
		// The guest finished normally; only its answer was refused, so the instance stays.
		return nil, "", st.respErr
	}
	if !st.got {
		return nil, telemetry.ReasonTrap, f.trapError(errors.New("guest returned without a response"))
	}
	return st.resp, "", nil
}

// clearBuf zeroes the request buffer from n to the end of the last request written
// there, and records that n bytes are now in use.
func (i *instance) clearBuf(n uint32) {
	if i.bufUsed > n {
		if tail, ok := i.mem.Read(i.bufPtr+n, i.bufUsed-n); ok {
			clear(tail)
		}
	}
	i.bufUsed = n
}

// callError classifies a failed guest call. The instance is always discarded: a Go
// instance that trapped can return nil errors afterwards, so it is never reused.
func (f *Function) callError(ctx context.Context, inst *instance, err error) *Error {
	code, exited := inst.why.Load(), inst.why.Load() != 0
	var exit *sys.ExitError
	if !exited && errors.As(err, &exit) {
		code, exited = exit.ExitCode(), true
	}
	if exited {
		switch code {
		case sys.ExitCodeDeadlineExceeded:
			return f.timeoutError()
		case sys.ExitCodeContextCanceled:
			return &Error{Status: 499, Reason: telemetry.ReasonCanceled, Msg: "request canceled by the client", Err: ctx.Err()}
		}
	}
	if f.nearMemoryLimit(inst) || (inst != nil && inst.cur.reportedOOM()) {
		f.metrics.LimitRejection(telemetry.LimitMemory)
		f.metrics.Trap()
		return &Error{Status: http.StatusInternalServerError, Reason: telemetry.ReasonOOM,
			Msg: fmt.Sprintf("function %s ran out of memory (limit %d MiB)", f.id, f.spec.Limits.MemoryBytes>>20), Err: err}
	}
	return f.trapError(err)
}

// timeoutError is a request stopped, or answered too late, by its deadline; it counts
// the rejection.
func (f *Function) timeoutError() *Error {
	f.metrics.LimitRejection(telemetry.LimitTimeout)
	return &Error{Status: http.StatusGatewayTimeout, Reason: telemetry.ReasonTimeout,
		Msg: fmt.Sprintf("function %s exceeded its %s timeout", f.id, f.spec.Limits.Timeout)}
}

func (f *Function) trapError(err error) *Error {
	f.metrics.Trap()
	return &Error{Status: http.StatusInternalServerError, Reason: telemetry.ReasonTrap, Msg: "function trapped; see its logs", Err: err}
}

// reportedOOM reports whether the guest said, on stderr during this call, that an
// allocation failed. A Go guest's runtime asks for exactly what one allocation needs, so
// a large allocation can fail with the memory well below the limit; the runtime's own
// "fatal error: out of memory" is then the only sign. A guest can only mislabel its own
// failure this way.
func (st *callState) reportedOOM() bool {
	return st != nil && st.logs.reportsOOM()
}

// nearMemoryLimit reports whether the instance's memory cannot grow by another 1 MiB.
func (f *Function) nearMemoryLimit(inst *instance) bool {
	if inst == nil || inst.mem == nil {
		return false
	}
	return uint64(inst.mem.Size())+1<<20 > f.spec.Limits.MemoryBytes
}

// appendRequest encodes req into b. Names are sent canonical and a name's values
// adjacent, as package abi promises guests (a map a caller built by hand may hold a
// name in other spellings; net/http's server's never does, which req.CanonicalHeader
// says, and then the names are not looked at again: about 20 ns a name). req.Added
// follow Header's fields, replacing those of the same names. The fields go straight
// from the map into b, not through a list of them first (a typed copy per field).
func appendRequest(b []byte, req *Request) []byte {
	b, at := abi.AppendRequestHead(b, req.Method, req.URI, req.Host, req.RemoteAddr)
	n := 0
	for k, vs := range req.Header {
		if !req.CanonicalHeader {
			k = http.CanonicalHeaderKey(k)
		}
		if req.Added.has(k) {
			continue
		}
		for _, v := range vs {
			b = abi.AppendHeader(b, k, v)
		}
		n += len(vs)
	}
	for _, h := range req.Added {
		b = abi.AppendHeader(b, h.Name, h.Value)
	}
	return abi.FinishRequest(b, at, n+len(req.Added), req.Body)
}

// instantiateHost registers the "fermion" host module in the function's runtime.
func (f *Function) instantiateHost(ctx context.Context) error {
	if _, err := hostModule(f.rt).Instantiate(ctx); err != nil {
		return fmt.Errorf("instantiate host module: %w", err)
	}
	return nil
}

// hostModule builds the "fermion" host module; checkImports reads its signatures.
func hostModule(rt wazero.Runtime) wazero.HostModuleBuilder {
	i32 := api.ValueTypeI32
	return rt.NewHostModuleBuilder(abi.HostModule).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostResponse), []api.ValueType{i32, i32}, nil).Export(abi.HostResponse).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostHTTPSend), []api.ValueType{i32, i32}, []api.ValueType{i32}).Export(abi.HostHTTPSend).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(hostHTTPTake), []api.ValueType{i32, i32}, nil).Export(abi.HostHTTPTake)
}

// headerSlack is room for status and headers on top of max_response_body.
const headerSlack = 1 << 20

func hostResponse(ctx context.Context, mod api.Module, stack []uint64) {
	st := stateOf(ctx)
	if st == nil {
		panic("fermion.response called outside a request")
	}
	ptr, n := uint32(stack[0]), uint32(stack[1])
	f := st.f
	if int64(n) > f.spec.Limits.MaxResponseBody+headerSlack {
		st.tooLarge()
		return
	}
	view, ok := mod.Memory().Read(ptr, n)
	if !ok {
		panic("fermion.response: out of bounds")
	}
	// data is the host's own copy and is never modified while the response is in
	// use: the response's body and header strings are views of it. A reply
	// (Request.Reply) lends its buffer, which its owner reuses only for a later
	// response.
	resp := st.reply
	if resp == nil {
		resp = new(Response)
	} else {
		resp.Reset()
	}
	data := append(resp.buf[:0], view...)
	if cap(data) <= maxKeptReply && st.reply != nil {
		resp.buf = data
	}
	r := abi.Response{Headers: resp.inline[:0]}
	if err := abi.DecodeResponse(data, &r, true); err != nil {
		f.metrics.BadResponse(telemetry.BadResponseEncoding)
		st.respErr = &Error{Status: http.StatusBadGateway, Reason: telemetry.ReasonBadResponse, Msg: "function returned a malformed response", Err: err}
		return
	}
	if int64(len(r.Body)) > f.spec.Limits.MaxResponseBody {
		st.tooLarge()
		return
	}
	if r.Status < 100 || r.Status > 999 {
		f.metrics.BadResponse(telemetry.BadResponseStatus)
		st.respErr = &Error{Status: http.StatusBadGateway, Reason: telemetry.ReasonBadResponse,
			Msg: fmt.Sprintf("function returned invalid status %d", r.Status)}
		return
	}
	resp.Status, resp.Header, resp.Body = r.Status, r.Headers, r.Body
	st.resp = resp
	st.got = true
}

func (st *callState) tooLarge() {
	st.f.metrics.LimitRejection(telemetry.LimitResponseBody)
	st.respErr = &Error{Status: http.StatusBadGateway, Reason: telemetry.LimitResponseBody,
		Msg: "function response exceeds its limit of " + v1.Count(st.f.spec.Limits.MaxResponseBody, "byte")}
}

func hostHTTPSend(ctx context.Context, mod api.Module, stack []uint64) {
	st := stateOf(ctx)
	if st == nil {
		panic("fermion.http_send called outside a request")
	}
	ptr, n := uint32(stack[0]), uint32(stack[1])
	view, ok := mod.Memory().Read(ptr, n)
	if !ok {
		panic("fermion.http_send: out of bounds")
	}
	t0 := time.Now()
	st.pending = st.f.outbound(ctx, view)
	if st.waited != nil {
		*st.waited += time.Since(t0) // waiting on the network: not guest CPU
	}
	stack[0] = uint64(uint32(len(st.pending)))
}

func hostHTTPTake(ctx context.Context, mod api.Module, stack []uint64) {
	st := stateOf(ctx)
	if st == nil {
		panic("fermion.http_take called outside a request")
	}
	ptr, n := uint32(stack[0]), uint32(stack[1])
	if int(n) != len(st.pending) || !mod.Memory().Write(ptr, st.pending) {
		panic("fermion.http_take: bad buffer")
	}
	st.pending = nil
}
