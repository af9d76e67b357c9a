package telemetry

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// collector is an OTLP/HTTP endpoint that can be down (503), and records what it took.
type collector struct {
	srv    *httptest.Server
	status atomic.Int32 // answered while down; 0: up
	refuse atomic.Value // a body answered 400 even while up (string)
	mu     sync.Mutex
	got    []received
}

type received struct {
	body                  string
	contentType, encoding string
	auth                  string
}

func newCollector(t *testing.T) *collector {
	c := &collector{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if s := c.status.Load(); s != 0 {
			w.WriteHeader(int(s))
			return
		}
		if refuse, _ := c.refuse.Load().(string); refuse != "" && refuse == string(b) {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.got = append(c.got, received{body: string(b), contentType: r.Header.Get("Content-Type"),
			encoding: r.Header.Get("Content-Encoding"), auth: r.Header.Get("Authorization")})
		c.mu.Unlock()
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *collector) bodies() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, r := range c.got {
		out = append(out, r.body)
	}
	return out
}

func newTestSpool(t *testing.T, dir string, max int64) *Spool {
	t.Helper()
	s, err := NewSpool(SpoolConfig{Dir: dir, MaxBytes: max, Retry: 20 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// export sends one payload through the spool as the OTLP exporter does.
func export(t *testing.T, s *Spool, url, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/v1/traces", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := (&http.Client{Transport: s}).Do(req)
	if err != nil {
		t.Fatalf("export %q: %v", body, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*"+spoolSuffix))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestSpoolPassesThroughWhileTheCollectorAnswers(t *testing.T) {
	c := newCollector(t)
	dir := t.TempDir()
	s := newTestSpool(t, dir, 1<<20)
	if resp := export(t, s, c.srv.URL, "one"); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := c.bodies(); len(got) != 1 || got[0] != "one" {
		t.Fatalf("collector got %q", got)
	}
	if n := len(spoolFiles(t, dir)); n != 0 {
		t.Fatalf("%d files spooled while the collector answered", n)
	}
	if v := testutil.ToFloat64(s.exports.WithLabelValues(ExportSent)); v != 1 {
		t.Fatalf("sent = %v", v)
	}
	// A refusal that retrying cannot fix goes back to the exporter, not to disk.
	c.status.Store(http.StatusBadRequest)
	if resp := export(t, s, c.srv.URL, "bad"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d for a refused export, want 400 passed through", resp.StatusCode)
	}
	if v := testutil.ToFloat64(s.exports.WithLabelValues(ExportRejected)); v != 1 || len(spoolFiles(t, dir)) != 0 {
		t.Fatalf("rejected = %v, %d files", v, len(spoolFiles(t, dir)))
	}
}

// F5: the collector goes away, exports wait on disk (counted in the backlog gauge), and
// once it answers again they are sent in order, with their own content type and
// encoding and the live export's other headers.
func TestSpoolKeepsExportsThroughAnOutage(t *testing.T) {
	for _, outage := range []struct {
		name string
		down func(c *collector)
	}{
		{"503", func(c *collector) { c.status.Store(http.StatusServiceUnavailable) }},
		{"429", func(c *collector) { c.status.Store(http.StatusTooManyRequests) }},
	} {
		t.Run(outage.name, func(t *testing.T) {
			c := newCollector(t)
			dir := t.TempDir()
			s := newTestSpool(t, dir, 1<<20)
			export(t, s, c.srv.URL, "before")
			outage.down(c)
			for i := range 3 {
				if resp := export(t, s, c.srv.URL, fmt.Sprintf("during-%d", i)); resp.StatusCode != 200 {
					t.Fatalf("spooled export answered %d, want 200 so the exporter neither retries nor drops it", resp.StatusCode)
				}
			}
			if n := len(spoolFiles(t, dir)); n != 3 {
				t.Fatalf("%d files spooled, want 3", n)
			}
			if v := testutil.ToFloat64(s.backlogPayloads); v != 3 {
				t.Fatalf("backlog payloads = %v, want 3", v)
			}
			if v := testutil.ToFloat64(s.backlogBytes); v <= 0 {
				t.Fatalf("backlog bytes = %v", v)
			}
			time.Sleep(100 * time.Millisecond) // replays keep failing while it is down
			if n := len(spoolFiles(t, dir)); n != 3 {
				t.Fatalf("%d files left while the collector is still down, want 3", n)
			}
			c.status.Store(0)
			export(t, s, c.srv.URL, "after")
			waitUntil(t, "the backlog to drain", func() bool { return len(c.bodies()) == 5 })
			// The live "after" and the replay race (the replay's retry tick may come
			// first); the replayed exports among themselves go oldest first.
			got := c.bodies()
			var replayed []string
			for _, b := range got {
				if strings.HasPrefix(b, "during-") {
					replayed = append(replayed, b)
				}
			}
			if got[0] != "before" || strings.Join(replayed, ",") != "during-0,during-1,during-2" {
				t.Fatalf("collector got %q, want before, then the spooled exports oldest first", got)
			}
			c.mu.Lock()
			for _, r := range c.got {
				if r.contentType != "application/x-protobuf" || r.encoding != "gzip" || r.auth != "Bearer s3cret" {
					t.Errorf("%s arrived with type %q, encoding %q, auth %q", r.body, r.contentType, r.encoding, r.auth)
				}
			}
			c.mu.Unlock()
			waitUntil(t, "the backlog gauge to reach 0", func() bool {
				return testutil.ToFloat64(s.backlogBytes) == 0
			})
			if n := len(spoolFiles(t, dir)); n != 0 {
				t.Fatalf("%d files left after the replay", n)
			}
			if v := testutil.ToFloat64(s.exports.WithLabelValues(ExportReplayed)); v != 3 {
				t.Fatalf("replayed = %v, want 3", v)
			}
		})
	}
}

func TestSpoolNeverWritesOtherHeadersToDisk(t *testing.T) {
	c := newCollector(t)
	c.status.Store(http.StatusServiceUnavailable)
	dir := t.TempDir()
	s := newTestSpool(t, dir, 1<<20)
	export(t, s, c.srv.URL, "payload")
	files := spoolFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("%d files", len(files))
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("s3cret")) {
		t.Fatalf("the spool file holds the authorization header:\n%s", b)
	}
	if st, err := os.Stat(files[0]); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("spool file mode %v (%v), want 0600", st.Mode(), err)
	}
}

// Unreachable (nothing listening) counts as down too, and the spool is bounded: past
// its cap the oldest exports go, counted.
func TestSpoolCapDropsTheOldest(t *testing.T) {
	c := newCollector(t)
	url := c.srv.URL
	c.srv.Close() // connection refused
	dir := t.TempDir()
	one := int64(len(spoolMagic) + len("application/x-protobuf\ngzip\n") + len("payload-0"))
	s := newTestSpool(t, dir, 3*one)
	for i := range 5 {
		if resp := export(t, s, url, fmt.Sprintf("payload-%d", i)); resp.StatusCode != 200 {
			t.Fatalf("export %d answered %d", i, resp.StatusCode)
		}
	}
	files := spoolFiles(t, dir)
	if len(files) != 3 {
		t.Fatalf("%d files, want 3 under a cap of three payloads", len(files))
	}
	for i, f := range files {
		b, _ := os.ReadFile(f)
		if want := fmt.Sprintf("payload-%d", i+2); !bytes.HasSuffix(b, []byte(want)) {
			t.Fatalf("file %d ends %q, want the newest three kept", i, b)
		}
	}
	if v := testutil.ToFloat64(s.dropped.WithLabelValues(DropFull)); v != 2 {
		t.Fatalf("dropped full = %v, want 2", v)
	}
	if v := testutil.ToFloat64(s.backlogBytes); v != float64(3*one) {
		t.Fatalf("backlog bytes = %v, want %d", v, 3*one)
	}
	// One export larger than the whole spool is refused, and the exporter hears of it.
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/traces", strings.NewReader(strings.Repeat("x", int(4*one))))
	if _, err := (&http.Client{Transport: s}).Do(req); err == nil {
		t.Fatal("an export larger than the spool was accepted")
	}
}

// What the spool holds survives a restart and is sent once the collector answers; a
// damaged file and an export the collector refuses for good are dropped, counted.
func TestSpoolSurvivesARestart(t *testing.T) {
	c := newCollector(t)
	c.status.Store(http.StatusServiceUnavailable)
	dir := t.TempDir()
	s, _ := NewSpool(SpoolConfig{Dir: dir, Retry: time.Hour}, nil)
	export(t, s, c.srv.URL, "kept-0")
	export(t, s, c.srv.URL, "kept-1")
	s.Close()
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000000-000000"+spoolSuffix), []byte("not a spool file"), 0o600); err != nil {
		t.Fatal(err)
	}

	s2 := newTestSpool(t, dir, 1<<20)
	if v := testutil.ToFloat64(s2.backlogPayloads); v != 3 {
		t.Fatalf("backlog after restart = %v payloads, want 3", v)
	}
	c.status.Store(0)
	export(t, s2, c.srv.URL, "live")
	waitUntil(t, "the backlog to drain", func() bool { return len(spoolFiles(t, dir)) == 0 })
	if got := strings.Join(c.bodies(), ","); got != "live,kept-0,kept-1" {
		t.Fatalf("collector got %s", got)
	}
	if v := testutil.ToFloat64(s2.dropped.WithLabelValues(DropUnreadable)); v != 1 {
		t.Fatalf("dropped unreadable = %v, want 1", v)
	}
}

func TestSpoolDropsAReplayTheCollectorRefuses(t *testing.T) {
	c := newCollector(t)
	c.status.Store(http.StatusServiceUnavailable)
	dir := t.TempDir()
	s := newTestSpool(t, dir, 1<<20)
	export(t, s, c.srv.URL, "spooled")
	// The collector is back, but this payload is one it will never take.
	c.refuse.Store("spooled")
	c.status.Store(0)
	export(t, s, c.srv.URL, "live")
	waitUntil(t, "the refused replay to be dropped", func() bool { return len(spoolFiles(t, dir)) == 0 })
	if v := testutil.ToFloat64(s.dropped.WithLabelValues(DropRejected)); v != 1 {
		t.Fatalf("dropped rejected = %v, want 1", v)
	}
}

func TestNewSpoolRefusesNoDirectory(t *testing.T) {
	if _, err := NewSpool(SpoolConfig{}, nil); err == nil {
		t.Fatal("NewSpool without a directory succeeded")
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := NewSpool(SpoolConfig{Dir: file}, nil); err == nil {
		t.Fatal("NewSpool on a file succeeded")
	}
}

func TestSpoolTransportFromEnvironment(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", filepath.Join(t.TempDir(), "missing.pem"))
	if _, err := NewSpool(SpoolConfig{Dir: t.TempDir()}, nil); err == nil || !strings.Contains(err.Error(), "CA certificate") {
		t.Fatalf("NewSpool with a missing CA file = %v, want an error naming it", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(bad, []byte("not pem"), 0o600)
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", bad)
	if _, err := NewSpool(SpoolConfig{Dir: t.TempDir()}, nil); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("NewSpool with a CA file holding no PEM = %v", err)
	}
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "")
	t.Setenv("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", bad)
	if _, err := NewSpool(SpoolConfig{Dir: t.TempDir()}, nil); err == nil || !strings.Contains(err.Error(), "CLIENT_KEY") {
		t.Fatalf("NewSpool with a client certificate and no key = %v", err)
	}
	t.Setenv("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "250")
	if got := otlpTimeout(); got != 250*time.Millisecond {
		t.Fatalf("timeout %v, want 250ms", got)
	}
}

func FuzzParseSpooled(f *testing.F) {
	f.Add([]byte(spoolMagic + "application/x-protobuf\ngzip\nbody"))
	f.Add([]byte(spoolMagic + "application/json\n\n{}"))
	f.Add([]byte(spoolMagic + "\n\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ct, enc, body, ok := parseSpooled(b)
		if !ok {
			return
		}
		if ct == "" || strings.ContainsAny(ct, "\n") || strings.ContainsAny(enc, "\n") {
			t.Fatalf("parsed type %q encoding %q", ct, enc)
		}
		// What add writes for these parts parses back to them.
		again := []byte(spoolMagic + ct + "\n" + enc + "\n" + string(body))
		ct2, enc2, body2, ok := parseSpooled(again)
		if !ok || ct2 != ct || enc2 != enc || !bytes.Equal(body2, body) {
			t.Fatalf("round trip changed the parts")
		}
	})
}

// A spooled file removed from under the spool (by hand, say) is counted and skipped.
func TestSpoolSkipsAVanishedFile(t *testing.T) {
	c := newCollector(t)
	c.status.Store(http.StatusServiceUnavailable)
	dir := t.TempDir()
	s := newTestSpool(t, dir, 1<<20)
	export(t, s, c.srv.URL, "vanished")
	export(t, s, c.srv.URL, "kept")
	files := spoolFiles(t, dir)
	if len(files) != 2 {
		t.Fatalf("%d files", len(files))
	}
	os.Remove(files[0])
	c.status.Store(0)
	export(t, s, c.srv.URL, "live")
	waitUntil(t, "the backlog to drain", func() bool { return testutil.ToFloat64(s.backlogPayloads) == 0 })
	if got := strings.Join(c.bodies(), ","); got != "live,kept" {
		t.Fatalf("collector got %s", got)
	}
	if v := testutil.ToFloat64(s.dropped.WithLabelValues(DropUnreadable)); v != 1 {
		t.Fatalf("dropped unreadable = %v, want 1", v)
	}
}
