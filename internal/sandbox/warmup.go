package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"fermion.dev/fermion/internal/telemetry"
)

// The warmup hook (manifest component.warmup): every new reactor instance, whatever
// started it (prewarm at load, the autoscaler, a replacement, a request's cold start),
// is sent one GET of the hook's path through the guest's normal handler before it joins
// the pool or serves. It runs after instantiation (and after the snapshot restore), per
// instance: what it warms lives in that instance's memory. An instance that answers
// other than 2xx, traps or runs past warmup_timeout is closed, never used, and counted
// (fermion_instance_discards_total{reason="warmup"}).

// WarmupFailLimit is how many warmups in a row must fail before WarmupFailing reports
// the version as failing: one failure can be a guest's bad luck (a cache backend
// away); a run of them means every instance of this version will fail.
const WarmupFailLimit = 3

// WarmupError is a new instance that failed its version's warmup hook.
type WarmupError struct {
	Path    string
	Status  int           // the guest's answer, 0 when it gave none
	Timeout time.Duration // set when the hook ran past its timeout
	Err     error         // the trap, or the refused response
}

func (e *WarmupError) Error() string {
	switch {
	case e.Timeout > 0:
		return fmt.Sprintf("GET %s did not answer within warmup_timeout %s", e.Path, e.Timeout)
	case e.Status != 0:
		msg := fmt.Sprintf("GET %s answered %d, not 2xx", e.Path, e.Status)
		if e.Err != nil {
			msg += ": " + e.Err.Error()
		}
		return msg
	default:
		return fmt.Sprintf("GET %s failed: %v", e.Path, e.Err)
	}
}

func (e *WarmupError) Unwrap() error { return e.Err }

// requestError is the answer to a request whose new instance failed warmup: 503, as
// for any instance the node could not make ready.
func (e *WarmupError) requestError(id string) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Reason: telemetry.ReasonWarmup,
		Msg: fmt.Sprintf("function %s: a new instance failed its warmup hook; see the node's log", id), Err: e}
}

// warmupState counts a version's warmup failures in a row; any success resets it.
type warmupState struct {
	mu     sync.Mutex
	failed int
	last   *WarmupError
	// path, when set, replaces spec.Warmup: a loaded version's hook changed in place,
	// which only tests do (a backend that goes away after load). It lives under mu
	// because background top-ups warm instances while the change happens; a plain
	// write to spec.Warmup raced with them.
	path string
}

// hookPath is the warmup request's target for the next new instance.
func (f *Function) hookPath() string {
	f.warmups.mu.Lock()
	defer f.warmups.mu.Unlock()
	if f.warmups.path != "" {
		return f.warmups.path
	}
	return f.spec.Warmup
}

// checkWarmup refuses a hook on a command module, whose instances live for one request.
func checkWarmup(spec Spec, kind string) error {
	if spec.Warmup != "" && kind != ABIReactor {
		return fmt.Errorf("component.warmup %q needs a reactor module: a %s module starts a new instance for every request, so there is nothing to warm; remove warmup or build a reactor", spec.Warmup, kind)
	}
	return nil
}

// prewarmCount is how many instances Load starts: min_warm, and at least one with a
// warmup hook, so that a version whose hook fails fails to load, before any traffic
// reaches it, rather than at its first request. The extra instance is closed after
// idle_timeout like any idle one above min_warm.
func (f *Function) prewarmCount() int {
	if f.spec.Warmup != "" {
		return max(f.spec.Scaling.MinWarm, 1)
	}
	return f.spec.Scaling.MinWarm
}

// warmup runs the hook on a new instance. On failure it closes the instance (the
// caller releases its memory and count) and returns a *WarmupError.
func (f *Function) warmup(ctx context.Context, inst *instance) error {
	if f.spec.Warmup == "" || f.snaps.rec != nil { // the snapshot's source instance never serves
		return nil
	}
	path := f.hookPath()
	timeout := f.spec.WarmupTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second // a hand-built Spec: the manifest's default
	}
	req := &Request{ID: "warmup", Method: http.MethodGet, URI: path, Host: "localhost",
		RemoteAddr: "127.0.0.1:0", Header: http.Header{"User-Agent": {"fermion-warmup"}}}
	inst.warmupTimeout = timeout
	// Not the start's context: its deadline is limits.timeout, and the hook has its own.
	resp, reason, err := f.callReactor(context.WithoutCancel(ctx), inst, req)
	inst.warmupTimeout = 0
	var we *WarmupError
	switch {
	case reason == telemetry.ReasonTimeout:
		we = &WarmupError{Path: path, Timeout: timeout}
	case err != nil:
		we = &WarmupError{Path: path, Err: err}
		var se *Error
		if errors.As(err, &se) {
			we.Err = errors.New(se.Msg)
			if se.Err != nil {
				we.Err = fmt.Errorf("%s: %w", se.Msg, se.Err)
			}
		}
	case reason != "":
		we = &WarmupError{Path: path, Err: errors.New(reason)}
	case resp.Status < 200 || resp.Status > 299:
		we = &WarmupError{Path: path, Status: resp.Status}
		if body := strings.TrimSpace(string(resp.Body)); body != "" {
			if len(body) > 200 {
				body = body[:200] + "…"
			}
			we.Err = errors.New(body)
		}
	}
	f.warmups.mu.Lock()
	if we == nil {
		f.warmups.failed, f.warmups.last = 0, nil
	} else {
		f.warmups.failed++
		f.warmups.last = we
	}
	f.warmups.mu.Unlock()
	if we == nil {
		f.metrics.Warmup(telemetry.WarmupOK)
		return nil
	}
	inst.close()
	f.metrics.Warmup(telemetry.WarmupFailed)
	f.metrics.Discard(telemetry.ReasonWarmup)
	f.logger.Warn("instance failed its warmup hook; discarded", "err", we)
	return we
}

// WarmupFailing returns the last warmup failure when the last WarmupFailLimit warmups
// of this version all failed, and nil otherwise (no hook, or a recent success): the
// agent reports such a version as failed.
func (f *Function) WarmupFailing() *WarmupError {
	f.warmups.mu.Lock()
	defer f.warmups.mu.Unlock()
	if f.warmups.failed >= WarmupFailLimit {
		return f.warmups.last
	}
	return nil
}
