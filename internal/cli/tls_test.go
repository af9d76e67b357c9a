package cli_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
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
	ca, dir, caFile := newTestCA(t)
	certFile, keyFile := ca.Issue(t, dir, 10, time.Now().Add(time.Hour))

	if c, _, errOut := run(t, "server", "--tls-cert", certFile); c != 2 || !strings.Contains(errOut, "--tls-cert and --tls-key go together") {
		t.Fatalf("--tls-cert alone: %d %s", c, errOut)
	}
	if c, _, errOut := run(t, "server", "--ca-file", caFile); c != 2 || !strings.Contains(errOut, "--ca-file is for the routes' TLS") {
		t.Fatalf("--ca-file without --tls-cert: %d %s", c, errOut)
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
	waitSerial(t, strings.TrimPrefix(api, "https://"), roots, 11)
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

// testRunTLS serves hello and echo (already built into cache) over HTTPS, and checks
// what guests and clients see, the handshake metrics and a renewal.
func testRunTLS(t *testing.T, hello, echo, cache string) {
	ca := fermiontest.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := ca.Issue(t, dir, 20, time.Now().Add(time.Hour))
	if c, _, errOut := run(t, "run", hello, "--tls-key", keyFile, "--no-build"); c != 2 || !strings.Contains(errOut, "--tls-cert and --tls-key go together") {
		t.Fatalf("--tls-key alone: %d %s", c, errOut)
	}
	if c, _, errOut := run(t, "run", hello, "--tls-cert", keyFile, "--tls-key", keyFile, "--no-build", "--cache-dir", cache,
		"--listen", "127.0.0.1:0", "--admin-listen", ""); c != 1 || !strings.Contains(errOut, "gateway TLS") || !strings.Contains(errOut, keyFile) {
		t.Fatalf("a key as the certificate: %d %s", c, errOut)
	}

	s := startRun(t, true, hello, echo, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--cache-dir", cache,
		"--no-build", "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(s.gateway, "https://") {
		t.Fatalf("gateway %s, want https", s.gateway)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	tc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}}
	defer tc.CloseIdleConnections()
	resp, err := tc.Get(s.gateway + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "Hello from Fermion!\n" || resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("GET /hello over https = %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp.ProtoMajor != 2 {
		t.Fatalf("GET /hello over %s, want HTTP/2", resp.Proto)
	}
	// The guest learns the scheme from X-Forwarded-Proto, whatever the client claimed.
	req, _ := http.NewRequest("GET", s.gateway+"/echo/tls", nil)
	req.Header.Set("X-Forwarded-Proto", "http")
	resp, err = tc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var e struct{ Headers map[string][]string }
	err = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /echo over https = %d (%v)", resp.StatusCode, err)
	}
	if got := e.Headers["X-Forwarded-Proto"]; len(got) != 1 || got[0] != "https" {
		t.Fatalf("echo saw X-Forwarded-Proto %v, want [https]", got)
	}
	// A client that does not trust the CA, and one speaking plain HTTP.
	if _, err := client.Get(s.gateway + "/hello"); err == nil {
		t.Fatal("a client without the CA was served")
	}
	if resp, err := client.Get("http://" + strings.TrimPrefix(s.gateway, "https://") + "/hello"); err == nil {
		resp.Body.Close()
	}
	waitMetrics(t, s.admin,
		`fermion_tls_handshakes_total{listener="gateway",result="certificate_rejected"} 1`,
		`fermion_tls_handshakes_total{listener="gateway",result="not_tls"} 1`,
		`fermion_tls_handshakes_total{listener="gateway",result="ok"} 1`,
		`fermion_requests_total{code="2xx",function="hello",version="0.1.0"} 1`,
	)
	fermiontest.WaitFor(t, 10*time.Second, func() error { // the log is written in batches
		if !strings.Contains(s.stderr.String(), "a client rejected the certificate") {
			return fmt.Errorf("no log line about the rejected certificate:\n%s", s.stderr)
		}
		return nil
	})

	renewed := time.Now().Add(72 * time.Hour).Truncate(time.Second)
	ca.Issue(t, dir, 21, renewed)
	waitSerial(t, strings.TrimPrefix(s.gateway, "https://"), roots, 21)
	waitMetrics(t, s.admin, fmt.Sprintf(`fermion_tls_certificate_expiry_timestamp_seconds{listener="gateway"} %g`, float64(renewed.Unix())))
	if code := s.stop(t); code != 0 {
		t.Fatalf("run exited %d\nstderr:\n%s", code, s.stderr)
	}
}

// TestFleetTLS runs a control plane whose API, registry and NATS use one certificate
// from a private CA, and an agent that trusts it and serves its gateway over HTTPS:
// the CLI pushes and deploys over TLS, the agent joins and pulls over TLS.
func TestFleetTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet test")
	}
	home := t.TempDir()
	t.Setenv("FERMION_HOME", home)
	ca, dir, caFile := newTestCA(t)
	certFile, keyFile := ca.Issue(t, dir, 30, time.Now().Add(time.Hour))

	srv := startVerb(t, "server", "--data", t.TempDir(), "--tls-cert", certFile, "--tls-key", keyFile,
		"--listen", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0", "--registry-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	if api := srv.waitLine(t, apiLine, time.Minute); !strings.HasPrefix(api, "https://") {
		t.Fatalf("API %s, want https", api)
	}
	natsURL := srv.waitLine(t, natsLine, time.Second)
	if !strings.HasPrefix(natsURL, "tls://") {
		t.Fatalf("agents are told to connect to %s, want tls://", natsURL)
	}
	admin := srv.waitLine(t, metricsLine, time.Second)
	t.Setenv("FERMION_CA_FILE", caFile)
	c, out, errOut := run(t, "token", "create", "--role", "node")
	if c != 0 {
		t.Fatalf("token create: %d %s %s", c, out, errOut)
	}
	tok := tokenLine.FindStringSubmatch(out)
	if tok == nil {
		t.Fatalf("no token in %q", out)
	}
	t.Setenv("FERMION_CA_FILE", "") // the agent is given its CA by flag
	a := startVerb(t, "agent", "--server", natsURL, "--token", tok[1], "--name", "edge-tls", "--data", t.TempDir(),
		"--ca-file", caFile, "--tls-cert", certFile, "--tls-key", keyFile, "--listen", "127.0.0.1:0", "--admin-listen", "")
	gw := a.waitLine(t, gwLine, time.Minute)
	if !strings.HasPrefix(gw, "https://") {
		t.Fatalf("agent gateway %s, want https", gw)
	}

	// An agent without the CA is told how to trust it (logs are written in batches).
	lost := startVerb(t, "agent", "--server", natsURL, "--token", tok[1], "--name", "edge-no-ca", "--data", t.TempDir(),
		"--listen", "127.0.0.1:0", "--admin-listen", "")
	fermiontest.WaitFor(t, 30*time.Second, func() error {
		if !strings.Contains(lost.errs.String(), "pass that CA with --ca-file or FERMION_CA_FILE") {
			return fmt.Errorf("no hint in the agent's log:\n%s", lost.errs)
		}
		return nil
	})
	lost.cancel()

	t.Setenv("FERMION_CA_FILE", caFile)
	c, out, errOut = run(t, "deploy", filepath.Join(fermiontest.Root(t), "examples", "hello"), "--nodes", "1", "--timeout", "2m")
	if c != 0 || !strings.Contains(out, "converged: 1/1") {
		t.Fatalf("deploy over TLS: %d\n%s\n%s", c, out, errOut)
	}
	// The registry verbs trust the CA from FERMION_CA_FILE or --ca-file, and say so when
	// they lack it.
	pushed := regexp.MustCompile(`(?m)^pushed (\S+)$`).FindStringSubmatch(out)
	if pushed == nil {
		t.Fatalf("no pushed line in %q", out)
	}
	if c, out, errOut := run(t, "inspect", pushed[1]); c != 0 {
		t.Fatalf("inspect with FERMION_CA_FILE: %d %s %s", c, out, errOut)
	}
	t.Setenv("FERMION_CA_FILE", "")
	if c, _, errOut := run(t, "inspect", pushed[1]); c == 0 || !strings.Contains(errOut, "pass the CA with --ca-file or FERMION_CA_FILE") {
		t.Fatalf("inspect without the CA: %d %s", c, errOut)
	}
	if c, out, errOut := run(t, "inspect", pushed[1], "--ca-file", caFile); c != 0 {
		t.Fatalf("inspect --ca-file: %d %s %s", c, out, errOut)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	tc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	defer tc.CloseIdleConnections()
	resp, err := tc.Get(gw + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "Hello from Fermion!\n" {
		t.Fatalf("GET /hello = %d %q", resp.StatusCode, body)
	}
	// The push and the agent's pull went over TLS, each handshake counted.
	_, metrics, err := httpGet(admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, listener := range []string{"api", "registry"} {
		if !regexp.MustCompile(`fermion_tls_handshakes_total\{listener="` + listener + `",result="ok"\} [1-9]`).MatchString(metrics) {
			t.Errorf("no successful %s handshake in the metrics:\n%s", listener, grepLines(metrics, "fermion_tls_"))
		}
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// waitSerial waits until the TLS listener at addr serves the certificate with serial.
func waitSerial(t *testing.T, addr string, roots *x509.CertPool, serial int64) {
	t.Helper()
	fermiontest.WaitFor(t, 10*time.Second, func() error {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots})
		if err != nil {
			return err
		}
		defer conn.Close()
		if n := conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); n != serial {
			return fmt.Errorf("serving serial %d, want %d", n, serial)
		}
		return nil
	})
}

// TestRegistryServeTLS: fermion registry serve over HTTPS, reached by the registry verbs
// with the CA and refused, with what to do, without it.
func TestRegistryServeTLS(t *testing.T) {
	ca, dir, caFile := newTestCA(t)
	certFile, keyFile := ca.Issue(t, dir, 40, time.Now().Add(time.Hour))
	t.Setenv("FERMION_CA_FILE", "")
	host := startRegistryServe(t, "push-secret", "--tls-cert", certFile, "--tls-key", keyFile)
	ref := host + "/acme/none:1.0.0"
	if c, _, errOut := run(t, "inspect", ref); c == 0 || !strings.Contains(errOut, "pass the CA with --ca-file or FERMION_CA_FILE") {
		t.Fatalf("inspect without the CA: %d %s", c, errOut)
	}
	// With the CA the registry answers, here that the tag does not exist.
	if c, _, errOut := run(t, "inspect", ref, "--ca-file", caFile); c == 0 || strings.Contains(errOut, "certificate") || !strings.Contains(errOut, "not found") {
		t.Fatalf("inspect with the CA: %d %s", c, errOut)
	}
}

// newTestCA makes a CA and a directory holding its certificate (caFile), for
// certificates issued into the same directory.
func newTestCA(t *testing.T) (ca *fermiontest.CA, dir, caFile string) {
	t.Helper()
	ca, dir = fermiontest.NewCA(t), t.TempDir()
	caFile = filepath.Join(dir, "ca.pem")
	fermiontest.WriteLater(t, caFile, ca.PEM)
	return ca, dir, caFile
}
