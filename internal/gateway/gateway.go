// Package gateway is the HTTP front of a node: it routes requests by host and longest
// path prefix to function versions, gives every request an id and W3C trace context (in
// and out), records the request telemetry (metrics, span, one JSON log line) and drains
// in-flight requests on shutdown. It bounds what clients can hold of the node (limits.go):
// open connections, slow headers, bodies and readers, header size.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"fermion.dev/fermion/api/abi"
	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/telemetry"
)

// Target is a function version the gateway can send requests to (*sandbox.Function).
type Target interface {
	Name() string
	Version() string
	Spec() sandbox.Spec
	Invoke(ctx context.Context, req *sandbox.Request) (*sandbox.Response, error)
}

// Route sends requests whose host matches Host ("" any, "a.example.com" exact,
// "*.example.com" any subdomain) and whose path is Prefix or below it to Target.
type Route struct {
	Host   string
	Prefix string
	Target Target
	// Deployment names the deployment the route belongs to in SLI keys (SLIKey); ""
	// means the target's name (an app deployed under its own name).
	Deployment string
	// Split, when set, sends a weight of the route's requests to a second version of
	// the deployment (split.go).
	Split *Split

	tel   *routeTelemetry // set by SetRoutes on the table's copy (telemetry.go)
	split *splitState     // set by newTable from Split
}

// Config configures a Gateway.
type Config struct {
	Logger  *slog.Logger
	Metrics *telemetry.Metrics // nil: no metrics
	Tracer  trace.Tracer       // nil: ids are still made and propagated, nothing is recorded
	// Telemetry false switches off metrics, spans and request logs (for measuring their cost).
	Telemetry bool
	// DrainTimeout bounds how long Serve waits for in-flight requests at shutdown.
	DrainTimeout time.Duration
	// RouteDrain is how long a route SetRoutes stops serving answers 503 with
	// Retry-After (and RouteState reports it draining) before it answers 404
	// (0: DefaultRouteDrain; negative: 404 at once). See routes.go.
	RouteDrain time.Duration
	// Limits bound what clients can hold: connections, slow reads and writes, header size.
	Limits Limits
	// TLS, when set, wraps Serve's listener to terminate TLS (telemetry.TLS.Listener).
	// The connection cap sits beneath it, so refusals cost no handshake.
	TLS func(net.Listener) net.Listener
	// RequestLog says which requests get a log line (zero: every request up to
	// telemetry.DefaultRequestLogRate lines per second, then failures, slow requests and
	// a weighted sample; telemetry.RequestSampler).
	RequestLog telemetry.RequestLogConfig
	// SLIs, when set (and Telemetry is on), aggregates every routed request's SLIs per
	// deployment, version and route pattern (SLIKey): status, latency, whether it waited
	// for a new instance, and the limit that refused it, if one did. Requests no route
	// serves (404, a draining route's 503) belong to no version and are not recorded.
	SLIs *sli.Aggregator
}

// Gateway is an http.Handler. Routes can be replaced at any time without dropping
// in-flight requests: a request keeps the target it was routed to, and Quiesce says when
// the requests routed by earlier tables have finished, so their targets can be closed.
type Gateway struct {
	cfg   Config
	table atomic.Pointer[table]
	// mu serializes SetRoutes and guards retired: replaced tables that may still have
	// requests in flight.
	mu      sync.Mutex
	retired []*table
	tracer  trace.Tracer
	// recording is false for a no-op tracer: the gateway then makes span ids itself.
	recording bool

	// The request log's sampler, and the weights of requests no route serves (404s).
	sampler *telemetry.RequestSampler
	noRoute telemetry.LineWeights
	// weights are the request log's weights by SLI key, for the routes of the current
	// table (telemetry.go); under mu.
	weights map[sli.Key]*telemetry.LineWeights

	// date is the Date header of the responses functions answer (date.go).
	date dateCache

	// conns gives the gateway's own connections their stripes of the shared counts
	// (telemetry.StripedCount) round robin, when each serves its first request: written once per
	// connection, so kept off the cache lines of the fields every request reads.
	_     [128]byte
	conns atomic.Uint32
	_     [124]byte
}

// New returns a Gateway with no routes.
func New(cfg Config) *Gateway {
	if cfg.Logger == nil {
		cfg.Logger = telemetry.Discard
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 30 * time.Second
	}
	cfg.Limits = cfg.Limits.withDefaults()
	g := &Gateway{cfg: cfg, tracer: cfg.Tracer, sampler: telemetry.NewRequestSampler(cfg.RequestLog, cfg.Metrics)}
	if !cfg.Telemetry {
		g.cfg.Metrics = nil
		g.cfg.SLIs = nil
		g.tracer = nil
	}
	if g.tracer == nil {
		g.tracer = noop.NewTracerProvider().Tracer("")
	} else {
		// Told by type, not by starting a span to look at its ids: with an exporting
		// provider that span left every process start as a stray root span. Any other
		// tracer that makes no ids is caught per request (ServeHTTP makes them then).
		_, isNoop := g.tracer.(noop.Tracer)
		g.recording = !isNoop
	}
	g.table.Store(newEmptyTable())
	return g
}

// SetRoutes replaces the routing table atomically. Requests already routed keep their
// targets; call Quiesce before closing a target that is no longer routed.
func (g *Gateway) SetRoutes(routes []Route) error {
	t, err := newTable(routes)
	if err != nil {
		return err
	}
	// The telemetry lives in the table's routes, so a request always finds its route's.
	g.attachTelemetry(t)
	g.mu.Lock()
	defer g.mu.Unlock()
	t.carryDrains(g.table.Load(), time.Now(), g.routeDrain())
	old := g.table.Swap(t)
	old.retire()
	g.retired = slices.DeleteFunc(append(g.retired, old), (*table).isDrained)
	return nil
}

// Quiesce waits until every request routed by a table that SetRoutes has replaced has
// finished, or ctx is done. Targets routed only by replaced tables then get no more
// requests from the gateway and can be closed.
func (g *Gateway) Quiesce(ctx context.Context) error {
	g.mu.Lock()
	pending := append([]*table(nil), g.retired...)
	g.mu.Unlock()
	for _, t := range pending {
		select {
		case <-t.drained:
		case <-ctx.Done():
			return fmt.Errorf("gateway quiesce: %w", ctx.Err())
		}
	}
	// Let go of the drained tables (and so of their targets).
	g.mu.Lock()
	g.retired = slices.DeleteFunc(g.retired, (*table).isDrained)
	g.mu.Unlock()
	return nil
}

// acquire returns the current table, held on stripe s until release(s): a table
// replaced after acquire returns is not reported drained before this request is done.
func (g *Gateway) acquire(s uint32) *table {
	for {
		t := g.table.Load()
		t.hold(s)
		// Re-check after taking the reference: if SetRoutes replaced the table in between,
		// it may already have found the table drained, so use the new one (the argument
		// is at table.release).
		if g.table.Load() == t {
			return t
		}
		t.release(s)
	}
}

// Routes returns the current routes.
func (g *Gateway) Routes() []Route { return g.table.Load().routes }

const (
	headerRequestID = "X-Request-Id"
	maxRequestIDLen = 128
)

// reservedResponseHeader reports whether k, a canonical name, is a response header the
// gateway owns: its request id and trace context, and the framing and hop-by-hop
// headers of its own connection. A switch on the length first, not a map: it runs for
// every header of every response, and most names are ruled out without a comparison
// (a map lookup hashes the whole name).
func reservedResponseHeader(k string) bool {
	switch len(k) {
	case 2:
		return k == "Te"
	case 7:
		return k == "Trailer" || k == "Upgrade"
	case 10:
		return k == "Tracestate" || k == "Connection" || k == "Keep-Alive"
	case 11:
		return k == "Traceparent"
	case 12:
		return k == headerRequestID
	case 14:
		return k == "Content-Length"
	case 16:
		return k == "Proxy-Connection"
	case 17:
		return k == "Transfer-Encoding"
	}
	return false
}

// exchange is what one request needs of its own: the header values the gateway adds
// (request id, trace context, Content-Length), the sandbox request and the response
// it is decoded into, the span that carries the ids when nothing records spans, and a
// backing array for the response's first header values.
//
// An HTTP/1 connection of the gateway's own server keeps one exchange for all its
// requests (exchangeFor), since it serves one at a time: net/http writes a response
// out (finishRequest, which still reads the header values kept here) before it reads
// the next request. Other requests, such as HTTP/2 streams, allocate their own.
type exchange struct {
	vals [3]string // request id, traceparent, Content-Length
	// added backs req.Added: the request id, traceparent, and tracestate and
	// X-Forwarded-Proto when there are; nadded of them are set.
	added  [4]abi.Header
	nadded int32
	// ownHeader is set when the response's header map held nothing before the
	// gateway's own fields: its reserved ones and a split's Set-Cookie (serve). Beside
	// nadded, in the same word: the exchange keeps to its size class (TestExchangeSize).
	ownHeader bool
	req       sandbox.Request
	resp      sandbox.Response // req.Reply
	span      idSpan
	hvals     [4]string
	inst      uint64 // the instance that served, for the SLI exemplar
	// stripe is the stripe this exchange's requests change of the counts every request
	// changes (the table's uses; with telemetry, the requests in flight, the request
	// series, the request log's weights): its connection's, for all of the
	// connection's requests (telemetry.StripedCount).
	stripe uint32
}

// exchangeFor returns the exchange for r, which came on tc (nil: not the gateway's
// own server).
func (g *Gateway) exchangeFor(tc *trackedConn, r *http.Request) *exchange {
	if tc == nil || r.ProtoMajor != 1 {
		// A request of its own: a random stripe, from the runtime's per-thread
		// generator, since a round-robin count would be one more word every such
		// request writes.
		return &exchange{stripe: rand.Uint32()}
	}
	if tc.x == nil {
		tc.x = &exchange{stripe: g.conns.Add(1)}
	}
	return tc.x
}

// release lets go of what the exchange holds of its request (the header map, the
// body, the response's views), keeping only the small buffer its reply reuses: an idle
// keep-alive connection pins nothing of its last request, whatever its size. The
// header values net/http still has to write are held by the response's header map.
func (x *exchange) release() {
	x.req = sandbox.Request{}
	x.added, x.nadded = [4]abi.Header{}, 0
	x.resp.Reset()
}

// add adds a header field the gateway sets on the request the guest sees
// (sandbox.Request.Added); name must be canonical.
func (x *exchange) add(name, value string) {
	x.added[x.nadded] = abi.Header{Name: name, Value: value}
	x.nadded++
}

// idSpan is a span that only carries its ids: what the request's context holds when
// no tracer records (otel's own non-recording span would be one more allocation). Its
// other methods are noSpan's no-ops: embedding noop.Span itself would carry a second,
// unused span context, 64 bytes of every exchange an HTTP/2 stream allocates.
type idSpan struct {
	trace.Span // always noSpan
	sc         trace.SpanContext
}

var noSpan trace.Span = noop.Span{}

func (s *idSpan) SpanContext() trace.SpanContext { return s.sc }

// spanUser is a target that tells whether it reads the request's span from the
// context Invoke is given: a sandbox.Function does only to parent spans of its own.
type spanUser interface{ Traces() bool }

// tracesUnder reports whether t may read the request's span from its context; a target
// that does not say is given it.
//
// Why ask? When nothing records spans the gateway still makes the request's ids, and
// putting its span into the context (trace.ContextWithSpan) is an allocation and a
// context layer on every request, for a function that never looks unless it traces.
func tracesUnder(t Target) bool {
	u, ok := t.(spanUser)
	return !ok || u.Traces()
}

// ServeHTTP routes and serves one request.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The clock is read for telemetry (and a request no route serves) only: with
	// telemetry off, the sandbox's own readings bound the call, and a clock reading
	// costs about 100 ns on a virtual machine (bench/RESULTS.md).
	var start time.Time
	if g.cfg.Telemetry {
		start = time.Now()
	}
	tc := connOf(r)
	x := g.exchangeFor(tc, r)
	defer x.release()
	// A request of the gateway's own server that brings no traceparent has no parent
	// span: the server's contexts (ServeHandler sets no BaseContext) carry none, and
	// Extract would find none in the header. Knowing it saves Extract and, when nothing
	// records, SpanContextFromContext's walk of every layer of the request's context.
	noParent := tc != nil && len(r.Header["Traceparent"]) == 0
	ctx := r.Context()
	if !noParent {
		ctx = telemetry.Propagator.Extract(ctx, telemetry.RequestCarrier(r.Header))
	}
	tb := g.acquire(x.stripe)
	defer tb.release(x.stripe)
	route, ok := tb.match(r.Host, r.URL.Path)
	var span trace.Span
	idOnly := false // the ids are x.span's, not a started span's
	if g.recording {
		spanName := "HTTP " + r.Method
		if ok {
			spanName += " " + route.Prefix
		}
		ctx, span = g.tracer.Start(ctx, spanName, trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
	} else {
		// Nothing records spans: make the ids only, so they still propagate. The span
		// goes into the context only for a target that reads it there (below).
		var parent trace.SpanContext
		if !noParent {
			parent = trace.SpanContextFromContext(ctx)
		}
		x.span = idSpan{Span: noSpan, sc: telemetry.NewSpanContext(parent)}
		span, idOnly = &x.span, true
	}
	// The guest sees the trace context the client gets back (as Propagator.Inject would
	// write it); the guest's own headers never replace these.
	sc := span.SpanContext()
	if !sc.IsValid() { // a tracer that made no ids: make them, as when nothing records
		x.span = idSpan{Span: noSpan, sc: telemetry.NewSpanContext(sc)}
		sc, idOnly = x.span.sc, true
	}
	// A caller's reasonable id is kept, so ids correlate across hops; else one is made,
	// in the same allocation as the traceparent.
	var id, traceparent string
	if in := r.Header[headerRequestID]; len(in) > 0 && validRequestID(in[0]) {
		id, traceparent = in[0], telemetry.Traceparent(sc)
	} else {
		traceparent, id = telemetry.TraceparentAndRequestID(sc)
	}
	// The guest and the client see the same values. The guest's are given beside the
	// request's header map (sandbox.Request.Added), not written into it; the
	// response's share the (never modified) value slices, capped so an append copies.
	x.vals[0], x.vals[1] = id, traceparent
	x.add(headerRequestID, id)
	x.add("Traceparent", traceparent)
	wh := w.Header()
	// A handler in front of the gateway may have set fields already (see serve).
	x.ownHeader = len(wh) == 0
	wh[headerRequestID] = x.vals[0:1:1]
	wh["Traceparent"] = x.vals[1:2:2]
	if ts := sc.TraceState(); ts.Len() > 0 {
		tsv := ts.String()
		x.add("Tracestate", tsv)
		wh["Tracestate"] = []string{tsv}
	}
	traceID := traceparent[3:35]

	if !ok {
		if start.IsZero() {
			start = time.Now()
		}
		if dr, _, draining := tb.drainingRoute(r.Host, r.URL.Path, start); draining {
			g.drainingResponse(ctx, w, r, x.stripe, dr, id, traceID, start)
			return
		}
		writeError(w, http.StatusNotFound, fmt.Sprintf("no route for host %q path %q", r.Host, r.URL.Path), id)
		g.logRequest(ctx, r, x.stripe, id, traceID, nil, nil, &g.noRoute, http.StatusNotFound, start, time.Time{}, false, "")
		return
	}
	target, tel := route.Target, route.tel
	if s := route.split; s != nil {
		canary, cookie := s.pick(r)
		if canary {
			target, tel = s.target, s.tel
		}
		if cookie != "" {
			wh["Set-Cookie"] = []string{cookie}
		}
	}
	if idOnly && tracesUnder(target) {
		ctx = trace.ContextWithSpan(ctx, &x.span)
	}
	g.cfg.Metrics.InFlightAdd(x.stripe, 1)
	defer g.cfg.Metrics.InFlightAdd(x.stripe, -1)

	status, cold, reason := g.serve(ctx, w, r, tc, x, route, target, tel, id)
	if g.cfg.Telemetry {
		// One clock reading, monotonic only, ends the request for every record of it:
		// metrics, SLI and log (whose wall time is start's moved on by as much).
		elapsed := time.Since(start)
		end := start.Add(elapsed)
		tel.fm.Request(x.stripe, status, elapsed.Seconds())
		if reason != "" {
			tel.fm.Error(reason)
		}
		if tel.sli != nil {
			// Sampled: this request's span was recorded, so the trace backend has it.
			tel.sli.RecordRequest(&sli.Exemplar{Duration: elapsed, Status: status, Start: start.UnixMilli(),
				TraceID: sc.TraceID(), Sampled: span.IsRecording() && sc.IsSampled(), Instance: x.inst,
				Method: r.Method, Path: r.URL.Path}, cold)
			if limit := sliLimit(reason); limit != "" {
				g.cfg.SLIs.RecordLimitRejection(tel.key, limit)
			}
		}
		if span.IsRecording() {
			scheme := "http"
			if r.TLS != nil {
				scheme = "https"
			}
			span.SetAttributes(
				attribute.String("http.request.method", r.Method),
				attribute.String("url.scheme", scheme),
				attribute.String("http.route", route.Prefix),
				attribute.Int("http.response.status_code", status),
				attribute.String("fermion.function", target.Name()),
				attribute.String("fermion.version", target.Version()),
				attribute.String("fermion.request_id", id),
				attribute.Bool("fermion.cold", cold),
			)
			if status >= 500 {
				span.SetStatus(codes.Error, http.StatusText(status))
			}
		}
		g.logRequest(ctx, r, x.stripe, id, traceID, route, target, tel.lines, status, start, end, cold, reason)
	}
}

// serve runs the request on its target and writes the response.
func (g *Gateway) serve(ctx context.Context, w http.ResponseWriter, r *http.Request, tc *trackedConn, x *exchange, route *Route, target Target, tel *routeTelemetry, id string) (status int, cold bool, reason string) {
	fm, limit := tel.fm, tel.maxBody
	if r.ContentLength > limit {
		return g.tooLarge(w, fm, id, limit)
	}
	var body []byte
	// A value, not NewResponseController's pointer: the body reader's copy escapes
	// (through io.Reader), and would take this one, used on every request, to the heap.
	rc := *http.NewResponseController(w)
	if r.Body != nil && r.Body != http.NoBody {
		brc := rc
		br := &bodyReader{r: r.Body, rc: &brc, idle: g.cfg.Limits.BodyTimeout, minRate: g.cfg.Limits.MinBodyRate, start: time.Now()}
		b, err := io.ReadAll(io.LimitReader(br, limit+1))
		if err != nil {
			if br.timedOut {
				return g.bodyTimeout(w, &rc, id)
			}
			writeError(w, http.StatusBadRequest, "read request body: "+err.Error(), id)
			return http.StatusBadRequest, false, telemetry.ReasonBadRequest
		}
		if int64(len(b)) > limit {
			return g.tooLarge(w, fm, id, limit)
		}
		body = b
	}
	if r.TLS != nil {
		// The gateway terminated TLS itself: tell the guest, in the header a proxy in
		// front would have set (overriding whatever the client sent).
		x.add("X-Forwarded-Proto", "https")
	}
	req := &x.req
	*req = sandbox.Request{
		ID:         id,
		Method:     r.Method,
		URI:        requestURI(tc, r),
		Host:       r.Host,
		RemoteAddr: r.RemoteAddr,
		TLS:        r.TLS != nil,
		Header:     r.Header,
		// The gateway's own server is net/http's, whose parsing leaves every name
		// canonical; a request from elsewhere (a test, another server) may not be.
		CanonicalHeader: tc != nil,
		Added:           x.added[:x.nadded:x.nadded],
		Body:            body,
		Route:           route.Prefix,
		Reply:           &x.resp,
	}
	resp, err := target.Invoke(ctx, req)
	if err != nil {
		var se *sandbox.Error
		if !errors.As(err, &se) {
			se = &sandbox.Error{Status: http.StatusInternalServerError, Reason: telemetry.ReasonInternal, Msg: "internal error", Err: err}
		}
		if se.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(se.RetryAfter))
		}
		writeError(w, se.Status, se.Msg, id)
		if se.Err != nil {
			g.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "function error", slog.String("request_id", id),
				slog.String("function", target.Name()), slog.String("reason", se.Reason), slog.String("err", se.Err.Error()))
		}
		return se.Status, se.Cold, se.Reason
	}
	h := w.Header()
	vals := x.hvals[:0] // one backing array for the first values
	if len(resp.Header) > len(x.hvals) {
		vals = make([]string, 0, len(resp.Header))
	}
	dated := false // the guest set a Date
	// The guest's first names, while few: with nothing but the gateway's own fields in
	// h before them (x.ownHeader), a name can be in h only if the guest gave it before,
	// or if it is Set-Cookie (a split's sticky cookie), so those are looked up in h and
	// the others are not. Why? The lookup before each insert was a second hash and
	// probe of every field of every response, for a repeat that guests rarely send;
	// comparing a name with the guest's few earlier ones costs less (mostly a length).
	var names [len(x.hvals)]string
	nnames := 0
	if !x.ownHeader {
		nnames = len(names) // unknown fields: look every name up
	}
	for _, kv := range resp.Header {
		// Guests may spell names in any case; compare and write them canonically so a
		// guest can neither shadow the gateway's headers nor send two of one header.
		k := canonicalName(kv.Name)
		if reservedResponseHeader(k) {
			continue
		}
		if k == "Date" { // a single field: the guest's first is kept, and no other
			if dated {
				continue
			}
			dated = true
		}
		if nnames == len(names) || k == "Set-Cookie" || slices.Contains(names[:nnames], k) {
			if prev, ok := h[k]; ok {
				h[k] = append(prev, kv.Value) // the capped first value is copied, not overwritten
				continue
			}
		}
		if nnames < len(names) {
			names[nnames] = k
			nnames++
		}
		vals = append(vals, kv.Value)
		h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	if !dated && !resp.End.IsZero() {
		// The second the guest call ended in, formatted once per second (date.go), so
		// net/http neither reads the clock nor formats a Date for this response.
		h["Date"] = g.date.at(resp.End)
	}
	x.inst = resp.Instance
	if !serverCountsBody(tc, r, len(resp.Body)) {
		x.vals[2] = strconv.Itoa(len(resp.Body))
		h["Content-Length"] = x.vals[2:3:3]
	}
	w.WriteHeader(resp.Status)
	if writeBody(w, &rc, tc, resp.Body, g.cfg.Limits.WriteTimeout, resp.End) {
		if tc == nil { // the gateway's connections count their own (trackedConn.Write)
			g.cfg.Metrics.GatewayRejection(telemetry.RejectWriteTimeout)
		}
		return resp.Status, resp.Cold, telemetry.RejectWriteTimeout
	}
	return resp.Status, resp.Cold, ""
}

// bodyTimeout answers a request whose client sent its body too slowly, and closes the
// connection: the rest of the body is not worth waiting for.
func (g *Gateway) bodyTimeout(w http.ResponseWriter, rc *http.ResponseController, id string) (int, bool, string) {
	g.cfg.Metrics.GatewayRejection(telemetry.RejectBodyTimeout)
	// Keep the read deadline passed: after the handler the server would otherwise wait,
	// without a deadline, to discard the rest of the body.
	rc.SetReadDeadline(time.Now())
	if t := g.cfg.Limits.WriteTimeout; t > 0 {
		rc.SetWriteDeadline(time.Now().Add(t))
	}
	w.Header().Set("Connection", "close")
	msg := fmt.Sprintf("request body not received in time: the gateway waits at most %s between reads and, after that, for at least %s/s",
		g.cfg.Limits.BodyTimeout, v1.Count(g.cfg.Limits.MinBodyRate, "byte"))
	writeError(w, http.StatusRequestTimeout, msg, id)
	return http.StatusRequestTimeout, false, telemetry.RejectBodyTimeout
}

func (g *Gateway) tooLarge(w http.ResponseWriter, fm *telemetry.FunctionMetrics, id string, limit int64) (int, bool, string) {
	fm.LimitRejection(telemetry.LimitRequestBody)
	// The body was not read to the end; closing the connection is cheaper than draining it.
	w.Header().Set("Connection", "close")
	writeError(w, http.StatusRequestEntityTooLarge, "request body exceeds the function's limit of "+v1.Count(limit, "byte"), id)
	return http.StatusRequestEntityTooLarge, false, telemetry.LimitRequestBody
}

// logRequest writes the request's log line, if the request log's sampler keeps it; end
// is when it ended (zero: now), the line's time. target is the version that served
// (route's, or its split's); lw the weights of its route and version (telemetry.LineWeights),
// added to on stripe, the request's.
func (g *Gateway) logRequest(ctx context.Context, r *http.Request, stripe uint32, id, traceID string, route *Route, target Target, lw *telemetry.LineWeights, status int, start, end time.Time, cold bool, reason string) {
	if !g.cfg.Telemetry || !g.cfg.Logger.Enabled(ctx, slog.LevelInfo) {
		return // a line that would not be written is not counted as skipped either
	}
	if end.IsZero() {
		end = time.Now()
	}
	weight, write := g.sampler.Weigh(lw, stripe, g.sampler.Since(end), status, reason, end.Sub(start))
	if !write {
		return
	}
	line := telemetry.RequestLine{
		ID:       id,
		Method:   r.Method,
		Host:     r.Host,
		Path:     r.URL.Path,
		Status:   status,
		Duration: end.Sub(start),
		Time:     end,
		Cold:     cold,
		TraceID:  traceID,
		Reason:   reason,
		Weight:   weight,
	}
	if route != nil {
		if target == nil {
			target = route.Target
		}
		line.Route, line.Function, line.Version = route.Prefix, target.Name(), target.Version()
	}
	telemetry.LogRequest(ctx, g.cfg.Logger, &line)
}

func writeError(w http.ResponseWriter, status int, msg, id string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	fmt.Fprintf(w, "%s (request id %s)\n", msg, id)
}

// validRequestID reports whether a caller's request id is reasonable to keep: short,
// printable ASCII, no spaces.
func validRequestID(in string) bool {
	if in == "" || len(in) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(in); i++ {
		if c := in[i]; c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// Serve serves HTTP on ln (through Config.TLS when set) under the client limits until
// ctx is done, then stops accepting and waits up to DrainTimeout for in-flight requests
// to finish.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	return g.ServeHandler(ctx, ln, g)
}

// ServeHandler serves h, instead of the gateway's routes, on ln under the gateway's
// own server configuration and client limits, as Serve does. It is a seam for
// benchmarks (fermion-bench gateway -ladder): a bare handler on the gateway's server
// shows what the server configuration and connection limiter cost by themselves.
func (g *Gateway) ServeHandler(ctx context.Context, ln net.Listener, h http.Handler) error {
	lim := g.cfg.Limits
	cl := newConnLimiter(ln, lim.MaxConnections, g.cfg.TLS == nil, g.cfg.Metrics)
	cl.writeSlack = lim.WriteTimeout / 4
	if lim.IdleTimeout > 0 {
		cl.sweepIdle(lim.IdleTimeout) // in place of the server's IdleTimeout (limits.go)
	}
	ln = cl
	if g.cfg.TLS != nil {
		ln = g.cfg.TLS(ln)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.HeaderTimeout,
		// No IdleTimeout (nor ReadTimeout, its fallback): the limiter closes idle
		// connections, with no deadline moved per request (sweepIdle).
		MaxHeaderBytes: lim.MaxHeaderBytes,
		ConnState:      connState,
		// One context value per connection: the response's write deadline is moved on
		// the connection directly (writeBody).
		ConnContext: connContext,
		ErrorLog:    slog.NewLogLogger(g.cfg.Logger.Handler(), slog.LevelWarn),
	}
	if g.cfg.TLS != nil {
		// Over TLS the server offers HTTP/2, whose idle timeout is the server's: it
		// sends GOAWAY before closing, which a sweep cannot. Keep it (and with it
		// net/http's idle deadline for HTTP/1 over TLS); the sweeper only backs it up.
		srv.IdleTimeout = lim.IdleTimeout
	}
	if lim.IdleTimeout == 0 {
		// Nothing would close idle keep-alive connections.
		srv.SetKeepAlivesEnabled(false)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("gateway serve: %w", err)
	case <-ctx.Done():
	}
	dctx, cancel := context.WithTimeout(context.Background(), g.cfg.DrainTimeout)
	defer cancel()
	if err := srv.Shutdown(dctx); err != nil {
		srv.Close()
		return fmt.Errorf("gateway drain: %w", err)
	}
	return nil
}
