package sandbox_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

// Each fault test makes one guest misbehave, checks the error, the metrics and the pool,
// and then proves that the same Function serves the next normal request.

func TestFaultLoopTimesOut(t *testing.T) {
	e, m := newEngine(t)
	s := spec("loop", reactor(t, guestLoop))
	s.Limits.Timeout = 300 * time.Millisecond
	f := load(t, e, s)
	wantOK(t, f, get("/loop"), "ok") // a warm instance that the loop must not poison

	resp, err := invoke(t, f, get("/loop?loop=1"))
	se := wantError(t, resp, err, http.StatusGatewayTimeout, telemetry.ReasonTimeout)
	if !strings.Contains(se.Msg, "timeout") {
		t.Fatalf("message %q does not mention the timeout", se.Msg)
	}
	if se.Cold {
		t.Fatal("the loop ran on the warm instance, but its error is marked Cold")
	}
	wantMetric(t, "timeout rejections", rejections(m, "loop", telemetry.LimitTimeout), 1)
	wantMetric(t, "timeout discards", discards(m, "loop", telemetry.ReasonTimeout), 1)
	wantStats(t, f, sandbox.Stats{})

	resp = wantOK(t, f, get("/loop"), "ok")
	if !resp.Cold {
		t.Fatal("the request after a timeout reused the looping instance")
	}
	wantStats(t, f, sandbox.Stats{Warm: 1, Total: 1})
}

// TestFaultSpinningGoroutine: a goroutine a handler started runs when the Go SDK yields
// to the scheduler (every 32 requests, sdk/internal/guest), and one that never blocks
// keeps that request from returning. The deadline must stop it like a looping handler:
// a 504 for the request it holds, the instance discarded, and the next request served.
func TestFaultSpinningGoroutine(t *testing.T) {
	e, m := newEngine(t)
	s := spec("loop", reactor(t, guestLoop))
	s.Limits.Timeout = 300 * time.Millisecond
	f := load(t, e, s)
	wantOK(t, f, get("/loop?spin=1"), "ok")

	timedOut := 0
	for i := 0; i < 40 && timedOut == 0; i++ {
		resp, err := invoke(t, f, get("/loop"))
		if err == nil {
			if resp.Status != http.StatusOK {
				t.Fatalf("request %d: status %d", i, resp.Status)
			}
			continue
		}
		wantError(t, resp, err, http.StatusGatewayTimeout, telemetry.ReasonTimeout)
		timedOut++
	}
	if timedOut == 0 {
		t.Fatal("40 requests after starting a spinning goroutine all returned: the SDK never yielded to it")
	}
	wantMetric(t, "timeout discards", discards(m, "loop", telemetry.ReasonTimeout), 1)
	resp := wantOK(t, f, get("/loop"), "ok")
	if !resp.Cold {
		t.Fatal("the request after the timeout reused the instance holding the spinning goroutine")
	}
}

func TestFaultOOM(t *testing.T) {
	tests := []struct {
		name      string
		guest     string
		memory    uint64
		req, next *sandbox.Request
	}{
		// The oom guest hoards 1 MiB blocks, so memory ends up within a block of the cap.
		{name: "hoarding", guest: guestOOM, memory: 32 << 20, req: get("/oom?oom=1"), next: get("/oom")},
		// JSON-escaping 4 MiB of zero bytes needs one allocation of several MiB that fails
		// with the memory well below the cap; the Go runtime's report identifies it.
		{name: "one large allocation", guest: guestEcho, memory: 32 << 20, req: post("/echo", make([]byte, 4<<20)), next: get("/echo")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, m := newEngine(t)
			s := spec("oom", reactor(t, tt.guest))
			s.Limits.MemoryBytes = tt.memory
			s.Limits.MaxRequestBody = 8 << 20
			f := load(t, e, s)

			resp, err := invoke(t, f, tt.req)
			se := wantError(t, resp, err, http.StatusInternalServerError, telemetry.ReasonOOM)
			if !strings.Contains(se.Msg, "out of memory") || !strings.Contains(se.Msg, fmt.Sprintf("%d MiB", tt.memory>>20)) {
				t.Fatalf("message %q does not explain the memory limit", se.Msg)
			}
			wantMetric(t, "traps", traps(m, "oom"), 1)
			wantMetric(t, "memory rejections", rejections(m, "oom", telemetry.LimitMemory), 1)
			wantMetric(t, "oom discards", discards(m, "oom", telemetry.ReasonOOM), 1)
			wantStats(t, f, sandbox.Stats{})

			resp = wantOK(t, f, tt.next, "")
			if !resp.Cold {
				t.Fatal("the request after running out of memory reused the instance")
			}
			wantStats(t, f, sandbox.Stats{Warm: 1, Total: 1})
		})
	}
}

// TestFaultTrapIsNotOOM checks that an ordinary trap of a small guest is not mistaken
// for running out of memory.
func TestFaultTrapIsNotOOM(t *testing.T) {
	e, m := newEngine(t)
	s := spec("loop", reactor(t, guestLoop))
	s.Limits.Timeout = 300 * time.Millisecond
	s.Limits.MemoryBytes = 16 << 20
	f := load(t, e, s)
	resp, err := invoke(t, f, get("/loop?loop=1"))
	wantError(t, resp, err, http.StatusGatewayTimeout, telemetry.ReasonTimeout)
	wantMetric(t, "memory rejections", rejections(m, "loop", telemetry.LimitMemory), 0)
}

func TestFaultPanic(t *testing.T) {
	e, m, logs := newEngineWithLogs(t)
	f := load(t, e, spec("panic", reactor(t, guestPanic)))
	wantOK(t, f, get("/panic"), "ok")

	resp, err := invoke(t, f, get("/panic?panic=1"))
	wantError(t, resp, err, http.StatusInternalServerError, telemetry.ReasonPanic)
	wantMetric(t, "traps", traps(m, "panic"), 1)
	wantMetric(t, "panic discards", discards(m, "panic", telemetry.ReasonPanic), 1)
	wantStats(t, f, sandbox.Stats{})
	if !strings.Contains(logs.String(), "fault guest: panic requested") {
		t.Fatalf("the panic message is not in the guest log:\n%s", logs.String())
	}

	resp = wantOK(t, f, get("/panic"), "ok")
	if !resp.Cold {
		t.Fatal("the request after a panic reused the panicked instance")
	}
}

func TestFaultStdoutFlood(t *testing.T) {
	e, m, logs := newEngineWithLogs(t)
	f := load(t, e, spec("flood", reactor(t, guestFlood)))

	resp := wantOK(t, f, get("/flood?flood=1"), "done")
	if string(resp.Body) != "done" {
		t.Fatalf("body %q", truncate(resp.Body))
	}
	dropped := logDropped(m, "flood")
	if dropped < 99<<20 {
		t.Fatalf("dropped guest log bytes = %v, want about 100 MiB", dropped)
	}
	if n := logs.Len(); n > 1<<20 {
		t.Fatalf("100 MiB of guest stdout became %d bytes of logs; the per-request cap is not applied", n)
	}
	if !strings.Contains(logs.String(), "guest output truncated") {
		t.Fatal("no log line says the guest output was truncated")
	}

	wantOK(t, f, get("/flood"), "ok")
	wantStats(t, f, sandbox.Stats{Warm: 1, Total: 1})
	if got := logDropped(m, "flood"); got != dropped {
		t.Fatalf("a quiet request dropped %v more log bytes", got-dropped)
	}
}

func TestFaultBadCGI(t *testing.T) {
	e, m := newEngine(t)
	s := spec("badcgi", command(t, guestBadCGI))
	s.Limits.MaxConcurrency = 2
	bad := load(t, e, s)
	if bad.ABI() != sandbox.ABICommand {
		t.Fatalf("abi = %s", bad.ABI())
	}
	good := load(t, e, spec("cgi", command(t, guestCGI)))

	// More requests than concurrency slots: a slot leaked by a failed run would turn the
	// later answers into 503s.
	for i := 0; i < 2*s.Limits.MaxConcurrency+1; i++ {
		resp, err := invoke(t, bad, get("/badcgi"))
		se := wantError(t, resp, err, http.StatusBadGateway, telemetry.ReasonBadResponse)
		if !strings.Contains(se.Msg, "malformed CGI response") || !strings.Contains(se.Msg, "no colon") {
			t.Fatalf("message %q does not say what is wrong", se.Msg)
		}
		if st := bad.Stats(); st != (sandbox.Stats{}) {
			t.Fatalf("command module left instances behind: %+v", st)
		}
	}
	wantMetric(t, "traps", traps(m, "badcgi"), 0)
	wantMetric(t, "bad responses (header_syntax)", toFloat64(m.BadResponses.WithLabelValues("badcgi", version, telemetry.BadResponseHeaderSyntax)),
		float64(2*s.Limits.MaxConcurrency+1))

	wantOK(t, good, get("/cgi/x?q=1"), "query: q=1")
}

func TestFaultFileAccess(t *testing.T) {
	wasm := reactor(t, guestFile)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x"), []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		files []manifest.Mount
		want  []string
	}{
		{
			name: "no files granted",
			want: []string{"open /etc/passwd: error:", "read /data/x: error:"},
		},
		{
			name:  "data mount granted",
			files: []manifest.Mount{{Source: dir, Destination: "/data"}},
			want:  []string{"open /etc/passwd: error:", "read /data/x: succeeded (5 bytes)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newEngine(t)
			s := spec("file", wasm)
			s.Capabilities.Files = tt.files
			f := load(t, e, s)
			resp := wantOK(t, f, get("/file"), "")
			for _, w := range tt.want {
				if !strings.Contains(string(resp.Body), w) {
					t.Fatalf("body %q does not contain %q", resp.Body, w)
				}
			}
			if strings.Contains(string(resp.Body), "root:") {
				t.Fatalf("host file content leaked: %q", resp.Body)
			}
		})
	}
}

func TestFaultDialNotAllowed(t *testing.T) {
	e, m := newEngine(t)
	var hitsA, hitsB atomic.Int32
	srvA := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hitsA.Add(1)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte("hello from A"))
	}))
	t.Cleanup(srvA.Close)
	srvB := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hitsB.Add(1)
		w.Write([]byte("hello from B"))
	}))
	t.Cleanup(srvB.Close)

	allowA, err := manifest.ParseHostPattern(srvA.URL)
	if err != nil {
		t.Fatal(err)
	}
	s := spec("dial", reactor(t, guestDial))
	s.Capabilities.AllowedOutboundHosts = []manifest.HostPattern{allowA}
	f := load(t, e, s)

	dial := func(target string) *sandbox.Request {
		return get("/dial?url=" + url.QueryEscape(target))
	}
	resp, err := invoke(t, f, dial(srvA.URL+"/a"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusAccepted || string(resp.Body) != "hello from A" {
		t.Fatalf("allowed host: got %d %q", resp.Status, resp.Body)
	}
	wantMetric(t, "outbound ok", outbound(m, "dial", telemetry.OutboundOK), 1)

	tests := []struct {
		name, url, want string
	}{
		{"other port", srvB.URL + "/b", "is not in allowed_outbound_hosts"},
		{"other host name", strings.Replace(srvA.URL, "127.0.0.1", "localhost", 1) + "/a", "is not in allowed_outbound_hosts"},
		{"user info", strings.Replace(srvA.URL, "http://", "http://user:pw@", 1) + "/a", "user info are not allowed"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := invoke(t, f, dial(tt.url))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != http.StatusBadGateway || !strings.Contains(string(resp.Body), tt.want) {
				t.Fatalf("got %d %q, want 502 containing %q", resp.Status, resp.Body, tt.want)
			}
			wantMetric(t, "outbound denied", outbound(m, "dial", telemetry.OutboundDenied), float64(i+1))
		})
	}
	if n := hitsB.Load(); n != 0 {
		t.Fatalf("server B received %d requests", n)
	}
	if n := hitsA.Load(); n != 1 {
		t.Fatalf("server A received %d requests, want 1", n)
	}
	// A denied call is the guest's error, not a fault: the instance stays warm.
	wantStats(t, f, sandbox.Stats{Warm: 1, Total: 1})
	wantMetric(t, "traps", traps(m, "dial"), 0)
}

func TestFaultRequestBodyTooLarge(t *testing.T) {
	tests := []struct {
		name    string
		wasm    func(*testing.T) []byte
		uri     string
		limit   int64
		body    int
		wantErr bool
	}{
		{"reactor over", func(t *testing.T) []byte { return reactor(t, guestEcho) }, "/echo", 1024, 1025, true},
		{"reactor at limit", func(t *testing.T) []byte { return reactor(t, guestEcho) }, "/echo", 1024, 1024, false},
		{"reactor no body allowed", func(t *testing.T) []byte { return reactor(t, guestEcho) }, "/echo", 0, 1, true},
		{"reactor one byte allowed", func(t *testing.T) []byte { return reactor(t, guestEcho) }, "/echo", 1, 2, true},
		{"command over", func(t *testing.T) []byte { return command(t, guestCGI) }, "/cgi", 1024, 4096, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, m := newEngine(t)
			s := spec("body", tt.wasm(t))
			s.Limits.MaxRequestBody = tt.limit
			f := load(t, e, s)
			resp, err := invoke(t, f, post(tt.uri, make([]byte, tt.body)))
			if !tt.wantErr {
				if err != nil || resp.Status != http.StatusOK {
					t.Fatalf("body at the limit: %v %v", resp, err)
				}
				wantMetric(t, "request_body rejections", rejections(m, "body", telemetry.LimitRequestBody), 0)
				return
			}
			se := wantError(t, resp, err, http.StatusRequestEntityTooLarge, telemetry.LimitRequestBody)
			if want := "limit of " + v1.Count(tt.limit, "byte"); !strings.HasSuffix(se.Error(), want) {
				t.Errorf("error %q does not end %q", se.Error(), want)
			}
			wantMetric(t, "request_body rejections", rejections(m, "body", telemetry.LimitRequestBody), 1)
			wantOK(t, f, get(tt.uri), "")
		})
	}
}

func TestFaultConcurrencyLimit(t *testing.T) {
	e, m := newEngine(t)
	s := spec("slow", reactor(t, guestSlow))
	s.Limits.MaxConcurrency = 2
	s.Limits.QueueTimeout = 50 * time.Millisecond
	s.Scaling.MaxInstances = 2
	f := load(t, e, s)

	done := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() {
			resp, err := f.Invoke(context.Background(), get("/slow?d=1s"))
			if err == nil && (resp.Status != 200 || string(resp.Body) != "ok") {
				err = errors.New("slow request: " + string(resp.Body))
			}
			done <- err
		}()
	}
	wantStats(t, f, sandbox.Stats{Busy: 2, Total: 2})

	resp, err := invoke(t, f, get("/slow"))
	se := wantError(t, resp, err, http.StatusServiceUnavailable, telemetry.LimitConcurrency)
	if se.RetryAfter <= 0 {
		t.Fatalf("RetryAfter = %d, want > 0", se.RetryAfter)
	}
	wantMetric(t, "concurrency rejections", rejections(m, "slow", telemetry.LimitConcurrency), 1)

	for i := 0; i < 2; i++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("slow requests did not finish")
		}
	}
	wantOK(t, f, get("/slow"), "ok")
	if st := f.Stats(); st.Total > 2 {
		t.Fatalf("stats %+v exceed max_instances 2", st)
	}
}

// TestFaultQueueCanceled checks that a request waiting for a slot gives up when its
// client does.
func TestFaultQueueCanceled(t *testing.T) {
	e, _ := newEngine(t)
	s := spec("slow", reactor(t, guestSlow))
	s.Limits.MaxConcurrency = 1
	s.Limits.QueueTimeout = 10 * time.Second
	s.Scaling.MaxInstances = 1
	f := load(t, e, s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Invoke(context.Background(), get("/slow?d=300ms"))
	}()
	wantStats(t, f, sandbox.Stats{Busy: 1, Total: 1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	resp, err := f.Invoke(ctx, get("/slow"))
	wantError(t, resp, err, 499, telemetry.ReasonCanceled)
	<-done
	wantOK(t, f, get("/slow"), "ok")
}

func TestFaultBadModule(t *testing.T) {
	random := make([]byte, 4096)
	rand.Read(random)
	random[0] = 'x' // never the magic by chance
	garbage := append([]byte("\x00asm\x01\x00\x00\x00"), random...)
	tests := []struct {
		name    string
		wasm    func(*testing.T) []byte
		abi     string
		memory  uint64
		wantIs  error
		wantMsg []string
	}{
		{name: "random bytes", wasm: func(*testing.T) []byte { return random }, wantIs: sandbox.ErrNotWasm},
		{name: "empty", wasm: func(*testing.T) []byte { return nil }, wantIs: sandbox.ErrNotWasm},
		{name: "magic only", wasm: func(*testing.T) []byte { return []byte("\x00asm") }, wantIs: sandbox.ErrNotWasm},
		{name: "magic then garbage", wasm: func(*testing.T) []byte { return garbage }, wantMsg: []string{"load bad@1.0.0", "read module", "unknown section id"}},
		{name: "truncated module", wasm: func(t *testing.T) []byte { b := reactor(t, guestHello); return b[:len(b)/2] }, wantMsg: []string{"read module", "truncated"}},
		{name: "command declared reactor", wasm: func(t *testing.T) []byte { return command(t, guestCGI) }, abi: sandbox.ABIReactor,
			wantMsg: []string{`declares abi "reactor"`, "command module", "component.abi"}},
		{name: "reactor declared command", wasm: func(t *testing.T) []byte { return reactor(t, guestHello) }, abi: sandbox.ABICommand,
			wantMsg: []string{`declares abi "command"`, "reactor module", "component.abi"}},
		{name: "unknown abi", wasm: func(t *testing.T) []byte { return reactor(t, guestHello) }, abi: "wagi",
			wantMsg: []string{`"wagi"`, "component.abi"}},
		// hello's memory section asks for 41 pages (2.56 MiB).
		{name: "memory below the module's minimum", wasm: func(t *testing.T) []byte { return reactor(t, guestHello) }, memory: 2 << 20,
			wantMsg: []string{"module needs at least 3 MiB", "limits.memory is 2 MiB"}},
		{name: "no exports", wasm: func(*testing.T) []byte { return minimalModule(true) }, wantMsg: []string{"neither the reactor ABI"}},
		{name: "no memory", wasm: func(*testing.T) []byte { return minimalModule(false) }, wantMsg: []string{"no memory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newEngine(t)
			s := spec("bad", tt.wasm(t))
			s.ABI = tt.abi
			if tt.memory > 0 {
				s.Limits.MemoryBytes = tt.memory
			}
			f, err := e.Load(context.Background(), s)
			if err == nil {
				f.Close(context.Background())
				t.Fatal("Load succeeded")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Fatalf("error %v is not %v", err, tt.wantIs)
			}
			for _, w := range tt.wantMsg {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// minimalModule returns a valid module with no functions: with exportMemory, one page
// of memory exported as "memory" and nothing else; otherwise no memory at all.
func minimalModule(exportMemory bool) []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	if exportMemory {
		b = append(b, 0x05, 0x03, 0x01, 0x00, 0x01) // memory section: one memory, min 1 page
		b = append(b, 0x07, 0x0a, 0x01, 0x06)       // export section: one export, name length 6
		b = append(b, "memory"...)
		b = append(b, 0x02, 0x00) // kind memory, index 0
	}
	return b
}

func TestFaultResponseTooLarge(t *testing.T) {
	tests := []struct {
		name    string
		wasm    func(*testing.T) []byte
		uri     string
		body    int
		reactor bool
	}{
		// The echo guest answers with its request body, the cgi guest with an upper-case
		// copy: a body over max_response_body makes an answer over it.
		{name: "reactor", wasm: func(t *testing.T) []byte { return reactor(t, guestEcho) }, uri: "/echo", body: 4 << 10, reactor: true},
		{name: "command body", wasm: func(t *testing.T) []byte { return command(t, guestCGI) }, uri: "/cgi", body: 4 << 10},
		// Past max_response_body plus the header allowance the run is stopped while it writes.
		{name: "command stdout flood", wasm: func(t *testing.T) []byte { return command(t, guestCGI) }, uri: "/cgi", body: 3 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, m := newEngine(t)
			s := spec("big", tt.wasm(t))
			s.Limits.MaxResponseBody = 1 << 10
			s.Limits.MaxRequestBody = 4 << 20
			f := load(t, e, s)
			resp, err := invoke(t, f, post(tt.uri, bytes.Repeat([]byte("a"), tt.body)))
			se := wantError(t, resp, err, http.StatusBadGateway, telemetry.LimitResponseBody)
			if !strings.Contains(se.Msg, "1024 bytes") {
				t.Fatalf("message %q does not name the limit", se.Msg)
			}
			wantMetric(t, "response_body rejections", rejections(m, "big", telemetry.LimitResponseBody), 1)
			if tt.reactor {
				// The guest finished normally; only its answer was refused.
				wantStats(t, f, sandbox.Stats{Warm: 1, Total: 1})
				wantMetric(t, "traps", traps(m, "big"), 0)
			}
			wantOK(t, f, post(tt.uri, []byte("small")), "")
		})
	}
}

func TestFaultClientCanceled(t *testing.T) {
	e, m := newEngine(t)
	f := load(t, e, spec("slow", reactor(t, guestSlow)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		resp *sandbox.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		// Asleep in the host for longer than the test runs: the interrupt must end the sleep.
		resp, err := f.Invoke(ctx, get("/slow?d=1h"))
		done <- result{resp, err}
	}()
	wantStats(t, f, sandbox.Stats{Busy: 1, Total: 1})
	cancel()
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("canceled request did not return")
	}
	wantError(t, r.resp, r.err, 499, telemetry.ReasonCanceled)
	wantMetric(t, "canceled discards", discards(m, "slow", telemetry.ReasonCanceled), 1)
	wantMetric(t, "traps", traps(m, "slow"), 0)
	wantStats(t, f, sandbox.Stats{})
	wantOK(t, f, get("/slow"), "ok")
}

// TestFaultStartOutOfMemory gives hello enough memory for its module but not for the Go
// runtime's first heap arena, so its _initialize runs out of memory.
func TestFaultStartOutOfMemory(t *testing.T) {
	wasm := reactor(t, guestHello)
	t.Run("prewarm", func(t *testing.T) {
		e, _ := newEngine(t)
		s := spec("hello", wasm)
		s.Limits.MemoryBytes = 3 << 20
		s.Scaling.MinWarm = 1
		f, err := e.Load(context.Background(), s)
		if err == nil {
			f.Close(context.Background())
			t.Fatal("Load succeeded")
		}
		for _, w := range []string{"prewarm", "ran out of memory", "limits.memory is 3 MiB"} {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("error %q does not contain %q", err, w)
			}
		}
	})
	t.Run("request", func(t *testing.T) {
		e, m := newEngine(t)
		s := spec("hello", wasm)
		s.Limits.MemoryBytes = 3 << 20
		f := load(t, e, s)
		for i := 1; i <= 2; i++ {
			resp, err := invoke(t, f, get("/hello"))
			se := wantError(t, resp, err, http.StatusInternalServerError, telemetry.ReasonOOM)
			if !strings.Contains(se.Msg, "ran out of memory while starting") {
				t.Fatalf("message %q", se.Msg)
			}
			wantMetric(t, "traps", traps(m, "hello"), float64(i))
			wantMetric(t, "memory rejections", rejections(m, "hello", telemetry.LimitMemory), float64(i))
			if st := f.Stats(); st != (sandbox.Stats{}) {
				t.Fatalf("stats %+v after a failed start", st)
			}
		}
	})
}

// TestFaultCanceledBeforeStart checks that a request whose client is already gone does
// not run, and so costs no instance.
func TestFaultCanceledBeforeStart(t *testing.T) {
	tests := []struct {
		name string
		wasm func(*testing.T) []byte
	}{
		{"reactor", func(t *testing.T) []byte { return reactor(t, guestHello) }},
		{"command", func(t *testing.T) []byte { return command(t, guestCGI) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, m := newEngine(t)
			s := spec("fn", tt.wasm(t))
			s.Scaling.MinWarm = 1
			f := load(t, e, s)
			before := f.Stats()
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			resp, err := f.Invoke(ctx, get("/"))
			wantError(t, resp, err, 499, telemetry.ReasonCanceled)
			wantMetric(t, "canceled discards", discards(m, "fn", telemetry.ReasonCanceled), 0)
			wantStats(t, f, before)
			wantOK(t, f, get("/"), "")
		})
	}
}

// TestFaultSleepPastDeadline checks that a guest asleep in the host is stopped at its
// deadline.
func TestFaultSleepPastDeadline(t *testing.T) {
	e, m := newEngine(t)
	s := spec("slow", reactor(t, guestSlow))
	s.Limits.Timeout = shortTimeout
	f := load(t, e, s)
	resp, err := invoke(t, f, get("/slow?d=1h"))
	wantError(t, resp, err, http.StatusGatewayTimeout, telemetry.ReasonTimeout)
	wantMetric(t, "timeout discards", discards(m, "slow", telemetry.ReasonTimeout), 1)
	wantStats(t, f, sandbox.Stats{})
	wantOK(t, f, get("/slow"), "ok")
}

// TestCloseDuringCall closes a function whose drain times out while a guest is running:
// Close must return, the guest must finish on memory that stays mapped and a runtime
// that stays open until its request has ended (memory_linux.go, Function.Close), and the
// engine's Close must then find nothing running. A mistake here is not a failed
// assertion but a crashed test binary, or a report from go test -race.
func TestCloseDuringCall(t *testing.T) {
	e, _ := newEngine(t)
	s := spec("slow", reactor(t, guestSlow))
	f, err := e.Load(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := f.Invoke(context.Background(), get("/slow?d=300ms"))
		done <- err
	}()
	wantStats(t, f, sandbox.Stats{Busy: 1, Total: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := f.Close(ctx); err == nil {
		t.Fatal("Close returned no drain error with a request in flight")
	}
	select {
	case <-done: // any outcome but a crash: the runtime under it was closed
	case <-time.After(10 * time.Second):
		t.Fatal("request under a closed function did not return")
	}
	// The engine still serves other functions.
	wantOK(t, load(t, e, spec("hello", reactor(t, guestHello))), get("/"), "Hello from Fermion!\n")
}

// TestWatchAcrossCalls: the watch timer stays armed across short calls (startWatch), so
// a call that loops right after others on the same instance, or on a fresh one after
// an interrupt disarmed the timer, must still be stopped at its deadline; the short
// calls in between must not be interrupted by a firing meant for an earlier call.
func TestWatchAcrossCalls(t *testing.T) {
	e, m := newEngine(t)
	s := spec("loop", reactor(t, guestLoop))
	s.Limits.Timeout = 200 * time.Millisecond
	f := load(t, e, s)
	const rounds = 3
	for i := range rounds {
		for range 20 { // the same warm instance (LIFO), its timer left armed by each
			wantOK(t, f, get("/loop"), "ok")
		}
		resp, err := invoke(t, f, get("/loop?loop=1"))
		wantError(t, resp, err, http.StatusGatewayTimeout, telemetry.ReasonTimeout)
		wantMetric(t, fmt.Sprintf("timeout discards after round %d", i+1), discards(m, "loop", telemetry.ReasonTimeout), float64(i+1))
	}
	wantOK(t, f, get("/loop"), "ok")
}
