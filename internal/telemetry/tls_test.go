package telemetry

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"fermion.dev/fermion/internal/certs"
	"fermion.dev/fermion/internal/fermiontest"
)

// TestTLSMetricsAndWarnings: every result has a series from the start, each handshake
// counts, and a burst of rejections logs one warning.
func TestTLSMetricsAndWarnings(t *testing.T) {
	ca := fermiontest.NewCA(t)
	notAfter := time.Now().Add(time.Hour).Truncate(time.Second)
	certFile, keyFile := ca.Issue(t, t.TempDir(), 1, notAfter)
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	tl, err := NewTLS(reg, slog.New(slog.NewJSONHandler(&logs, nil)), "gateway", certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "fermion_tls_handshakes_total"); err != nil || n != len(certs.HandshakeResults) {
		t.Fatalf("%d handshake series before any handshake (%v), want %d", n, err, len(certs.HandshakeResults))
	}
	if got := testutil.ToFloat64(tl.handshakes.WithLabelValues(certs.HandshakeOK)); got != 0 {
		t.Fatalf("ok = %g before any handshake", got)
	}
	tl.handshake(certs.HandshakeOK, nil)
	for range 3 {
		tl.handshake(certs.HandshakeCertificateRejected, errors.New("remote error: tls: bad certificate"))
	}
	tl.handshake(certs.HandshakeClosed, errors.New("EOF"))
	for res, want := range map[string]float64{certs.HandshakeOK: 1, certs.HandshakeCertificateRejected: 3, certs.HandshakeClosed: 1} {
		if got := testutil.ToFloat64(tl.handshakes.WithLabelValues(res)); got != want {
			t.Errorf("%s = %g, want %g", res, got, want)
		}
	}
	if n := strings.Count(logs.String(), "a client rejected the certificate"); n != 1 {
		t.Fatalf("%d warnings for a burst of rejections, want 1:\n%s", n, logs.String())
	}
	expiry, err := testutil.GatherAndCount(reg, "fermion_tls_certificate_expiry_timestamp_seconds")
	if err != nil || expiry != 1 {
		t.Fatalf("expiry series %d (%v)", expiry, err)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "fermion_tls_certificate_expiry_timestamp_seconds" {
			if v := mf.GetMetric()[0].GetGauge().GetValue(); v != float64(notAfter.Unix()) {
				t.Fatalf("expiry %g, want %d", v, notAfter.Unix())
			}
		}
	}

	// Without a registry (telemetry off) it still serves.
	if _, err := NewTLS(nil, nil, "gateway", certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	if _, err := NewTLS(nil, nil, "gateway", keyFile, keyFile); err == nil || !strings.Contains(err.Error(), keyFile) {
		t.Fatalf("a key as the certificate: %v", err)
	}
}
