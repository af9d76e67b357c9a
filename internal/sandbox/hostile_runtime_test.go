package sandbox_test

import (
	"encoding/binary"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

// Where the raw guests of this file keep poll_oneoff's arguments and an outbound
// request (below rawBuf, or far above it, so requests never overwrite them).
const (
	rawNevents = 20
	rawSub     = 512   // one clock subscription, 48 bytes
	rawEvent   = 576   // one event, 32 bytes
	rawOut     = 16384 // an encoded outbound request
)

// sleepFor is a fragment that sleeps d in the host (poll_oneoff on the monotonic
// clock); withSleep must supply the subscription.
var sleepFor = cat(i32(rawSub), i32(rawEvent), i32(1), i32(rawNevents), call(fnPoll), opDrop)

// withSleep stores the clock subscription sleepFor waits on.
func (g rawGuest) withSleep(d time.Duration) rawGuest {
	sub := make([]byte, 48)
	sub[8] = 0                                         // tag: clock
	binary.LittleEndian.PutUint32(sub[16:], 1)         // monotonic
	binary.LittleEndian.PutUint64(sub[24:], uint64(d)) // relative timeout in ns
	g.data = append(g.data, rawData{rawSub, sub})
	return g
}

// writeOnce is a fragment that writes the text of withText to fd once, without a loop:
// an instrumented loop would notice the interrupt, and the point is a guest that
// answers without ever looking.
func writeOnce(fd int32) []byte {
	return cat(i32(fd), i32(rawIovec), i32(1), i32(rawNwritten), call(fnFdWrite), opDrop)
}

// sendOutbound is a fragment that sends the request stored at rawOut and ignores the result.
func sendOutbound(encoded []byte) []byte {
	return cat(i32(rawOut), i32(int32(len(encoded))), call(fnHTTPSend), opDrop)
}

// hungServer is a loopback HTTP server that never answers; its handlers return when
// their client goes away or the test ends.
func hungServer(t *testing.T) (string, manifest.HostPattern) {
	t.Helper()
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) }) // runs first: lets Close return
	allow, err := manifest.ParseHostPattern(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return srv.URL, allow
}

// neighbour runs a well-behaved function on e until stop is called, which returns the
// statuses that were not 200 and the latencies of the requests.
func neighbour(t *testing.T, e *sandbox.Engine) (stop func() (bad []string, lat []time.Duration)) {
	t.Helper()
	f := load(t, e, spec("neighbour", rawGuest{handle: respond(rawOK)}.withResponse(rawOK).wasm()))
	done := make(chan struct{})
	var (
		wg  sync.WaitGroup
		bad []string
		lat []time.Duration
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			t0 := time.Now()
			resp, err := invoke(t, f, get("/"))
			lat = append(lat, time.Since(t0))
			switch {
			case err != nil:
				bad = append(bad, err.Error())
			case resp.Status != http.StatusOK:
				bad = append(bad, fmt.Sprint(resp.Status))
			}
		}
	}()
	return func() ([]string, []time.Duration) {
		close(done)
		wg.Wait()
		return bad, lat
	}
}

// TestDeadlineIsAbsolute: a request past its deadline answers 504 and counts a timeout,
// whatever its guest was doing when the deadline passed (computing, asleep in the host,
// waiting on an outbound call, writing output slowly) and whatever it answered once it came back,
// for both ABIs, instrumented or not; its instance is discarded. A well-behaved function
// on the same engine keeps answering 200 throughout.
func TestDeadlineIsAbsolute(t *testing.T) {
	url, allow := hungServer(t)
	out := abi.AppendRequest(nil, &abi.Request{Method: "GET", URI: url + "/never"})
	cgi := "Content-Type: text/plain\n\nanswered late\n"
	// Each body ends with an answer (a response for a reactor, CGI output for a
	// command) that must never be served: the deadline has passed by then.
	bodies := []struct {
		name string
		body []byte
	}{
		{"computes in a loop", loopsForever},
		{"sleeps in poll_oneoff", sleepFor},
		{"waits on outbound HTTP", sendOutbound(out)},
		{"writes output slowly", cat(writeOnce(1), sleepFor, writeOnce(1), sleepFor, writeOnce(1))},
	}
	e, m := newEngine(t)
	stopNeighbour := neighbour(t, e)
	t.Run("group", func(t *testing.T) {
		n := 0
		for _, b := range bodies {
			for _, kind := range []string{sandbox.ABIReactor, sandbox.ABICommand} {
				for _, interruptible := range []bool{true, false} {
					name := fmt.Sprintf("%s/%s/interruptible=%v", b.name, kind, interruptible)
					n++
					fn := fmt.Sprintf("hostile-%d", n)
					g := rawGuest{interruptible: interruptible, command: kind == sandbox.ABICommand,
						data: []rawData{{rawOut, out}}}.withSleep(time.Hour)
					if g.command {
						g.init = cat(b.body, writeOnce(1))
						g = g.withText(cgi)
					} else {
						g.handle = cat(b.body, respond(rawOK))
						g = g.withText("a line of output\n").withResponse(rawOK)
					}
					t.Run(name, func(t *testing.T) {
						t.Parallel()
						s := spec(fn, g.wasm())
						s.Limits.Timeout = shortTimeout
						s.Capabilities.AllowedOutboundHosts = []manifest.HostPattern{allow}
						f := load(t, e, s)
						if f.ABI() != kind {
							t.Fatalf("abi %s, want %s", f.ABI(), kind)
						}
						t0 := time.Now()
						resp, err := invoke(t, f, get("/"))
						wantError(t, resp, err, http.StatusGatewayTimeout, telemetry.ReasonTimeout)
						if took := time.Since(t0); took < shortTimeout {
							t.Fatalf("timed out after %s, before its %s deadline", took, shortTimeout)
						}
						wantMetric(t, "timeout rejections", rejections(m, fn, telemetry.LimitTimeout), 1)
						if kind == sandbox.ABIReactor {
							wantMetric(t, "timeout discards", discards(m, fn, telemetry.ReasonTimeout), 1)
						}
						wantStats(t, f, sandbox.Stats{})
					})
				}
			}
		}
	})
	bad, lat := stopNeighbour()
	if len(bad) > 0 {
		t.Fatalf("the well-behaved neighbour failed %d of %d requests: %v", len(bad), len(lat), bad[:min(len(bad), 5)])
	}
	if len(lat) == 0 {
		t.Fatal("the neighbour made no request")
	}
	slices.Sort(lat)
	// Generous: the point is that the hostile functions never stall it, not its speed
	// on a shared machine.
	if p99 := lat[len(lat)*99/100]; p99 > 2*time.Second {
		t.Fatalf("neighbour p99 %s over %d requests", p99, len(lat))
	}
}

// TestDeadlineGoGuestOutbound: the SDK's dial guest, waiting on an upstream that never
// answers, would answer 502 with the outbound error once its call is cut short at the
// deadline; the request is timed out instead.
func TestDeadlineGoGuestOutbound(t *testing.T) {
	url, allow := hungServer(t)
	e, m := newEngine(t)
	s := spec("dial", reactor(t, guestDial))
	s.Limits.Timeout = shortTimeout
	s.Capabilities.AllowedOutboundHosts = []manifest.HostPattern{allow}
	f := load(t, e, s)
	resp, err := invoke(t, f, get("/?url="+url+"/never"))
	wantError(t, resp, err, http.StatusGatewayTimeout, telemetry.ReasonTimeout)
	wantMetric(t, "timeout rejections", rejections(m, "dial", telemetry.LimitTimeout), 1)
	wantMetric(t, "timeout discards", discards(m, "dial", telemetry.ReasonTimeout), 1)
	wantStats(t, f, sandbox.Stats{})
}

// TestNoDataCrossesRequests: a guest that reads its request buffer past the request
// must not find an earlier caller's bytes there: not past a smaller request in the same
// buffer, nor in the old buffer once a larger request has made the guest move it.
func TestNoDataCrossesRequests(t *testing.T) {
	const (
		dumpAt  = 8192     // the lowest buffer these guests' fermion_buf returns
		dumpLen = 8192     // bytes from there the guest sends back as its body
		moved   = 4096     // where the "moves" guest puts buffers for requests under 2000 bytes
		opLtU   = 0x49     // i32.lt_u
		opSel   = 0x1b     // select
		small   = 2000 - 1 // the largest request the "moves" guest keeps at dumpAt+moved
	)
	// A response prefix (status 200, no headers, a body of dumpLen bytes) just before
	// the buffer, so the body the guest sends is the buffer and what follows it.
	prefix := binary.LittleEndian.AppendUint32(nil, 200)
	prefix = binary.LittleEndian.AppendUint32(prefix, 0)
	prefix = binary.LittleEndian.AppendUint32(prefix, dumpLen)
	at := int32(dumpAt - len(prefix))
	dump := rawGuest{
		buf:    i32(dumpAt),
		handle: cat(i32(at), i32(int32(len(prefix))+dumpLen), call(fnResponse), i32(abi.HandleOK)),
		data:   []rawData{{at, prefix}},
	}
	moves := dump
	moves.buf = cat(i32(dumpAt+moved), i32(dumpAt), localGet(0), i32(small+1), []byte{opLtU, opSel})

	secrets := []string{"Bearer s3cr3t-token", "session=c00kie-value", "first-caller-body"}
	first := post("/first", []byte("first-caller-body "+strings.Repeat("x", 1500)))
	first.Header.Set("Authorization", "Bearer s3cr3t-token")
	first.Header.Set("Cookie", "session=c00kie-value")
	next := get("/next")
	large := post("/large", []byte(strings.Repeat("y", 3000)))

	tests := []struct {
		name  string
		guest rawGuest
		seq   []*sandbox.Request // the last one must see none of the secrets
	}{
		{"smaller request after", dump, []*sandbox.Request{first, next}},
		{"equal request after", dump, []*sandbox.Request{first, first, next}},
		{"buffer grown in place", dump, []*sandbox.Request{next, first, large, next}},
		{"buffer moved", moves, []*sandbox.Request{first, large}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := newEngine(t)
			s := rawSpec(tt.guest)
			s.Scaling.MaxInstances, s.Limits.MaxConcurrency = 1, 1
			f := load(t, e, s)
			var body string
			for i, req := range tt.seq {
				resp, err := invoke(t, f, req)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				body = string(resp.Body)
				if req == first && !strings.Contains(body, "s3cr3t") {
					t.Fatal("the guest does not see its own request: the test proves nothing")
				}
			}
			for _, sec := range secrets {
				if strings.Contains(body, sec) {
					t.Fatalf("the last request's buffer still holds %q from an earlier request", sec)
				}
			}
			wantStats(t, f, sandbox.Stats{Warm: 1, Total: 1}) // one instance served them all
		})
	}
}

// growAndTouch is a fragment that grows memory 1 MiB at a time until the limit refuses,
// writing to every page as it goes, as a guest's allocator does; local 0 is its cursor.
var growAndTouch = cat(
	[]byte{0x02, 0x40},                                       // block $done
	opLoop,                                                   // loop $grow
	opLoop,                                                   // loop $touch: every page below memory.size
	localGet(0), i32(1), cat([]byte{0x36, 0x02}, uleb(4092)), // i32.store at the page's end, past the guest's data
	localGet(0), i32(4096), []byte{0x6a}, localTee(0), // cursor += 4096
	[]byte{0x3f, 0x00}, i32(65536), []byte{0x6c, 0x49}, brIf(0), // < memory.size × 64 KiB
	opEnd,
	i32(16), opMemoryGrow, i32(-1), []byte{0x46}, brIf(1), // memory.grow 16 == -1: done
	br(0),
	opEnd, opEnd,
)

// rssBytes reads this process's resident set size from /proc/self/status.
func rssBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	t.Skip("no VmRSS in /proc/self/status")
	return 0
}

// TestCommandMemoryReturns: N command runs that each fill a 64 MiB memory add about
// N × 64 MiB to the process's RSS while they run, not several times that, and give it
// back as they end, without waiting for the Go heap's scavenger.
func TestCommandMemoryReturns(t *testing.T) {
	if testing.Short() {
		t.Skip("fills 256 MiB of guest memory")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the mapped allocator is Linux-only")
	}
	const n, limit = 4, 64 << 20
	g := rawGuest{command: true, init: cat(growAndTouch, sleepFor, writeOnce(1))}.
		withSleep(time.Second).withText("Content-Type: text/plain\n\nfilled\n") // long enough for the runs to overlap on a busy machine
	e, _ := newEngine(t)
	s := rawSpec(g)
	s.Limits.MemoryBytes = limit
	s.Limits.MaxConcurrency = n
	f := load(t, e, s)
	wantOK(t, f, get("/"), "filled") // compiled and warm: the baseline holds no first-run costs

	runtime.GC()
	debug.FreeOSMemory()
	base := rssBytes(t)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := invoke(t, f, get("/"))
			if err == nil && resp.Status != http.StatusOK {
				err = fmt.Errorf("status %d", resp.Status)
			}
			errs <- err
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	peak := base
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-time.After(5 * time.Millisecond):
		}
		peak = max(peak, rssBytes(t))
	}
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC() // no FreeOSMemory: the runs' memory must leave by itself
	after := rssBytes(t)
	mib := func(v int64) float64 { return float64(v) / (1 << 20) }
	t.Logf("RSS: base %.1f MiB, peak %+.1f MiB, after %+.1f MiB", mib(base), mib(peak-base), mib(after-base))
	if grew := peak - base; grew < limit {
		t.Fatalf("RSS grew by %.1f MiB at most while %d runs filled %d MiB each: the test proves nothing", mib(grew), n, limit>>20)
	}
	if grew := peak - base; grew > n*limit*11/10 {
		t.Fatalf("RSS grew by %.1f MiB while %d runs filled %d MiB each, more than %d MiB + 10 %%", mib(grew), n, limit>>20, n*limit>>20)
	}
	if kept := after - base; kept > 32<<20 {
		t.Fatalf("RSS still %.1f MiB above its baseline after the runs ended", mib(kept))
	}
}
