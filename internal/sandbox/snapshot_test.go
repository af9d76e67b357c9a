package sandbox_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/api/abi"
	"fermion.dev/fermion/internal/fermiontest"
	"fermion.dev/fermion/internal/manifest"
	"fermion.dev/fermion/internal/sandbox"
	"fermion.dev/fermion/internal/telemetry"
)

// snapEngine returns an engine with snapshots on or off.
func snapEngine(t *testing.T, on bool) (*sandbox.Engine, *telemetry.Metrics, *fermiontest.SyncBuffer) {
	t.Helper()
	m := telemetry.NewMetrics("test")
	logs := &fermiontest.SyncBuffer{}
	e, err := sandbox.NewEngine(sandbox.EngineConfig{CacheDir: cacheDir, CompileWorkers: 2, Metrics: m, NoSnapshots: !on,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e, m, logs
}

// answer is a response with what differs between two runs of the same request removed.
type answer struct {
	Status int
	Header sandbox.Header
	Body   string
}

// TestSnapshotSameResponses serves the examples' requests from restored instances and
// from instances that ran _initialize, each request on a new instance, and compares.
func TestSnapshotSameResponses(t *testing.T) {
	type call struct {
		method, uri, body string
		header            http.Header
	}
	examples := []struct {
		dir   string
		env   map[string]string
		calls []call
		clean func(t *testing.T, body string) string // drops what changes from run to run
	}{
		{dir: guestHello, env: map[string]string{"GREETING": "Hej"}, calls: []call{{method: "GET", uri: "/hello"}, {method: "POST", uri: "/x?y=1", body: "abc"}}},
		{dir: guestEcho, calls: []call{
			{method: "GET", uri: "/echo/a%20b?x=1&x=2", header: http.Header{"X-Demo": {"yes"}, "Cookie": {"s=1"}}},
			{method: "PUT", uri: "/echo", body: strings.Repeat("body ", 5000), header: http.Header{"Content-Type": {"text/plain"}}},
		}},
		{dir: guestEnrich, env: map[string]string{"FERMION_REGION": "eu-test", "FERMION_NODE": "n1"}, calls: []call{
			{method: "POST", uri: "/enrich", body: `{"customer_id":"c-42","msg":"login"}`},
			{method: "POST", uri: "/enrich", body: `not json`},
			{method: "GET", uri: "/enrich"},
		}, clean: func(t *testing.T, body string) string {
			var m map[string]any
			if json.Unmarshal([]byte(body), &m) != nil {
				return body
			}
			if _, ok := m["received_at"].(string); !ok && m["error"] == nil {
				t.Errorf("no received_at in %s", body)
			}
			delete(m, "received_at")
			b, _ := json.Marshal(m)
			return string(b)
		}},
	}
	for _, ex := range examples {
		t.Run(ex.dir, func(t *testing.T) {
			wasm := reactor(t, ex.dir)
			var got [2][]answer
			for i, on := range []bool{false, true} {
				e, _, _ := snapEngine(t, on)
				s := spec("ex", wasm)
				s.Capabilities.Env = ex.env
				s.Scaling.MaxRequestsPerInstance = 1 // every request on a new instance
				f := load(t, e, s)
				if info := f.Snapshot(); info.Used != on {
					t.Fatalf("snapshots %v: Snapshot() = %+v", on, info)
				}
				for _, c := range ex.calls {
					h := c.header
					if h == nil {
						h = http.Header{}
					}
					resp, err := f.Invoke(context.Background(), &sandbox.Request{ID: "t", Method: c.method, URI: c.uri,
						Host: "fn.example", RemoteAddr: "192.0.2.1:1", Header: h, Body: []byte(c.body)})
					if err != nil {
						t.Fatalf("snapshots %v: %s %s: %v", on, c.method, c.uri, err)
					}
					if !resp.Cold {
						t.Fatalf("snapshots %v: request served by a warm instance", on)
					}
					body := string(resp.Body)
					if ex.clean != nil {
						body = ex.clean(t, body)
					}
					got[i] = append(got[i], answer{resp.Status, resp.Header, body})
				}
			}
			if !reflect.DeepEqual(got[0], got[1]) {
				t.Fatalf("responses differ:\nwithout snapshot %+v\nwith snapshot    %+v", got[0], got[1])
			}
		})
	}
}

// snapshotResults reads fermion_instance_snapshots_total for one result.
func snapshotResults(m *telemetry.Metrics, result string) float64 {
	mfs, err := m.Registry.Gather()
	if err != nil {
		panic(err)
	}
	for _, mf := range mfs {
		for _, s := range mf.GetMetric() {
			if mf.GetName() == "fermion_instance_snapshots_total" && len(s.GetLabel()) == 1 && s.GetLabel()[0].GetValue() == result {
				return s.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestSnapshotRawGuest restores a hand-made guest whose init changes its memory, a
// mutable global and the memory's size, and checks that every new instance sees that
// state and none sees an earlier request's bytes (the hostile "buffer" case: instances
// are restored from the snapshot, never from another instance).
func TestSnapshotRawGuest(t *testing.T) {
	const (
		dumpAt  = 8192 // fermion_buf's buffer
		dumpLen = 8192 // the body: the buffer and what follows it
		marker  = dumpAt + 4096
		global  = marker + 4
	)
	prefix := binary.LittleEndian.AppendUint32(nil, 200)
	prefix = binary.LittleEndian.AppendUint32(prefix, 0)
	prefix = binary.LittleEndian.AppendUint32(prefix, dumpLen)
	at := int32(dumpAt - len(prefix))
	g := rawGuest{
		interruptible: true, // rewritten: the snapshot needs the globals exported
		init: cat(
			i32(marker), i32(0x5eed), []byte{0x36, 0x02, 0x00}, // i32.store marker
			i32(7), []byte{0x24, 0x00}, // global.set 0
			i32(1), opMemoryGrow, opDrop, // one more page
		),
		buf: i32(dumpAt),
		handle: cat(
			i32(global), []byte{0x23, 0x00}, []byte{0x36, 0x02, 0x00}, // store global 0 where the body shows it
			i32(at), i32(int32(len(prefix))+dumpLen), call(fnResponse), i32(abi.HandleOK)),
		data: []rawData{{at, prefix}},
	}
	e, m := newEngine(t)
	s := rawSpec(g)
	s.Scaling.MaxRequestsPerInstance = 1 // every request on a new instance
	f := load(t, e, s)
	info := f.Snapshot()
	if !info.Used || info.Code != sandbox.SnapshotTaken || info.MemoryBytes != 3<<16 || info.Globals != 1 {
		t.Fatalf("Snapshot() = %+v, want used, 3 pages, 1 global", info)
	}
	wantMetric(t, "snapshots taken", snapshotResults(m, sandbox.SnapshotTaken), 1)

	secret := post("/first", []byte("first-caller-body "+strings.Repeat("x", 1500)))
	secret.Header.Set("Authorization", "Bearer s3cr3t-token")
	for i, req := range []*sandbox.Request{secret, get("/next"), get("/third")} {
		resp, err := invoke(t, f, req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if !resp.Cold {
			t.Fatalf("request %d served by a warm instance", i)
		}
		body := resp.Body
		if got := binary.LittleEndian.Uint32(body[marker-dumpAt:]); got != 0x5eed {
			t.Fatalf("request %d: init's memory write not restored: %#x", i, got)
		}
		if got := binary.LittleEndian.Uint32(body[global-dumpAt:]); got != 7 {
			t.Fatalf("request %d: init's global not restored: %d", i, got)
		}
		has := strings.Contains(string(body), "s3cr3t")
		if i == 0 && !has {
			t.Fatal("the guest does not see its own request: the test proves nothing")
		}
		if i > 0 && (has || strings.Contains(string(body), "first-caller-body")) {
			t.Fatalf("request %d on a new instance sees an earlier request's bytes", i)
		}
	}
}

// TestSnapshotFallback: a module that cannot be snapshotted, or whose init fails while
// the snapshot is taken, runs _initialize in every instance, says why, and fails or
// serves exactly as without snapshots.
func TestSnapshotFallback(t *testing.T) {
	tests := []struct {
		name       string
		guest      rawGuest
		timeout    time.Duration
		wantCode   string
		wantReason string
		wantStatus int // 0: served
	}{
		{name: "init traps", guest: rawGuest{interruptible: true, init: opUnreachable},
			wantCode: sandbox.SnapshotInitFailed, wantReason: "guest _initialize failed", wantStatus: 500},
		{name: "init loops", guest: rawGuest{interruptible: true, init: loopsForever}, timeout: shortTimeout,
			wantCode: sandbox.SnapshotInitFailed, wantReason: "did not finish within", wantStatus: 504},
		{name: "init calls the host", guest: rawGuest{interruptible: true, init: cat(i32(rawResp), i32(int32(len(rawOK))), call(fnResponse))}.withResponse(rawOK),
			wantCode: sandbox.SnapshotInitFailed, wantReason: "outside a request", wantStatus: 500},
		{name: "not rewritten", guest: rawGuest{handle: respond(rawOK)}.withResponse(rawOK),
			wantCode: sandbox.SnapshotNotRewritten, wantReason: "could not be rewritten"},
		{name: "table writes", guest: rawGuest{interruptible: true, handle: respond(rawOK),
			tables: [][]byte{{0x70, 0x00, 0x01}},
			init:   cat(i32(0), []byte{0xd0, 0x70, 0x26, 0x00})}.withResponse(rawOK), // table.set 0 at 0: ref.null func
			wantCode: sandbox.SnapshotTableWrites, wantReason: "writes to its tables"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, m, logs := newEngineWithLogs(t)
			s := rawSpec(tt.guest)
			if tt.timeout > 0 {
				s.Limits.Timeout = tt.timeout
			}
			f := load(t, e, s)
			info := f.Snapshot()
			if info.Used || info.Code != tt.wantCode || !strings.Contains(info.Reason, tt.wantReason) {
				t.Fatalf("Snapshot() = %+v, want code %s, reason with %q", info, tt.wantCode, tt.wantReason)
			}
			wantMetric(t, "snapshot results "+tt.wantCode, snapshotResults(m, tt.wantCode), 1)
			if !strings.Contains(logs.String(), `"msg":"instances start without a snapshot"`) || !strings.Contains(logs.String(), tt.wantCode) {
				t.Fatalf("no log line for the fallback:\n%s", logs.String())
			}
			resp, err := invoke(t, f, get("/"))
			if tt.wantStatus == 0 {
				if err != nil || string(resp.Body) != "raw ok" {
					t.Fatalf("got %v, %v; want raw ok", resp, err)
				}
				return
			}
			var se *sandbox.Error
			if !errors.As(err, &se) || se.Status != tt.wantStatus {
				t.Fatalf("got %v, %v; want status %d", resp, err, tt.wantStatus)
			}
		})
	}
}

// TestSnapshotInitReadsClockAndRandom pins the documented semantics: what init read from
// the clock and the random source is fixed per loaded version for instances restored
// from its snapshot (a Go guest's runtime seeds math/rand at start), and reported;
// crypto/rand and the clock during requests stay fresh. Without snapshots, each instance
// has its own.
func TestSnapshotInitReadsClockAndRandom(t *testing.T) {
	wasm := reactor(t, "examples/testdata/faults/initrand")
	parse := func(t *testing.T, body string) map[string]string {
		out := map[string]string{}
		for _, kv := range strings.Fields(body) {
			k, v, _ := strings.Cut(kv, "=")
			out[k] = v
		}
		if len(out) != 4 {
			t.Fatalf("unexpected answer %q", body)
		}
		return out
	}
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("snapshots %v", on), func(t *testing.T) {
			e, _, _ := snapEngine(t, on)
			s := spec("initrand", wasm)
			s.Scaling.MaxRequestsPerInstance = 1
			f := load(t, e, s)
			info := f.Snapshot()
			if info.Used != on {
				t.Fatalf("Snapshot() = %+v", info)
			}
			if on && (info.RandomBytes == 0 || info.ClockReads == 0) {
				t.Fatalf("init's reads not reported: %+v", info)
			}
			var got [2]map[string]string
			for i := range got {
				resp := wantOK(t, f, get("/"), "")
				if !resp.Cold {
					t.Fatal("served by a warm instance")
				}
				got[i] = parse(t, string(resp.Body))
			}
			if got[0]["fresh"] == got[1]["fresh"] {
				t.Fatalf("crypto/rand gave both instances %s", got[0]["fresh"])
			}
			if got[1]["now"] <= got[0]["init_time"] && len(got[1]["now"]) == len(got[0]["init_time"]) {
				t.Fatalf("the clock went back: now %s, init %s", got[1]["now"], got[0]["init_time"])
			}
			same := got[0]["init_rand"] == got[1]["init_rand"] && got[0]["init_time"] == got[1]["init_time"]
			if same != on {
				t.Fatalf("init values shared by two instances: %v, want %v (%v, %v)", same, on, got[0], got[1])
			}
		})
	}
}

// TestSnapshotPlan: what `fermion inspect` says, without running the module, matches
// what a node does.
func TestSnapshotPlan(t *testing.T) {
	tests := []struct {
		name string
		wasm []byte
		want string
	}{
		{"hello", reactor(t, guestHello), sandbox.SnapshotTaken},
		{"raw, rewritten", rawGuest{interruptible: true}.wasm(), sandbox.SnapshotTaken},
		{"raw, not rewritten", rawGuest{}.wasm(), sandbox.SnapshotNotRewritten},
		{"table writes", rawGuest{interruptible: true, tables: [][]byte{{0x70, 0x00, 0x01}},
			init: cat(i32(0), []byte{0xd0, 0x70, 0x26, 0x00})}.wasm(), sandbox.SnapshotTableWrites},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, reason, err := sandbox.SnapshotPlan(tt.wasm, manifest.LoadLimits{})
			if err != nil || code != tt.want || reason == "" {
				t.Fatalf("SnapshotPlan = %q, %q, %v; want %q", code, reason, err, tt.want)
			}
		})
	}
	if _, _, err := sandbox.SnapshotPlan([]byte("not wasm"), manifest.LoadLimits{}); err == nil {
		t.Fatal("SnapshotPlan accepted bytes that are not a module")
	}
}

// TestSnapshotFileGrants: a guest whose init opens a granted file is not snapshotted (the
// file would not be open in a restored instance) and is served as before; one that only
// opens files during requests is snapshotted and still reads its grant.
func TestSnapshotFileGrants(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x"), []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	grant := []manifest.Mount{{Source: dir, Destination: "/data"}}
	tests := []struct {
		name     string
		guest    string
		files    []manifest.Mount
		wantCode string
		want     string
	}{
		{"init opens a granted file", "examples/testdata/faults/initfile", grant, sandbox.SnapshotInitFiles, "init read /data/x: 5 bytes"},
		{"init opens a file not granted", "examples/testdata/faults/initfile", nil, sandbox.SnapshotTaken, "init read /data/x: error:"},
		{"requests open a granted file", guestFile, grant, sandbox.SnapshotTaken, "read /data/x: succeeded (5 bytes)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, m, logs := newEngineWithLogs(t)
			s := spec("files", reactor(t, tt.guest))
			s.Capabilities.Files = tt.files
			s.Scaling.MaxRequestsPerInstance = 1
			f := load(t, e, s)
			if info := f.Snapshot(); info.Code != tt.wantCode {
				t.Fatalf("Snapshot() = %+v, want %s\n%s", info, tt.wantCode, logs.String())
			}
			wantMetric(t, "snapshot result", snapshotResults(m, tt.wantCode), 1)
			for range 2 {
				resp := wantOK(t, f, get("/file"), "")
				if !strings.Contains(string(resp.Body), tt.want) {
					t.Fatalf("body %q does not contain %q", resp.Body, tt.want)
				}
			}
		})
	}
}

// TestSnapshotOffInManifest: component.snapshot = false makes every instance run
// _initialize, and says so.
func TestSnapshotOffInManifest(t *testing.T) {
	e, m := newEngine(t)
	s := rawSpec(rawGuest{interruptible: true, handle: respond(rawOK)}.withResponse(rawOK))
	s.NoSnapshot = true
	f := load(t, e, s)
	if info := f.Snapshot(); info.Used || info.Code != sandbox.SnapshotDisabled || !strings.Contains(info.Reason, "component.snapshot = false") {
		t.Fatalf("Snapshot() = %+v", info)
	}
	wantMetric(t, "snapshots disabled", snapshotResults(m, sandbox.SnapshotDisabled), 1)
	wantOK(t, f, get("/"), "raw ok")
}
