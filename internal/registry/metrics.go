package registry

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Upload failure reasons, the bounded values of fermion_registry_upload_failures_total.
const (
	failDigest   = "digest_mismatch" // the bytes received do not hash to the digest given
	failRange    = "range"           // a chunk did not continue at the session's offset
	failSize     = "size"            // the blob would exceed MaxBlobBytes
	failBody     = "body"            // the request body could not be read (client went away, truncated)
	failUnknown  = "unknown_session" // no such upload session (finished, cancelled or expired)
	failConflict = "conflict"        // two requests raced on one session
	failStorage  = "storage"         // JetStream refused or did not answer
	failExpired  = "expired"         // the sweep deleted an idle session
	failScan     = "scan"            // a Fermion artifact the registry scanner refused
)

// Read failure reasons, the bounded values of fermion_registry_read_failures_total.
// uploadFailReasons are every reason of fermion_registry_upload_failures_total.
var uploadFailReasons = []string{failDigest, failRange, failSize, failBody, failUnknown, failConflict, failStorage, failExpired, failScan}

const (
	failCorrupt = "corrupt" // a stored blob's bytes no longer match its digest or size
)

// metrics are the registry's collectors.
type metrics struct {
	requests       *prometheus.CounterVec // method, route, code
	bytes          *prometheus.CounterVec // direction
	uploadFailures *prometheus.CounterVec // reason
	readFailures   *prometheus.CounterVec // reason
	bytesIn        prometheus.Counter
	bytesOut       prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fermion_registry_requests_total",
			Help: "Registry API requests by method, route (base, catalog, blobs, uploads, manifests, tags, referrers, unknown) and status code.",
		}, []string{"method", "route", "code"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fermion_registry_bytes_total",
			Help: "Request and response body bytes of the registry API (direction in or out).",
		}, []string{"direction"}),
		uploadFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fermion_registry_upload_failures_total",
			Help: "Blob uploads refused or abandoned, by reason (digest_mismatch, range, size, body, unknown_session, conflict, storage, expired).",
		}, []string{"reason"}),
		readFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fermion_registry_read_failures_total",
			Help: "Blob reads refused or cut short because of the stored data, by reason (corrupt).",
		}, []string{"reason"}),
	}
	m.bytesIn = m.bytes.WithLabelValues("in")
	m.bytesOut = m.bytes.WithLabelValues("out")
	// Exported at 0, so panels show 0 rather than no data and an alert can rate() them
	// from the start.
	for _, r := range uploadFailReasons {
		m.uploadFailures.WithLabelValues(r)
	}
	m.readFailures.WithLabelValues(failCorrupt)
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.bytes, m.uploadFailures, m.readFailures} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("registry: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true,
}

func (m *metrics) request(method, route string, code int) {
	if !knownMethods[method] {
		method = "other"
	}
	m.requests.WithLabelValues(method, route, strconv.Itoa(code)).Inc()
}

func (m *metrics) uploadFailed(reason string) { m.uploadFailures.WithLabelValues(reason).Inc() }

func (m *metrics) readFailed(reason string) { m.readFailures.WithLabelValues(reason).Inc() }

// countingBody counts request body bytes into fermion_registry_bytes_total{direction="in"}.
type countingBody struct {
	io.ReadCloser
	c prometheus.Counter
}

func (b countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.c.Add(float64(n))
	return n, err
}

// errTooLarge is returned by limitReader past its limit.
var errTooLarge = errors.New("body exceeds the size limit")

// limitReader fails with errTooLarge instead of stopping quietly at its limit, so a
// writer never mistakes a cut-off body for a complete one.
type limitReader struct {
	r io.Reader
	n int64 // bytes still allowed
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		// Probe one byte: at the limit with nothing more is fine.
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			return 0, errTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}
