package certs

import (
	"crypto/tls"
	"crypto/x509"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
)

// serial dials a TLS listener that uses r and returns the serial number it presents.
func serial(t *testing.T, r *Reloader, roots *x509.CertPool) int64 {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", r.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

func TestReloaderPicksUpARenewal(t *testing.T) {
	c := fermiontest.NewCA(t)
	dir := t.TempDir()
	roots := x509.NewCertPool()
	roots.AddCert(c.Cert)
	certFile, keyFile := c.Issue(t, dir, 10, time.Now().Add(time.Hour))
	var expiries []time.Time
	r, err := NewReloader(certFile, keyFile, nil, func(na time.Time) { expiries = append(expiries, na) })
	if err != nil {
		t.Fatal(err)
	}
	if got := serial(t, r, roots); got != 10 {
		t.Fatalf("serial %d, want 10", got)
	}

	renewed := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	c.Issue(t, dir, 11, renewed)
	r.mu.Lock()
	r.checked = time.Time{} // as if a second had passed
	r.mu.Unlock()
	if got := serial(t, r, roots); got != 11 {
		t.Fatalf("serial after renewal %d, want 11", got)
	}
	if len(expiries) != 2 || !expiries[1].Equal(renewed) {
		t.Fatalf("expiries reported %v, want the renewal's %v second", expiries, renewed)
	}

	// A renewal caught half-written keeps the previous certificate.
	fermiontest.WriteLater(t, certFile, []byte("-----BEGIN CERTIFICATE-----\ntruncated"))
	r.mu.Lock()
	r.checked = time.Time{}
	r.mu.Unlock()
	if got := serial(t, r, roots); got != 11 {
		t.Fatalf("serial after a bad renewal %d, want 11 still", got)
	}
}

func TestNewReloaderErrors(t *testing.T) {
	c := fermiontest.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := c.Issue(t, dir, 10, time.Now().Add(-time.Minute))
	tests := []struct {
		name, cert, key, want string
	}{
		{"expired", certFile, keyFile, "expired at"},
		{"missing key", certFile, filepath.Join(dir, "nope.key"), "nope.key"},
		{"no key given", certFile, "", "both a certificate and a key"},
		{"not PEM", keyFile, keyFile, "tls: load"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewReloader(tt.cert, tt.key, nil, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestLoadPool(t *testing.T) {
	c := fermiontest.NewCA(t)
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "bad.pem")
	fermiontest.WriteLater(t, good, c.PEM)
	fermiontest.WriteLater(t, bad, []byte("not a certificate"))
	if _, err := LoadPool(good); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPool(bad); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("bad CA file: %v", err)
	}
}
