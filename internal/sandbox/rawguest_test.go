package sandbox_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

// A raw guest is a hand-assembled reactor module: no Go runtime, so it compiles in
// microseconds, and it can break the ABI in ways the SDK never would, as a hostile or
// buggy guest in another language might.
//
// Function indices: imports 0 fermion.response, 1 fermion.http_send, 2 fermion.http_take,
// 3 wasi fd_write, 4 wasi proc_exit, 5 wasi poll_oneoff; then 6 _initialize (or _start),
// 7 fermion_buf, 8 fermion_handle. Each defined function has one i32 local after its parameters (local
// 0 for _initialize, local 1 for the others). Bodies are instruction bytes without the
// final end.
type rawGuest struct {
	init, buf, handle []byte
	pages             uint32 // memory size (and minimum); 2 when 0
	data              []rawData
	// command exports init as _start and nothing else: a WASI command module.
	command bool
	// interruptible adds a global section, which the interrupt rewriter needs
	// (interrupt.go): the guest then runs instrumented rather than under wazero's
	// close-on-cancel checks.
	interruptible bool
	// Extra entries, for hostile modules: imports after the five above (shifting the
	// defined functions' indices by as many), tables, globals and element segments.
	imports, tables, globals, elems [][]byte
	locals                          uint32 // i32 locals of each function; 1 when 0
}

type rawData struct {
	offset int32
	bytes  []byte
}

// Memory layout of the raw guests.
const (
	rawIovec    = 0     // an iovec {rawText, len(text)} for fd_write
	rawNwritten = 16    // fd_write's result
	rawBuf      = 1024  // what a well-behaved fermion_buf returns
	rawResp     = 4096  // an encoded response
	rawText     = 32768 // text for fd_write
)

const (
	fnResponse = 0
	fnHTTPSend = 1
	fnHTTPTake = 2
	fnFdWrite  = 3
	fnProcExit = 4
	fnPoll     = 5
	fnDefined  = 6 // the first defined function
)

// Instructions.
func i32(v int32) []byte    { return append([]byte{0x41}, sleb(int64(v))...) }
func call(fn uint32) []byte { return append([]byte{0x10}, uleb(uint64(fn))...) }
func cat(parts ...[]byte) []byte {
	return bytes.Join(parts, nil)
}

var (
	opDrop        = []byte{0x1a}
	opUnreachable = []byte{0x00}
	opLoop        = []byte{0x03, 0x40}
	opEnd         = []byte{0x0b}
	opI32Sub      = []byte{0x6b}
	opMemoryGrow  = []byte{0x40, 0x00}
	opI32Eqz      = []byte{0x45}
)

func localGet(i byte) []byte { return []byte{0x20, i} }
func localSet(i byte) []byte { return []byte{0x21, i} }
func localTee(i byte) []byte { return []byte{0x22, i} }
func brIf(l byte) []byte     { return []byte{0x0d, l} }
func br(l byte) []byte       { return []byte{0x0c, l} }

// writeText is an _initialize or handler fragment that writes text n times to fd with
// fd_write, using the given local as a counter.
func writeText(fd int32, n int32, local byte) []byte {
	return cat(
		i32(n), localSet(local),
		opLoop,
		i32(fd), i32(rawIovec), i32(1), i32(rawNwritten), call(fnFdWrite), opDrop,
		localGet(local), i32(1), opI32Sub, localTee(local), brIf(0),
		opEnd,
	)
}

// respond is a handler body that sends the response encoded at rawResp and returns 0.
func respond(encoded []byte) []byte {
	return cat(i32(rawResp), i32(int32(len(encoded))), call(fnResponse), i32(abi.HandleOK))
}

func uleb(v uint64) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func sleb(v int64) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func vec(items ...[]byte) []byte { return append(uleb(uint64(len(items))), cat(items...)...) }
func name(s string) []byte       { return append(uleb(uint64(len(s))), s...) }
func section(id byte, payload []byte) []byte {
	return append(append([]byte{id}, uleb(uint64(len(payload)))...), payload...)
}

// wasm assembles the module.
func (g rawGuest) wasm() []byte {
	const i32t = 0x7f
	functype := func(params, results []byte) []byte {
		return cat([]byte{0x60}, uleb(uint64(len(params))), params, uleb(uint64(len(results))), results)
	}
	types := section(1, vec(
		functype(nil, nil),                                     // 0: () -> ()
		functype([]byte{i32t}, []byte{i32t}),                   // 1: (i32) -> i32
		functype([]byte{i32t, i32t}, nil),                      // 2: (i32, i32) -> ()
		functype([]byte{i32t, i32t}, []byte{i32t}),             // 3: (i32, i32) -> i32
		functype([]byte{i32t, i32t, i32t, i32t}, []byte{i32t}), // 4: fd_write
		functype([]byte{i32t}, nil),                            // 5: proc_exit
	))
	imp := func(mod, field string, typ byte) []byte { return cat(name(mod), name(field), []byte{0x00, typ}) }
	imports := section(2, vec(append([][]byte{
		imp(abi.HostModule, abi.HostResponse, 2),
		imp(abi.HostModule, abi.HostHTTPSend, 3),
		imp(abi.HostModule, abi.HostHTTPTake, 2),
		imp("wasi_snapshot_preview1", "fd_write", 4),
		imp("wasi_snapshot_preview1", "proc_exit", 5),
		imp("wasi_snapshot_preview1", "poll_oneoff", 4),
	}, g.imports...)...))
	first := uint32(fnDefined + len(g.imports)) // index of the first defined function
	funcs := section(3, vec([]byte{0}, []byte{1}, []byte{1}))
	var tables, globals, elems []byte
	if len(g.tables) > 0 {
		tables = section(4, vec(g.tables...))
	}
	globalEntries := g.globals
	if g.interruptible {
		globalEntries = append([][]byte{cat([]byte{i32t, 0x01}, i32(0), opEnd)}, globalEntries...) // one mutable i32
	}
	if len(globalEntries) > 0 {
		globals = section(6, vec(globalEntries...))
	}
	if len(g.elems) > 0 {
		elems = section(9, vec(g.elems...))
	}
	pages := g.pages
	if pages == 0 {
		pages = 2
	}
	memory := section(5, vec(cat([]byte{0x00}, uleb(uint64(pages)))))
	exp := func(n string, kind byte, idx uint32) []byte { return cat(name(n), []byte{kind}, uleb(uint64(idx))) }
	exports := section(7, vec(
		exp("memory", 0x02, 0),
		exp(abi.ExportInitialize, 0x00, first),
		exp(abi.ExportBuf, 0x00, first+1),
		exp(abi.ExportHandle, 0x00, first+2),
	))
	if g.command {
		exports = section(7, vec(exp("memory", 0x02, 0), exp(abi.ExportStart, 0x00, first)))
	}
	locals := max(g.locals, 1)
	body := func(instrs []byte) []byte {
		b := cat(vec(cat(uleb(uint64(locals)), []byte{i32t})), instrs, opEnd)
		return append(uleb(uint64(len(b))), b...)
	}
	buf := g.buf
	if buf == nil {
		buf = i32(rawBuf)
	}
	handle := g.handle
	if handle == nil {
		handle = i32(abi.HandleOK)
	}
	code := section(10, vec(body(g.init), body(buf), body(handle)))
	var segs [][]byte
	for _, d := range g.data {
		segs = append(segs, cat([]byte{0x00}, i32(d.offset), opEnd, uleb(uint64(len(d.bytes))), d.bytes))
	}
	data := section(11, vec(segs...))
	return cat([]byte("\x00asm\x01\x00\x00\x00"), types, imports, funcs, tables, memory, globals, exports, elems, code, data)
}

// withText adds text for fd_write at rawText and the iovec pointing at it.
func (g rawGuest) withText(text string) rawGuest {
	iov := binary.LittleEndian.AppendUint32(nil, rawText)
	iov = binary.LittleEndian.AppendUint32(iov, uint32(len(text)))
	g.data = append(g.data, rawData{rawIovec, iov}, rawData{rawText, []byte(text)})
	return g
}

// withResponse stores an encoded response at rawResp.
func (g rawGuest) withResponse(encoded []byte) rawGuest {
	g.data = append(g.data, rawData{rawResp, encoded})
	return g
}

var rawOK = abi.AppendResponse(nil, &abi.Response{Status: 200, Headers: []abi.Header{{Name: "X-Raw", Value: "1"}}, Body: []byte("raw ok")})

// rawSpec is the spec of a raw guest.
func rawSpec(g rawGuest) sandbox.Spec {
	return spec("raw", g.wasm())
}

// shortTimeout is the deadline of tests that wait for a guest to be stopped. A stalled
// machine can make an instance miss it while starting, but that fails the same way (504,
// timeout), so such tests stay deterministic.
const shortTimeout = 300 * time.Millisecond

// loopsForever is a body that never returns.
var loopsForever = cat(opLoop, br(0), opEnd)

func TestRawGuestServes(t *testing.T) {
	e, m := newEngine(t)
	f := load(t, e, rawSpec(rawGuest{handle: respond(rawOK)}.withResponse(rawOK)))
	for i := 0; i < 3; i++ {
		resp := wantOK(t, f, get("/"), "raw ok")
		if resp.Header.Get("X-Raw") != "1" {
			t.Fatalf("header %v", resp.Header)
		}
	}
	wantStats(t, f, sandbox.Stats{Warm: 1, Total: 1})
	wantMetric(t, "traps", traps(m, "raw"), 0)
}

// TestRawGuestABIViolations checks that every way a guest can misuse the ABI ends in a
// clear error, that the instance is discarded when its state is suspect and kept when
// only its answer was refused, and that the function keeps serving.
func TestRawGuestABIViolations(t *testing.T) {
	badStatus := abi.AppendResponse(nil, &abi.Response{Status: 42})
	tests := []struct {
		name       string
		guest      rawGuest
		maxResp    int64
		wantStatus int
		wantReason string
		wantMsg    string // in the error's text
		keep       bool   // the instance stays in the pool
	}{
		{name: "no response", guest: rawGuest{handle: i32(abi.HandleOK)},
			wantStatus: 500, wantReason: telemetry.ReasonTrap, wantMsg: "without a response"},
		{name: "bad input code", guest: rawGuest{handle: i32(abi.HandleBadInput)},
			wantStatus: 500, wantReason: telemetry.ReasonTrap, wantMsg: "code 1"},
		{name: "unknown code", guest: rawGuest{handle: i32(77)},
			wantStatus: 500, wantReason: telemetry.ReasonTrap, wantMsg: "code 77"},
		{name: "panic code", guest: rawGuest{handle: i32(abi.HandlePanic)},
			wantStatus: 500, wantReason: telemetry.ReasonPanic},
		{name: "handler traps", guest: rawGuest{handle: cat(opUnreachable, i32(0))},
			wantStatus: 500, wantReason: telemetry.ReasonTrap, wantMsg: "unreachable"},
		{name: "response out of bounds", guest: rawGuest{handle: cat(i32(-256), i32(1000), call(fnResponse), i32(0))},
			wantStatus: 500, wantReason: telemetry.ReasonTrap, wantMsg: "out of bounds"},
		{name: "malformed response", guest: rawGuest{handle: cat(i32(rawResp), i32(3), call(fnResponse), i32(0))}.withResponse(rawOK),
			wantStatus: 502, wantReason: telemetry.ReasonBadResponse, wantMsg: "malformed response", keep: true},
		{name: "invalid status", guest: rawGuest{handle: respond(badStatus)}.withResponse(badStatus),
			wantStatus: 502, wantReason: telemetry.ReasonBadResponse, wantMsg: "invalid status 42", keep: true},
		{name: "response over the limit", guest: rawGuest{handle: respond(rawOK)}.withResponse(rawOK), maxResp: 2,
			wantStatus: 502, wantReason: telemetry.LimitResponseBody, wantMsg: "2 bytes", keep: true},
		{name: "response over a one-byte limit", guest: rawGuest{handle: respond(rawOK)}.withResponse(rawOK), maxResp: 1,
			wantStatus: 502, wantReason: telemetry.LimitResponseBody, wantMsg: "limit of 1 byte", keep: true},
		{name: "huge response length", guest: rawGuest{handle: cat(i32(0), i32(-1), call(fnResponse), i32(0))},
			wantStatus: 502, wantReason: telemetry.LimitResponseBody, keep: true},
		{name: "null request buffer", guest: rawGuest{buf: i32(0)},
			wantStatus: 500, wantReason: telemetry.ReasonTrap, wantMsg: "invalid request buffer"},
		{name: "request buffer out of bounds", guest: rawGuest{buf: i32(2*65536 - 8)},
			wantStatus: 500, wantReason: telemetry.ReasonTrap, wantMsg: "invalid request buffer"},
		{name: "buffer call traps", guest: rawGuest{buf: cat(opUnreachable, i32(0))},
			wantStatus: 500, wantReason: telemetry.ReasonTrap},
		{name: "take without send", guest: rawGuest{handle: cat(i32(0), i32(5), call(fnHTTPTake), i32(0))},
			wantStatus: 500, wantReason: telemetry.ReasonTrap, wantMsg: "bad buffer"},
		{name: "send out of bounds", guest: rawGuest{handle: cat(i32(-16), i32(64), call(fnHTTPSend), opDrop, i32(0))},
			wantStatus: 500, wantReason: telemetry.ReasonTrap, wantMsg: "out of bounds"},
		{name: "loops forever", guest: rawGuest{handle: cat(loopsForever, i32(0))},
			wantStatus: 504, wantReason: telemetry.ReasonTimeout, wantMsg: "timeout"},
		// Growing memory until the cap, then trapping, is running out of memory.
		{name: "grows to the cap", guest: rawGuest{handle: cat(
			opLoop, i32(1), opMemoryGrow, i32(-1), []byte{0x47}, brIf(0), opEnd, // until memory.grow fails
			opUnreachable, i32(0))},
			wantStatus: 500, wantReason: telemetry.ReasonOOM, wantMsg: "out of memory"},
		// A runtime that reports a failed allocation on stderr, then aborts.
		{name: "reports oom", guest: rawGuest{handle: cat(writeText(2, 1, 1), opUnreachable, i32(0))}.withText("fatal error: out of memory\n"),
			wantStatus: 500, wantReason: telemetry.ReasonOOM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, m := newEngine(t)
			s := rawSpec(tt.guest)
			s.Limits.MemoryBytes = 8 << 20
			if tt.wantReason == telemetry.ReasonTimeout {
				s.Limits.Timeout = shortTimeout
			}
			if tt.maxResp > 0 {
				s.Limits.MaxResponseBody = tt.maxResp
			}
			f := load(t, e, s)
			for i := 1; i <= 2; i++ { // the same fault twice: the function keeps its state straight
				resp, err := invoke(t, f, get("/"))
				se := wantError(t, resp, err, tt.wantStatus, tt.wantReason)
				if !strings.Contains(se.Error(), tt.wantMsg) {
					t.Fatalf("error %q does not contain %q", se.Error(), tt.wantMsg)
				}
				if strings.Contains(se.Error(), " 1 bytes") {
					t.Fatalf("error %q counts 1 in the plural", se.Error())
				}
				if tt.keep {
					wantStats(t, f, sandbox.Stats{Warm: 1, Total: 1})
					wantMetric(t, "traps", traps(m, "raw"), 0)
				} else {
					wantStats(t, f, sandbox.Stats{})
					wantMetric(t, "traps", traps(m, "raw"), float64(i*boolInt(tt.wantStatus == 500)))
					wantMetric(t, tt.wantReason+" discards", discards(m, "raw", tt.wantReason), float64(i))
				}
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestRawGuestOutboundGarbage(t *testing.T) {
	// http_send with bytes that are not an encoded request: the guest gets an error
	// result, not the host's panic, and can still answer.
	e, m := newEngine(t)
	g := rawGuest{handle: cat(i32(rawResp), i32(3), call(fnHTTPSend), opDrop, respond(rawOK))}.withResponse(rawOK)
	f := load(t, e, rawSpec(g))
	wantOK(t, f, get("/"), "raw ok")
	wantMetric(t, "outbound errors", outbound(m, "raw", telemetry.OutboundError), 1)
	wantStats(t, f, sandbox.Stats{Warm: 1, Total: 1})
}

func TestRawGuestInit(t *testing.T) {
	tests := []struct {
		name       string
		guest      rawGuest
		wantLoad   string // Load with min_warm 1 fails with this
		wantStatus int    // then a request with min_warm 0 fails with this
		wantReason string
	}{
		{name: "init traps", guest: rawGuest{init: opUnreachable},
			wantLoad: "guest _initialize failed", wantStatus: 500, wantReason: telemetry.ReasonTrap},
		{name: "init loops", guest: rawGuest{init: loopsForever},
			wantLoad: "did not finish within the 300ms timeout", wantStatus: 504, wantReason: telemetry.ReasonTimeout},
		{name: "init calls response", guest: rawGuest{init: cat(i32(rawResp), i32(int32(len(rawOK))), call(fnResponse))}.withResponse(rawOK),
			wantLoad: "outside a request", wantStatus: 500, wantReason: telemetry.ReasonTrap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, m := newEngine(t)
			s := rawSpec(tt.guest)
			if tt.wantReason == telemetry.ReasonTimeout {
				s.Limits.Timeout = shortTimeout
			}
			s.Scaling.MinWarm = 1
			f, err := e.Load(context.Background(), s)
			if err == nil {
				f.Close(context.Background())
				t.Fatal("Load succeeded")
			}
			if !strings.Contains(err.Error(), tt.wantLoad) {
				t.Fatalf("Load error %q does not contain %q", err, tt.wantLoad)
			}
			s.Scaling.MinWarm = 0
			f = load(t, e, s)
			resp, err := invoke(t, f, get("/"))
			if se := wantError(t, resp, err, tt.wantStatus, tt.wantReason); !se.Cold {
				t.Fatal("the request waited for a new instance that failed to start, but its error is not marked Cold")
			}
			wantStats(t, f, sandbox.Stats{})
			wantMetric(t, "traps", traps(m, "raw"), float64(boolInt(tt.wantStatus == 500)))
		})
	}
}

// TestRawGuestInitFlood checks that output written while starting is bounded like a
// request's.
func TestRawGuestInitFlood(t *testing.T) {
	e, m, logs := newEngineWithLogs(t)
	line := strings.Repeat("x", 1023) + "\n"
	g := rawGuest{init: writeText(1, 8<<10, 0), handle: respond(rawOK)}.withText(line).withResponse(rawOK) // 8 MiB
	s := rawSpec(g)
	s.Scaling.MinWarm = 1
	f := load(t, e, s)
	if n := logs.Len(); n > 1<<20 {
		t.Fatalf("8 MiB of output while starting became %d bytes of logs", n)
	}
	if got := logDropped(m, "raw"); got < 7<<20 {
		t.Fatalf("dropped bytes %v, want most of 8 MiB", got)
	}
	wantOK(t, f, get("/"), "raw ok")
}

// TestRawGuestInitLogLines checks that output written while starting is logged as whole
// lines, as during requests, even when the guest writes a line in pieces.
func TestRawGuestInitLogLines(t *testing.T) {
	e, _, logs := newEngineWithLogs(t)
	g := rawGuest{init: writeText(2, 3, 0), handle: respond(rawOK)}.withText("piece ").withResponse(rawOK)
	s := rawSpec(g)
	s.Scaling.MinWarm = 1
	load(t, e, s)
	if !strings.Contains(logs.String(), `"msg":"piece piece piece "`) {
		t.Fatalf("the guest's line was not logged whole:\n%s", logs.String())
	}
}

// TestRawCommand covers command modules that misbehave in ways the Go examples do not:
// loop forever, flood stdout, exit with a status.
func TestRawCommand(t *testing.T) {
	cgiOK := "Content-Type: text/plain\n\nhi from a raw command"
	tests := []struct {
		name       string
		guest      rawGuest
		wantStatus int
		wantReason string
		wantMsg    string
		wantBody   string // for a 200
	}{
		{name: "answers", guest: rawGuest{init: writeText(1, 1, 0)}.withText(cgiOK), wantStatus: 200, wantBody: "hi from a raw command"},
		{name: "exit 0 after answering", guest: rawGuest{init: cat(writeText(1, 1, 0), i32(0), call(fnProcExit))}.withText(cgiOK),
			wantStatus: 200, wantBody: "hi from a raw command"},
		{name: "exit status", guest: rawGuest{init: cat(i32(3), call(fnProcExit))},
			wantStatus: 500, wantReason: telemetry.ReasonTrap, wantMsg: "exited with status 3"},
		{name: "no output", guest: rawGuest{},
			wantStatus: 502, wantReason: telemetry.ReasonBadResponse, wantMsg: "empty output"},
		{name: "traps", guest: rawGuest{init: opUnreachable},
			wantStatus: 500, wantReason: telemetry.ReasonTrap, wantMsg: "unreachable"},
		{name: "loops forever", guest: rawGuest{init: loopsForever},
			wantStatus: 504, wantReason: telemetry.ReasonTimeout, wantMsg: "timeout"},
		// 4 MiB of output against a 1 KiB limit: the run is stopped once it passes the
		// limit plus the header allowance, not buffered to the end.
		{name: "floods stdout", guest: rawGuest{init: writeText(1, 4<<10, 0)}.withText(strings.Repeat("y", 1024)),
			wantStatus: 502, wantReason: telemetry.LimitResponseBody, wantMsg: "1024 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newEngine(t)
			tt.guest.command = true
			s := rawSpec(tt.guest)
			if tt.wantReason == telemetry.ReasonTimeout {
				s.Limits.Timeout = shortTimeout
			}
			s.Limits.MaxResponseBody = 1024
			s.Limits.MaxConcurrency = 2
			f := load(t, e, s)
			if f.ABI() != sandbox.ABICommand {
				t.Fatalf("abi %s", f.ABI())
			}
			for i := 0; i < 3; i++ { // more runs than slots: nothing leaks
				resp, err := invoke(t, f, get("/"))
				if tt.wantStatus == 200 {
					if err != nil || string(resp.Body) != tt.wantBody {
						t.Fatalf("got %v %v", resp, err)
					}
					continue
				}
				se := wantError(t, resp, err, tt.wantStatus, tt.wantReason)
				if !strings.Contains(se.Error(), tt.wantMsg) {
					t.Fatalf("error %q does not contain %q", se.Error(), tt.wantMsg)
				}
			}
			if st := f.Stats(); st != (sandbox.Stats{}) {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestRawGuestLongLines checks that guest output is logged in lines of at most 4 KiB,
// whether the guest writes one long line at once or in pieces.
func TestRawGuestLongLines(t *testing.T) {
	long := strings.Repeat("z", 10<<10)
	tests := []struct {
		name  string
		text  string
		times int32
	}{
		{"one write without newline", long, 1},
		{"one write with newline", long + "\n", 1},
		{"many small writes", "0123456789", 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _, logs := newEngineWithLogs(t)
			g := rawGuest{handle: cat(writeText(1, tt.times, 1), respond(rawOK))}.withText(tt.text).withResponse(rawOK)
			f := load(t, e, rawSpec(g))
			wantOK(t, f, get("/"), "raw ok")
			var total int
			for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
				var rec struct {
					Msg    string `json:"msg"`
					Source string `json:"source"`
				}
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatal(err)
				}
				if rec.Source != "guest" {
					continue
				}
				if len(rec.Msg) > 4<<10 {
					t.Fatalf("a guest log line of %d bytes", len(rec.Msg))
				}
				total += len(rec.Msg)
			}
			if want := len(strings.TrimSuffix(tt.text, "\n")) * int(tt.times); total != want {
				t.Fatalf("logged %d bytes of guest output, want %d", total, want)
			}
		})
	}
}

// TestRawGuestOutboundHeaders sends an outbound request with headers a guest must not
// control: the host sets Host from the URL it checked and drops hop-by-hop headers.
func TestRawGuestOutboundHeaders(t *testing.T) {
	type seen struct {
		host, ok, te, conn string
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Host, r.Header.Get("X-Ok"), strings.Join(r.TransferEncoding, ","), r.Header.Get("Connection")}
		w.Write([]byte("fine"))
	}))
	t.Cleanup(srv.Close)
	allow, err := manifest.ParseHostPattern(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	out := abi.AppendRequest(nil, &abi.Request{Method: "POST", URI: srv.URL + "/x", Host: "evil.example", Body: []byte("b"),
		Headers: []abi.Header{{Name: "Host", Value: "evil.example"}, {Name: "X-Ok", Value: "1"},
			{Name: "Transfer-Encoding", Value: "chunked"}, {Name: "Connection", Value: "Upgrade"}}})
	const reqAt, resultAt = 8192, 16384
	g := rawGuest{handle: cat(
		i32(reqAt), i32(int32(len(out))), call(fnHTTPSend), localSet(1),
		i32(resultAt), localGet(1), call(fnHTTPTake),
		respond(rawOK),
	), data: []rawData{{reqAt, out}}}.withResponse(rawOK)
	e, m := newEngine(t)
	s := rawSpec(g)
	s.Capabilities.AllowedOutboundHosts = []manifest.HostPattern{allow}
	f := load(t, e, s)
	wantOK(t, f, get("/"), "raw ok")
	wantMetric(t, "outbound ok", outbound(m, "raw", telemetry.OutboundOK), 1)
	h := <-got
	if want := strings.TrimPrefix(srv.URL, "http://"); h.host != want || h.ok != "1" || h.te != "" || h.conn != "" {
		t.Fatalf("upstream saw %+v, want host %s, X-Ok 1 and no hop-by-hop headers", h, want)
	}
}
