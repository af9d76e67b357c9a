package cli_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
)

// TestServerTLS serves the API over HTTPS, reaches it with and without the CA, and
// renews the certificate under the running server.
func TestServerTLS(t *testing.T) {
	home := t.TempDir()
	t.Setenv("FERMION_HOME", home)
	ca := fermiontest.NewCA(t)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	fermiontest.WriteLater(t, caFile, ca.PEM)
	certFile, keyFile := ca.Issue(t, dir, 10, time.Now().Add(time.Hour))

	if c, _, errOut := run(t, "server", "--tls-cert", certFile); c != 2 || !strings.Contains(errOut, "--tls-cert and --tls-key go together") {
		t.Fatalf("--tls-cert alone: %d %s", c, errOut)
	}

	srv := startVerb(t, "server", "--data", t.TempDir(), "--tls-cert", certFile, "--tls-key", keyFile,
		"--listen", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--registry-listen", "", "--admin-listen", "127.0.0.1:0")
	api := srv.waitLine(t, apiLine, time.Minute)
	if !strings.HasPrefix(api, "https://") {
		t.Fatalf("API %s, want https", api)
	}
	admin := srv.waitLine(t, metricsLine, time.Second)

	if c, out, errOut := run(t, "nodes", "--ca-file", caFile); c != 0 {
		t.Fatalf("nodes over https: %d %s %s", c, out, errOut)
	}
	t.Setenv("FERMION_CA_FILE", caFile)
	if c, out, errOut := run(t, "nodes"); c != 0 {
		t.Fatalf("nodes with FERMION_CA_FILE: %d %s %s", c, out, errOut)
	}
	t.Setenv("FERMION_CA_FILE", "")
	if c, _, errOut := run(t, "nodes"); c == 0 || !strings.Contains(errOut, "pass the CA with --ca-file or FERMION_CA_FILE") {
		t.Fatalf("nodes without the CA: %d %s", c, errOut)
	}
	// The certificate names 127.0.0.1 only.
	other := strings.Replace(api, "127.0.0.1", "localhost", 1)
	if c, _, errOut := run(t, "nodes", "--ca-file", caFile, "--server", other); c == 0 || !strings.Contains(errOut, "the certificate does not name the host") {
		t.Fatalf("nodes at a name the certificate lacks: %d %s", c, errOut)
	}

	// Renewal: new connections get the new certificate, and the expiry metric follows.
	renewed := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	ca.Issue(t, dir, 11, renewed)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	addr := strings.TrimPrefix(api, "https://")
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots})
		if err != nil {
			return err
		}
		defer conn.Close()
		if n := conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); n != 11 {
			return fmt.Errorf("serving serial %d, want the renewal's 11", n)
		}
		return nil
	})
	want := fmt.Sprintf(`fermion_tls_certificate_expiry_timestamp_seconds{listener="api"} %g`, float64(renewed.Unix()))
	if _, body, err := httpGet(admin + "/metrics"); err != nil || !strings.Contains(body, want) {
		t.Fatalf("metrics lack %q (%v)", want, err)
	}
	if c, out, errOut := run(t, "nodes", "--ca-file", caFile); c != 0 {
		t.Fatalf("nodes after the renewal: %d %s %s", c, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(home, "context.json")); err != nil {
		t.Fatalf("no saved context: %v", err)
	}
}
