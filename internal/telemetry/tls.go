package telemetry

import (
	"crypto/tls"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"fermion.dev/fermion/internal/certs"
)

// TLS serves one listener's certificate from PEM files, picks up renewals (see
// internal/certs), and reports the certificate's expiry and every handshake's outcome:
// the seed's F7, a certificate rotation that failed, shows as clients rejecting the
// certificate.
type TLS struct {
	name       string
	reloader   *certs.Reloader
	logger     *slog.Logger
	handshakes *prometheus.CounterVec

	mu       sync.Mutex // guards lastWarn and suppressed
	lastWarn time.Time
	// suppressed counts rejections not logged since lastWarn.
	suppressed int
}

// tlsWarnEvery bounds the log lines about rejected certificates: during a failed
// rotation every connection fails, and the metric carries the rate.
const tlsWarnEvery = 10 * time.Second

// NewTLS loads certFile and keyFile for the listener called name (a label value:
// "api", "gateway"), registering its metrics on reg if reg is not nil. The error names
// the file and what is wrong with it.
func NewTLS(reg prometheus.Registerer, logger *slog.Logger, name, certFile, keyFile string) (*TLS, error) {
	if logger == nil {
		logger = Discard
	}
	t := &TLS{name: name, logger: logger.With("listener", name)}
	var expiry prometheus.Gauge
	if reg != nil {
		labels := prometheus.Labels{"listener": name}
		expiry = prometheus.NewGauge(prometheus.GaugeOpts{Name: "fermion_tls_certificate_expiry_timestamp_seconds",
			Help:        "When the certificate the listener serves expires (Unix seconds); it rises when a renewed certificate is loaded.",
			ConstLabels: labels})
		t.handshakes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fermion_tls_handshakes_total",
			Help:        "TLS handshakes on the listener by result: ok, certificate_rejected (the client refused the certificate), not_tls, protocol, timeout, closed (the client hung up), other.",
			ConstLabels: labels}, []string{"result"})
		for _, r := range certs.HandshakeResults {
			t.handshakes.WithLabelValues(r)
		}
		for _, c := range []prometheus.Collector{expiry, t.handshakes} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	r, err := certs.NewReloader(certFile, keyFile, t.logger, func(notAfter time.Time) {
		if expiry != nil {
			expiry.Set(float64(notAfter.Unix()))
		}
	})
	if err != nil {
		return nil, err
	}
	t.reloader = r
	return t, nil
}

// Config is a server configuration serving the current certificate, TLS 1.2 and up.
func (t *TLS) Config() *tls.Config { return t.reloader.TLSConfig() }

// Listener serves TLS on ln, completing and counting each handshake before a
// connection is accepted.
func (t *TLS) Listener(ln net.Listener) net.Listener {
	return certs.NewListener(ln, t.Config(), certs.DefaultHandshakeTimeout, t.handshake)
}

func (t *TLS) handshake(result string, err error) {
	if t.handshakes != nil {
		t.handshakes.WithLabelValues(result).Inc()
	}
	switch result {
	case certs.HandshakeOK:
	case certs.HandshakeCertificateRejected:
		t.mu.Lock()
		now := time.Now()
		if now.Sub(t.lastWarn) < tlsWarnEvery {
			t.suppressed++
			t.mu.Unlock()
			return
		}
		n := t.suppressed
		t.lastWarn, t.suppressed = now, 0
		t.mu.Unlock()
		t.logger.Warn("tls: a client rejected the certificate; check that the served certificate is current and issued by a CA clients trust",
			"err", err, "not_logged_since_last", n)
	default:
		t.logger.Debug("tls: handshake failed", "result", result, "err", err)
	}
}
