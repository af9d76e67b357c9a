package telemetry

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"fermion.dev/fermion/internal/atomicfile"
	"fermion.dev/fermion/internal/certs"
)

// The spool keeps span exports that could not reach the collector on local disk and
// sends them once it answers again: the seed's failure mode F5 (telemetry backend down:
// local buffering, counted drops past a cap, backfill on recovery) and its metric M9
// (telemetry backlog size). It sits under the OTLP/HTTP exporter as its HTTP transport,
// so it keeps the exporter's encoded payloads as they are, whatever their compression.
//
// A payload is spooled when the collector cannot be reached, times out, or answers with
// a status OTLP calls retryable (429, 502, 503, 504); the exporter is then told it was
// delivered, so that it neither retries nor drops it. Other statuses go back to the
// exporter as they are. Headers other than the content type and encoding (such as the
// authorization in OTEL_EXPORTER_OTLP_HEADERS) are never written to disk: a replay
// reuses the URL and headers of the latest live export. Until this process has made one
// (a node restarted with a backlog and no traffic since), the replay loop has the
// exporter send an empty export, through its own configuration, to learn them (see
// SetProbe); an empty export is valid OTLP and stores nothing.

const (
	spoolSuffix = ".otlp"
	spoolMagic  = "fermion-otlp-spool-v1\n"
	// DefaultSpoolMax is the spool's default cap, the seed's M9 target (< 1 GB per node).
	DefaultSpoolMax = 1 << 30
)

// DefaultSpoolDir is the spool under the user's cache directory, for processes without
// a data directory of their own (fermion run).
func DefaultSpoolDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "fermion", "telemetry-spool")
}

// SpoolConfig places and bounds the spool.
type SpoolConfig struct {
	Dir      string // created if missing; payloads from an earlier run are sent too
	MaxBytes int64  // the oldest payloads are dropped past it; 0 means DefaultSpoolMax
	Logger   *slog.Logger
	// Retry is how often the backlog is offered to the collector when it has not
	// answered; 0 means 5 seconds. A live export that succeeds starts a replay at once.
	Retry time.Duration
}

// Spool is an http.RoundTripper for an OTLP/HTTP exporter; see the file comment.
type Spool struct {
	base    http.RoundTripper
	timeout time.Duration
	dir     string
	max     int64
	retry   time.Duration
	logger  *slog.Logger

	mu     sync.Mutex   // guards files, bytes, target, seq, episode, health; leaf
	files  []spoolEntry // oldest first
	bytes  int64
	target *spoolTarget // the latest live export's URL and headers; nil until one
	seq    uint64
	probe  func(context.Context) error
	// episode is the outage being spooled through, from the first payload spooled to
	// the backlog's end; nil while nothing is spooled. It makes the spool log once
	// when it starts spooling and once when the replay has finished, not per payload.
	episode *spoolEpisode
	health  spoolHealth     // health.go
	drops   [3]atomic.Int64 // by dropReasons' index (health.go)

	wake      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	ctx       context.Context // replays; canceled by Close
	cancel    context.CancelFunc

	backlogBytes    prometheus.Gauge
	backlogPayloads prometheus.Gauge
	exports         *prometheus.CounterVec // result
	dropped         *prometheus.CounterVec // reason
}

type spoolEntry struct {
	name string
	size int64
}

// spoolEpisode counts one outage's spooling and replay, for the log line that ends it.
type spoolEpisode struct {
	start       time.Time // the first payload spooled, or the spool opened with a backlog
	replayStart time.Time // the first payload replayed; zero before
	spooled     int       // payloads spooled during the episode
	replayed    int       // payloads the collector took from the spool
	spans       int       // spans in them
	bytes       int64     // their size on disk
	dropped     int       // payloads lost (full, rejected, unreadable)
}

type spoolTarget struct {
	url    string
	header http.Header
}

// Export results and drop reasons, the label values of the spool's metrics.
const (
	ExportSent     = "sent"     // a live export the collector accepted
	ExportSpooled  = "spooled"  // a live export kept on disk for later
	ExportReplayed = "replayed" // a spooled export the collector accepted
	ExportRejected = "rejected" // a live export the collector refused for good

	DropFull       = "full"       // the oldest payload, to stay under the cap
	DropRejected   = "rejected"   // a replay the collector refused for good
	DropUnreadable = "unreadable" // a spool file that could not be read back
)

// NewSpool opens the spool in cfg.Dir, over base (nil: a transport configured from the
// standard OTEL_EXPORTER_OTLP_* TLS variables), and starts its replay loop.
func NewSpool(cfg SpoolConfig, base http.RoundTripper) (*Spool, error) {
	if cfg.Dir == "" {
		return nil, errors.New("telemetry spool: no directory")
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultSpoolMax
	}
	if cfg.Retry <= 0 {
		cfg.Retry = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = Discard
	}
	if base == nil {
		t, err := otlpTransport()
		if err != nil {
			return nil, err
		}
		base = t
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("telemetry spool: %w", err)
	}
	if err := atomicfile.RemoveTemps(cfg.Dir); err != nil {
		return nil, fmt.Errorf("telemetry spool: %w", err)
	}
	s := &Spool{
		base: base, timeout: otlpTimeout(), dir: cfg.Dir, max: cfg.MaxBytes, retry: cfg.Retry, logger: cfg.Logger,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		backlogBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "fermion_telemetry_spool_bytes",
			Help: "Span exports waiting on local disk for the collector (seed M9, telemetry backlog size)."}),
		backlogPayloads: prometheus.NewGauge(prometheus.GaugeOpts{Name: "fermion_telemetry_spool_payloads",
			Help: "Span export payloads waiting on local disk for the collector."}),
		exports: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fermion_telemetry_exports_total",
			Help: "Span export payloads by result: sent, spooled (collector unreachable), replayed (sent from the spool), rejected (refused by the collector)."}, []string{"result"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fermion_telemetry_spool_dropped_total",
			Help: "Spooled span export payloads lost, by reason: full (over the cap), rejected (refused on replay), unreadable."}, []string{"reason"}),
	}
	for _, r := range []string{ExportSent, ExportSpooled, ExportReplayed, ExportRejected} {
		s.exports.WithLabelValues(r)
	}
	for _, r := range []string{DropFull, DropRejected, DropUnreadable} {
		s.dropped.WithLabelValues(r)
	}
	ents, err := os.ReadDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("telemetry spool: %w", err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), spoolSuffix) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		s.files = append(s.files, spoolEntry{name: e.Name(), size: info.Size()})
		s.bytes += info.Size()
	}
	slices.SortFunc(s.files, func(a, b spoolEntry) int { return strings.Compare(a.name, b.name) })
	s.mu.Lock()
	s.trimLocked(0)
	s.updateLocked()
	s.mu.Unlock()
	if len(s.files) > 0 {
		s.episode = &spoolEpisode{start: time.Now()}
		s.logger.Info("telemetry spool holds span exports from an earlier run; they are sent once the collector answers",
			"payloads", len(s.files), "bytes", s.bytes, "dir", cfg.Dir)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	go s.loop()
	return s, nil
}

// SetProbe gives the spool a way to make the exporter send an empty export, which
// teaches it where replays go when there is a backlog and no live export yet. The
// exporter must be started: the replay loop may call probe at once.
func (s *Spool) SetProbe(probe func(context.Context) error) {
	s.mu.Lock()
	s.probe = probe
	s.mu.Unlock()
}

// probeKey marks the context of a probe's export: RoundTrip sends it without spooling
// or counting it.
type probeKey struct{}

// Collectors are the spool's metrics, for the registry that serves /metrics.
func (s *Spool) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.backlogBytes, s.backlogPayloads, s.exports, s.dropped}
}

// Close stops replaying, abandoning a replay in flight. What is still spooled stays on
// disk for the next run.
func (s *Spool) Close() {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.cancel()
	})
	<-s.done
}

// RoundTrip sends an export, spooling it when the collector cannot take it now.
func (s *Spool) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost || req.Body == nil {
		return s.base.RoundTrip(req)
	}
	if req.Context().Value(probeKey{}) != nil {
		return s.probeTrip(req)
	}
	body, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("telemetry spool: read export: %w", err)
	}
	ctx, cancel := context.WithTimeout(req.Context(), s.timeout)
	out := req.Clone(ctx)
	out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	resp, err := s.base.RoundTrip(out)
	if err == nil && !retryableStatus(resp.StatusCode) {
		if resp.StatusCode/100 == 2 {
			s.exports.WithLabelValues(ExportSent).Inc()
			s.live(req)
		} else {
			s.exports.WithLabelValues(ExportRejected).Inc()
		}
		resp.Body = cancelOnClose{resp.Body, cancel} // the exporter reads it after we return
		return resp, nil
	}
	defer cancel()
	var reason string
	if err != nil {
		reason = err.Error()
	} else {
		reason = resp.Status
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		s.noteFailure("collector answered " + reason)
	}
	if err != nil {
		s.noteFailure(reason)
	}
	started, serr := s.add(req.Header, body)
	if serr != nil {
		s.noteFailure(reason + "; not spooled: " + serr.Error())
		// Not on disk either: the exporter reports the collector's failure as usual.
		s.logger.Warn("telemetry spool: cannot keep a span export", "err", serr)
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("telemetry spool: collector answered %s; %w", reason, serr)
	}
	s.exports.WithLabelValues(ExportSpooled).Inc()
	if started {
		s.logger.Warn("telemetry spool: collector unavailable, spooling span exports",
			"err", reason, "dir", s.dir, "max_bytes", s.max)
	}
	s.logger.Debug("span export spooled", "reason", reason, "bytes", len(body))
	return &http.Response{
		Status: "200 OK", StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  http.Header{"Content-Type": {"application/x-protobuf"}},
		Body:    http.NoBody,
		Request: req,
	}, nil
}

// probeTrip sends a probe's empty export. A failure comes back as an error the exporter
// does not retry: the replay loop tries again on its own schedule.
func (s *Spool) probeTrip(req *http.Request) (*http.Response, error) {
	resp, err := s.base.RoundTrip(req)
	if err != nil {
		return nil, errors.New(err.Error())
	}
	if resp.StatusCode/100 != 2 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		return nil, fmt.Errorf("collector answered %s", resp.Status)
	}
	s.live(req)
	return resp, nil
}

// cancelOnClose ends a request's context when its response body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// retryableStatus is OTLP/HTTP's list of statuses worth retrying.
func retryableStatus(code int) bool {
	switch code {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// live records where a successful export went, and wakes the replay when there is a
// backlog: the collector is back.
func (s *Spool) live(req *http.Request) {
	h := req.Header.Clone()
	h.Del("Content-Length")
	s.mu.Lock()
	s.target = &spoolTarget{url: req.URL.String(), header: h}
	s.health.lastOK = time.Now()
	backlog := len(s.files) > 0
	s.mu.Unlock()
	if backlog {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// add writes one payload to the spool, dropping the oldest ones past the cap. started
// says it began an episode: nothing was spooled before it.
func (s *Spool) add(h http.Header, body []byte) (started bool, err error) {
	var b bytes.Buffer
	b.WriteString(spoolMagic)
	b.WriteString(oneLine(h.Get("Content-Type")) + "\n")
	b.WriteString(oneLine(h.Get("Content-Encoding")) + "\n")
	b.Write(body)
	size := int64(b.Len())
	if size > s.max {
		s.drop(DropFull)
		return false, fmt.Errorf("a %d-byte export is larger than the whole spool (%d bytes)", size, s.max)
	}
	s.mu.Lock()
	s.seq++
	name := fmt.Sprintf("%020d-%06d%s", time.Now().UnixNano(), s.seq%1000000, spoolSuffix)
	s.mu.Unlock()
	if err := atomicfile.Write(filepath.Join(s.dir, name), b.Bytes(), 0o600); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.episode == nil {
		s.episode = &spoolEpisode{start: time.Now()}
		started = true
	}
	s.episode.spooled++
	s.trimLocked(size)
	s.files = append(s.files, spoolEntry{name: name, size: size})
	s.bytes += size
	s.updateLocked()
	return started, nil
}

// trimLocked drops the oldest payloads until incoming more bytes fit under the cap.
func (s *Spool) trimLocked(incoming int64) {
	for len(s.files) > 0 && s.bytes+incoming > s.max {
		s.drop(DropFull)
		if s.episode != nil {
			s.episode.dropped++
		}
		s.removeLocked(0)
	}
}

func (s *Spool) removeLocked(i int) {
	e := s.files[i]
	if err := os.Remove(filepath.Join(s.dir, e.name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.logger.Warn("telemetry spool: remove a payload", "err", err)
	}
	s.files = slices.Delete(s.files, i, i+1)
	s.bytes -= e.size
}

func (s *Spool) updateLocked() {
	s.backlogBytes.Set(float64(s.bytes))
	s.backlogPayloads.Set(float64(len(s.files)))
}

func (s *Spool) loop() {
	defer close(s.done)
	t := time.NewTicker(s.retry)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.wake:
		}
		s.replay()
	}
}

// replay sends the spooled payloads oldest first until one fails to go through.
func (s *Spool) replay() {
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		s.mu.Lock()
		if len(s.files) == 0 {
			ep := s.episode
			s.episode = nil
			s.mu.Unlock()
			if ep != nil {
				s.logReplayed(ep)
			}
			return
		}
		e, target, probe := s.files[0], s.target, s.probe
		s.mu.Unlock()
		if target == nil {
			if probe == nil || !s.runProbe(probe) {
				return // wait for a live export, or the collector
			}
			continue
		}
		ok, drop, spans := s.send(e, target)
		if !ok && drop == "" {
			return // the collector is away again: next tick
		}
		s.mu.Lock()
		// Still the oldest unless trimming dropped (and counted) it meanwhile. Counted
		// before its file goes, so whoever sees the file gone sees it counted.
		listed := len(s.files) > 0 && s.files[0].name == e.name
		ep := s.episode
		if ep == nil { // not while a file is listed; kept so that no count is lost
			ep = &spoolEpisode{start: time.Now()}
			s.episode = ep
		}
		switch {
		case ok:
			s.exports.WithLabelValues(ExportReplayed).Inc()
			s.health.lastOK = time.Now()
			if ep.replayStart.IsZero() {
				ep.replayStart = time.Now()
			}
			ep.replayed++
			ep.spans += spans
			ep.bytes += e.size
		case drop != dropGone:
			s.drop(drop)
			ep.dropped++
		case listed: // its file vanished from under the spool
			s.drop(DropUnreadable)
			ep.dropped++
		}
		if listed {
			s.removeLocked(0)
			s.updateLocked()
		}
		s.mu.Unlock()
	}
}

// logReplayed writes the line that ends an episode: the backlog is empty.
func (s *Spool) logReplayed(ep *spoolEpisode) {
	now := time.Now()
	var took time.Duration
	if !ep.replayStart.IsZero() {
		took = now.Sub(ep.replayStart)
	}
	s.logger.Info("telemetry spool: replay finished, the backlog is empty",
		"payloads", ep.replayed, "spans", ep.spans, "bytes", ep.bytes, "dropped", ep.dropped,
		"spooled", ep.spooled, "took_ms", millis(took), "spooled_for_ms", millis(now.Sub(ep.start)))
}

// millis is d in milliseconds at microsecond resolution, as the request line's duration_ms.
func millis(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}

// runProbe has the exporter send an empty export and reports whether it reached the
// collector (and so set the target).
func (s *Spool) runProbe(probe func(context.Context) error) bool {
	ctx, cancel := context.WithTimeout(context.WithValue(s.ctx, probeKey{}, true), s.timeout)
	defer cancel()
	if err := probe(ctx); err != nil {
		s.logger.Debug("telemetry spool: the collector did not take an empty export", "err", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.target != nil
}

// dropGone is send's answer for a payload removed from the spool while it was sent.
const dropGone = "gone"

// send replays one payload. ok: the collector took it, and spans is how many spans it
// held; drop: it never will (the reason), or dropGone; neither: try again later.
func (s *Spool) send(e spoolEntry, target *spoolTarget) (ok bool, drop string, spans int) {
	b, err := os.ReadFile(filepath.Join(s.dir, e.name))
	if errors.Is(err, os.ErrNotExist) {
		return false, dropGone, 0
	}
	if err != nil {
		s.logger.Warn("telemetry spool: read a payload", "err", err)
		return false, DropUnreadable, 0
	}
	contentType, encoding, body, ok := parseSpooled(b)
	if !ok {
		s.logger.Warn("telemetry spool: a payload is damaged; dropped", "file", e.name)
		return false, DropUnreadable, 0
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.url, bytes.NewReader(body))
	if err != nil {
		return false, "", 0
	}
	req.Header = target.header.Clone()
	req.Header.Set("Content-Type", contentType)
	req.Header.Del("Content-Encoding")
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := s.base.RoundTrip(req)
	if err != nil {
		s.noteFailure(err.Error())
		return false, "", 0
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 2:
		return true, "", countSpans(contentType, encoding, body)
	case retryableStatus(resp.StatusCode):
		s.noteFailure("collector answered " + resp.Status)
		return false, "", 0
	default:
		s.logger.Warn("telemetry spool: the collector refused a spooled export; dropped", "status", resp.Status)
		return false, DropRejected, 0
	}
}

// maxSpanCountBytes bounds what countSpans inflates: a spool file is this process's own
// export, but the count is for a log line and never worth a decompression bomb.
const maxSpanCountBytes = 64 << 20

// countSpans is the number of spans in an OTLP/HTTP protobuf export (gzip or not), for
// the replay's log line; 0 for anything else, or what does not decode.
func countSpans(contentType, encoding string, body []byte) int {
	if mt, _, _ := strings.Cut(contentType, ";"); strings.TrimSpace(mt) != "application/x-protobuf" {
		return 0
	}
	switch encoding {
	case "":
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return 0
		}
		raw, err := io.ReadAll(io.LimitReader(zr, maxSpanCountBytes+1))
		if err != nil || len(raw) > maxSpanCountBytes {
			return 0
		}
		body = raw
	default:
		return 0
	}
	var export coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &export); err != nil {
		return 0
	}
	n := 0
	for _, rs := range export.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			n += len(ss.GetSpans())
		}
	}
	return n
}

// parseSpooled splits a spool file into its content type, encoding and body.
func parseSpooled(b []byte) (contentType, encoding string, body []byte, ok bool) {
	rest, found := bytes.CutPrefix(b, []byte(spoolMagic))
	if !found {
		return "", "", nil, false
	}
	ct, rest, found := bytes.Cut(rest, []byte("\n"))
	if !found || len(ct) == 0 {
		return "", "", nil, false
	}
	enc, rest, found := bytes.Cut(rest, []byte("\n"))
	if !found {
		return "", "", nil, false
	}
	return string(ct), string(enc), rest, true
}

// oneLine keeps a header value from breaking the spool file's line structure.
func oneLine(v string) string {
	return strings.NewReplacer("\n", " ", "\r", " ").Replace(v)
}

// otlpTransport is the transport the OTLP/HTTP exporter would build for itself from
// the standard variables: a CA file (…_CERTIFICATE) and a client certificate and key
// (…_CLIENT_CERTIFICATE, …_CLIENT_KEY), the traces-specific forms first. Supplying our
// own transport turns the exporter's off.
func otlpTransport() (*http.Transport, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	ca := otlpEnv("CERTIFICATE")
	cert, key := otlpEnv("CLIENT_CERTIFICATE"), otlpEnv("CLIENT_KEY")
	if ca == "" && cert == "" && key == "" {
		return t, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pool, err := certs.LoadPool(ca)
		if err != nil {
			return nil, fmt.Errorf("OTLP CA certificate (OTEL_EXPORTER_OTLP_CERTIFICATE): %w", err)
		}
		cfg.RootCAs = pool
	}
	if cert != "" || key != "" {
		if cert == "" || key == "" {
			return nil, errors.New("OTLP client certificate: set both OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY")
		}
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("OTLP client certificate (OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE, …_CLIENT_KEY): %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	t.TLSClientConfig = cfg
	return t, nil
}

// otlpTimeout is OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT, in milliseconds, default 10 s: the
// bound on one export, which the exporter applies only to a client it builds itself, so
// the spool applies it to each attempt instead.
func otlpTimeout() time.Duration {
	if ms, err := strconv.Atoi(otlpEnv("TIMEOUT")); err == nil && ms > 0 {
		return time.Duration(ms) * time.Millisecond
	}
	return 10 * time.Second
}

// otlpEnv reads OTEL_EXPORTER_OTLP_TRACES_<name>, or else OTEL_EXPORTER_OTLP_<name>.
func otlpEnv(name string) string {
	if v := os.Getenv("OTEL_EXPORTER_OTLP_TRACES_" + name); v != "" {
		return v
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_" + name)
}
