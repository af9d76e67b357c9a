package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/bench/internal/bare"
	"fermion.dev/fermion/internal/gateway"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

// The ladder (gateway -ladder) adds Fermion's layers to the bare wazero server one at a
// time, every rung serving the ABI-only guest with telemetry off, so that each layer's
// cost per request is the difference of two neighbouring rungs measured in the same
// round:
//
//  1. bare wazero (bench/internal/bare) on a default http.Server;
//  2. the same handler on the gateway's own server configuration and connection
//     limiter (gateway.ServeHandler: timeouts, ConnState, ConnContext, trackedConn);
//  3. the same, with the request id and traceparent headers the gateway adds, fixed
//     values set by a wrapper: what the ids cost the guest (two more headers to
//     decode) and the wire (two more in each response), apart from the code making them;
//  4. the gateway (routing, ids, trace context, headers, body and write limits) in
//     front of a target that calls the bare instance pool (bare.Target);
//  5. the full data plane: the gateway in front of the sandbox (slot, instance pool,
//     deadline watch, timeline, interrupt checks in the rewritten guest), as an agent
//     serves it.
//
// Rung 5 is to rung 4 what the sandbox adds, the interrupt checks the rewriter puts
// in the guest's code included (internal/sandbox's BenchmarkInterruptChecks times
// those alone), less what bare's FIFO pool costs over the sandbox's LIFO one (the
// most recently used instance, warm in the caches).
var ladderNames = []string{
	"ladder 1: bare wazero",
	"ladder 2: bare, gateway's server",
	"ladder 3: bare + ids, gateway's server",
	"ladder 4: gateway, bare pool",
	"ladder 5: data plane (tel. off)",
}

// ladderLayers names what each rung adds to the one before it.
var ladderLayers = []string{
	"",
	"server configuration, connection limiter",
	"the ids' headers (guest decodes 2 more, response 2 more)",
	"gateway's code: routing, id making, header copying, limits",
	"sandbox around the guest (vs bare's FIFO pool), interrupt checks",
}

// ladderTargets starts the ladder's servers for the ABI-only guest mw, every pool as
// large as conns, under the manifest m's limits.
func ladderTargets(m *manifest.Manifest, mw []byte, conns int, logw io.Writer) (ts []target, err error) {
	defer func() {
		if err != nil {
			for _, t := range ts {
				t.close()
			}
			ts = nil
		}
	}()
	ctx := context.Background()
	spec := sandbox.SpecFromManifest(m, mw)
	for _, rung := range []int{0, 1, 2, 3} {
		srv, err := bare.New(ctx, mw, conns)
		if err != nil {
			return ts, fmt.Errorf("ladder: %w", err)
		}
		// Every bare rung's guest memories grown before the harness's warmup, which
		// spreads too few requests over a FIFO pool to grow them all (bare.Warm).
		if err := srv.Warm(ctx, ladderWarmCalls, &ladderRequest); err != nil {
			srv.Close(ctx)
			return ts, fmt.Errorf("ladder: %w", err)
		}
		if rung == 0 {
			t, err := serveHTTP(ladderNames[0], srv, func() { srv.Close(ctx) })
			if err != nil {
				return ts, err
			}
			ts = append(ts, t)
			continue
		}
		g := gateway.New(gateway.Config{Logger: telemetry.Discard})
		var h http.Handler = srv
		if rung == 2 {
			h = withIDs(srv)
		}
		if rung == 3 {
			if err := g.SetRoutes([]gateway.Route{{Prefix: "/hello", Target: srv.Target(spec)}}); err != nil {
				srv.Close(ctx)
				return ts, fmt.Errorf("ladder: %w", err)
			}
			h = g
		}
		t, err := gatewayServe(ladderNames[rung], g, h, func() { srv.Close(ctx) })
		if err != nil {
			return ts, err
		}
		ts = append(ts, t)
	}
	full, err := fermionTarget(ladderNames[4], m, mw, false, logw, "", "")
	if err != nil {
		return ts, err
	}
	return append(ts, full), nil
}

// withIDs adds to every request and response the headers the gateway adds, with fixed
// values of their length (ladderRequest's).
func withIDs(h http.Handler) http.Handler {
	// Shared by every request, never modified, capped so an append copies: no
	// allocation of their own, as the gateway's exchange makes none per request.
	idv := []string{ladderRequest.Headers[1].Value}[:1:1]
	tpv := []string{ladderRequest.Headers[0].Value}[:1:1]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header["X-Request-Id"], r.Header["Traceparent"] = idv, tpv
		wh := w.Header()
		wh["X-Request-Id"], wh["Traceparent"] = idv, tpv
		h.ServeHTTP(w, r)
	})
}

// ladderWarmCalls is how many calls bare.Warm makes on each instance: past the
// ~16,000 after which the ABI-only guest's memory stops growing (bench/RESULTS.md).
const ladderWarmCalls = 20000

// ladderRequest is what the warm calls send: the load's request with the ids the
// gateway adds, the largest any rung's guest sees.
var ladderRequest = abi.Request{Method: "GET", URI: "/hello", Host: "127.0.0.1", RemoteAddr: "127.0.0.1:40000",
	Headers: []abi.Header{{Name: "Traceparent", Value: "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01"},
		{Name: "X-Request-Id", Value: "0123456789abcdef0123456789abcdef"}}}

// serveHTTP serves h on a default http.Server on a loopback port, as bare wazero's
// own target does.
func serveHTTP(name string, h http.Handler, closeRest func()) (target, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		closeRest()
		return target{}, fmt.Errorf("%s: %w", name, err)
	}
	hs := &http.Server{Handler: h}
	go hs.Serve(ln)
	return target{name: name, url: "http://" + ln.Addr().String() + "/hello", close: func() { hs.Close(); closeRest() }}, nil
}

// gatewayServe serves h through g's server configuration on a loopback port.
func gatewayServe(name string, g *gateway.Gateway, h http.Handler, closeRest func()) (target, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		closeRest()
		return target{}, fmt.Errorf("%s: %w", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.ServeHandler(ctx, ln, h) }()
	return target{name: name, url: "http://" + ln.Addr().String() + "/hello", close: func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Printf("%s: %v\n", name, err)
		}
		closeRest()
	}}, nil
}

// printLadder prints each rung's server CPU per request and what it adds to the rung
// before it: the median over rounds of the difference within a round (the two ran
// seconds apart), with the rounds' spread.
func printLadder(results map[string][]loadResult) {
	if len(results[ladderNames[0]]) == 0 {
		return
	}
	fmt.Println("\nLadder: the ABI-only guest with Fermion's layers added one at a time (telemetry off); a layer's cost is its rung's CPU less the rung before's, per round.")
	fmt.Println()
	fmt.Println("| rung | adds | server CPU µs/req (median) | step µs/req, median (min–max of rounds) | throughput vs rung 1, median (min–max) | CPU per request, rung 1 ÷ this, median (min–max) |")
	fmt.Println("|---|---|---|---|---|---|")
	for i, name := range ladderNames {
		rs := results[name]
		if len(rs) == 0 {
			continue
		}
		step := "—"
		if i > 0 {
			if prev := results[ladderNames[i-1]]; len(prev) > 0 {
				step = medianSpread(rs, prev, func(r, b loadResult) float64 { return us(r.cpuPerReq) - us(b.cpuPerReq) }, "%+.2f")
			}
		}
		ratio := medianSpread(rs, results[ladderNames[0]], func(r, b loadResult) float64 { return r.rps / b.rps }, "%.3f")
		cpu := medianSpread(rs, results[ladderNames[0]], func(r, b loadResult) float64 { return float64(b.cpuPerReq) / float64(r.cpuPerReq) }, "%.3f")
		fmt.Printf("| %s | %s | %.1f | %s | %s | %s |\n", name, ladderLayers[i], us(medianCPU(slices.Clone(rs))), step, ratio, cpu)
	}
}

// medianSpread formats the median and range over rounds of f(round of rs, same round
// of base).
func medianSpread(rs, base []loadResult, f func(r, b loadResult) float64, verb string) string {
	var vs []float64
	for i := range min(len(rs), len(base)) {
		vs = append(vs, f(rs[i], base[i]))
	}
	if len(vs) == 0 {
		return "—"
	}
	sort.Float64s(vs)
	return fmt.Sprintf(verb+" ("+verb+"–"+verb+")", vs[len(vs)/2], vs[0], vs[len(vs)-1])
}
