package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/telemetry"
)

// cappedBuffer collects a command's stdout and cancels the run when it passes its cap,
// so a module that floods stdout is stopped instead of filling memory.
type cappedBuffer struct {
	buf    bytes.Buffer
	limit  int
	over   bool
	cancel func()
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if c.over {
		return 0, errors.New("response too large")
	}
	if c.buf.Len()+len(p) > c.limit {
		c.over = true
		c.cancel()
		return 0, errors.New("response too large")
	}
	return c.buf.Write(p)
}

// invokeCommand runs a WASI command module WAGI-style: one instance per request, CGI
// variables in the environment, the body on stdin, CGI headers and body on stdout.
//
// Each run is an instance on the function's timeline (timeline.go), recorded by the
// same calls as a reactor's, so the API, CLI and console show command functions'
// instances as they show reactors': created for a request, initialised ("command":
// instantiated, its _start about to run), the one request it serves, and its end.
func (f *Function) invokeCommand(ctx context.Context, req *Request) (*Response, error) {
	inst := &instance{id: f.lastInst.Add(1), woken: make(chan struct{})}
	resp, ended, err := f.runCommand(ctx, req, inst)
	if inst.rec == nil { // refused before an instance was made (node memory)
		return resp, err
	}
	if ended == ReasonStart {
		f.timeline.discard(inst.rec, time.Now(), ReasonStart, errorDetail(err))
		return resp, err
	}
	status := 0
	if resp != nil {
		status = resp.Status
		resp.Instance = inst.id
	}
	f.timeline.request(inst.rec, 1, inst.lastUsed, status, err)
	f.mu.Lock()
	inst.rec.countLocked(1, inst.lastUsed)
	f.mu.Unlock()
	f.timeline.discard(inst.rec, time.Now(), ended, "")
	return resp, err
}

// runCommand is one run of invokeCommand. ended says how its instance ended, for its
// timeline: ReasonStart when it failed to instantiate, ReasonExited when _start
// returned or the guest exited with status 0 (whatever it wrote), else the error's
// reason (trap, timeout, canceled, response_body …); "" when no instance was made.
func (f *Function) runCommand(ctx context.Context, req *Request, inst *instance) (_ *Response, ended string, _ error) {
	span := trace.SpanFromContext(ctx)
	if f.tracing {
		ctx, span = f.tracer.Start(ctx, "guest execute")
		defer span.End()
	}
	timeout := f.spec.Limits.Timeout
	st := &callState{f: f, ctx: ctx, deadline: monoNow() + mono(timeout), waited: &inst.waited}
	stdout := &cappedBuffer{limit: int(f.spec.Limits.MaxResponseBody + headerSlack),
		cancel: func() { inst.interrupt(sys.ExitCodeContextCanceled) }}
	stderr := &guestLog{f: f, stream: "stderr", st: st}
	defer st.logs.flush(ctx, f, req.ID)

	cfg := f.moduleConfig(&guestLog{f: f, stream: "stdout", st: st}, stderr, inst.woken, &inst.waited).
		WithStdout(stdout).
		WithStdin(bytes.NewReader(req.Body)).
		WithArgs(f.spec.Name)
	for _, kv := range cgiEnv(req) {
		cfg = cfg.WithEnv(kv[0], kv[1])
	}
	for k, v := range f.spec.Capabilities.Env {
		cfg = cfg.WithEnv(k, v)
	}
	// A run is an instance: it holds its share of the node's memory while it lasts.
	if err := f.engine.memory.hold(f.memHold); err != nil {
		span.SetStatus(codes.Error, err.Error())
		return nil, "", f.nodeMemoryRefused(err)
	}
	defer f.engine.memory.release(f.memHold)
	callCtx := context.WithValue(context.Background(), callKey{}, st)
	if !f.interruptible {
		callCtx, inst.cancel = context.WithCancel(callCtx) // how interrupt stops it
	}
	t0 := time.Now()
	inst.rec = f.timeline.add(inst.id, t0, StartCommand, telemetry.StartRequest)
	// The same allocator as reactors (memory_linux.go): a run's memory is what its guest
	// touches, grown in place, and goes back to the kernel as the run ends; on the Go
	// heap every memory.grow copied it and the copies stayed resident long after.
	actx := experimental.WithMemoryAllocator(callCtx, newMemoryAllocator(func(m *mappedMemory) { inst.lm = m }, nil, nil, 0))
	mod, err := f.rt.InstantiateModule(actx, f.compiled, cfg)
	f.metrics.InstanceStarted(telemetry.StartRequest, time.Since(t0).Seconds(), 0) // one instance per request
	if err != nil {
		inst.release()
		if inst.cancel != nil {
			inst.cancel()
		}
		f.metrics.Trap()
		return nil, ReasonStart, &Error{Status: http.StatusInternalServerError, Reason: telemetry.ReasonTrap, Msg: "function failed to start", Err: err}
	}
	defer inst.close() // after mod is set: closes it, then unmaps its memory
	inst.mod = mod
	var mem uint64
	if m := mod.Memory(); m != nil {
		mem = uint64(m.Size())
	}
	f.bindInterrupt(inst)
	timer := time.AfterFunc(time.Duration(st.deadline-monoNow()), func() { inst.interrupt(sys.ExitCodeDeadlineExceeded) })
	defer timer.Stop()
	if ctx.Done() != nil {
		defer context.AfterFunc(ctx, func() { inst.interrupt(sys.ExitCodeContextCanceled) })()
	}
	t1 := time.Now()
	f.timeline.ready(inst.rec, t1, t1, false, mem)
	inst.rec.state.Store(stateBusy)
	if start := mod.ExportedFunction("_start"); start != nil {
		_, err = start.Call(callCtx)
	}
	end := time.Now()
	inst.lastUsed = end
	if m := mod.Memory(); m != nil {
		inst.rec.memBytes.Store(uint64(m.Size())) // what the run grew to, kept past its end
	}
	f.metrics.GuestCPU(end.Sub(t1) - inst.waited)
	// Deadlines are absolute: a run that ended after its deadline, even normally (woken
	// from a sleep, or before the timer fired), is timed out, its output never served.
	code := inst.why.Load()
	if code == 0 && monoOf(end) >= st.deadline {
		code = sys.ExitCodeDeadlineExceeded
	}
	if code != 0 {
		err = sys.NewExitError(code)
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 0 {
		err = nil
	}
	if stdout.over {
		f.metrics.LimitRejection(telemetry.LimitResponseBody)
		span.SetStatus(codes.Error, "response too large")
		return nil, telemetry.LimitResponseBody, &Error{Status: http.StatusBadGateway, Reason: telemetry.LimitResponseBody,
			Msg: "function response exceeds its limit of " + v1.Count(f.spec.Limits.MaxResponseBody, "byte")}
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		if errors.As(err, &exit) {
			switch exit.ExitCode() {
			case sys.ExitCodeDeadlineExceeded:
				return nil, telemetry.ReasonTimeout, f.timeoutError()
			case sys.ExitCodeContextCanceled:
				return nil, telemetry.ReasonCanceled, &Error{Status: 499, Reason: telemetry.ReasonCanceled, Msg: "request canceled by the client", Err: ctx.Err()}
			}
			f.metrics.Trap()
			return nil, telemetry.ReasonTrap, &Error{Status: http.StatusInternalServerError, Reason: telemetry.ReasonTrap,
				Msg: fmt.Sprintf("function exited with status %d; see its logs", exit.ExitCode()), Err: err}
		}
		return nil, telemetry.ReasonTrap, f.trapError(err)
	}
	status, header, body, err := ParseCGI(stdout.buf.Bytes())
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		f.metrics.BadResponse(BadResponseReason(err))
		return nil, ReasonExited, &Error{Status: http.StatusBadGateway, Reason: telemetry.ReasonBadResponse,
			Msg: "function returned a malformed CGI response: " + err.Error()}
	}
	if int64(len(body)) > f.spec.Limits.MaxResponseBody {
		f.metrics.LimitRejection(telemetry.LimitResponseBody)
		return nil, ReasonExited, &Error{Status: http.StatusBadGateway, Reason: telemetry.LimitResponseBody,
			Msg: "function response exceeds its limit of " + v1.Count(f.spec.Limits.MaxResponseBody, "byte")}
	}
	return &Response{Status: status, Header: headerFromMap(header), Body: body}, ReasonExited, nil
}

// cgiEnv builds the CGI 1.1 meta-variables (RFC 3875 §4.1) for a request.
func cgiEnv(req *Request) [][2]string {
	path, query, _ := strings.Cut(req.URI, "?")
	script := strings.TrimSuffix(req.Route, "/")
	pathInfo := strings.TrimPrefix(path, script)
	scheme, defaultPort := "http", "80"
	if req.TLS {
		scheme, defaultPort = "https", "443"
	}
	host, port, err := net.SplitHostPort(req.Host)
	if err != nil {
		host, port = req.Host, defaultPort
	}
	remote, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		remote = req.RemoteAddr
	}
	env := [][2]string{
		{"GATEWAY_INTERFACE", "CGI/1.1"},
		{"SERVER_SOFTWARE", "fermion"},
		{"SERVER_PROTOCOL", "HTTP/1.1"},
		{"SERVER_NAME", host},
		{"SERVER_PORT", port},
		{"REQUEST_SCHEME", scheme},
		{"REQUEST_METHOD", req.Method},
		{"REQUEST_URI", req.URI},
		{"SCRIPT_NAME", script},
		{"PATH_INFO", pathInfo},
		{"QUERY_STRING", query},
		{"REMOTE_ADDR", remote},
		{"CONTENT_LENGTH", strconv.Itoa(len(req.Body))},
		{"X_REQUEST_ID", req.ID},
	}
	if req.TLS {
		env = append(env, [2]string{"HTTPS", "on"})
	}
	if ct := req.Header.Get("Content-Type"); ct != "" {
		env = append(env, [2]string{"CONTENT_TYPE", ct})
	}
	for k, vs := range req.Header {
		if k == "Content-Type" || k == "Content-Length" || k == "Proxy" {
			continue // CONTENT_* above; HTTP_PROXY would poison guests that honour it (httpoxy)
		}
		if req.Added.has(http.CanonicalHeaderKey(k)) {
			continue // replaced by the host's own, below
		}
		env = append(env, [2]string{cgiHeaderName(k), strings.Join(vs, ", ")})
	}
	for _, kv := range req.Added {
		env = append(env, [2]string{cgiHeaderName(kv.Name), kv.Value})
	}
	return env
}

// cgiHeaderName is the meta-variable of a request header field (RFC 3875 §4.1.18).
func cgiHeaderName(k string) string {
	return "HTTP_" + strings.ToUpper(strings.ReplaceAll(k, "-", "_"))
}
