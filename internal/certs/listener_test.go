package certs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"fermion.dev/fermion/internal/fermiontest"
)

// listenerSetup issues a certificate for 127.0.0.1 from a new CA, loads it, and opens a
// loopback TCP listener to serve it on.
func listenerSetup(t *testing.T) (*fermiontest.CA, *Reloader, net.Listener) {
	t.Helper()
	ca := fermiontest.NewCA(t)
	certFile, keyFile := ca.Issue(t, t.TempDir(), 1, time.Now().Add(time.Hour))
	r, err := NewReloader(certFile, keyFile, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ca, r, inner
}

// TestListenerReportsEveryHandshake drives one client of each kind at a Listener behind
// an http.Server and checks what it reports, and that only good handshakes are served.
func TestListenerReportsEveryHandshake(t *testing.T) {
	ca, r, inner := listenerSetup(t)
	var mu sync.Mutex
	results := map[string]int{}
	reported := make(chan string, 16)
	report := func(result string, err error) {
		if (result == HandshakeOK) != (err == nil) {
			t.Errorf("result %s with error %v", result, err)
		}
		mu.Lock()
		results[result]++
		mu.Unlock()
		reported <- result
	}
	// A handshake timeout no loaded machine reaches for the clients that do speak: a
	// short one here once failed a good handshake that took over 300 ms.
	ln := NewListener(inner, r.TLSConfig(), time.Minute, report)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			t.Error("request without TLS state")
		}
		io.WriteString(w, "hello")
	})}
	go srv.Serve(ln)
	defer srv.Close()
	addr := ln.Addr().String()
	wait := func(want string) {
		t.Helper()
		select {
		case got := <-reported:
			if got != want {
				t.Fatalf("reported %q, want %q", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no handshake reported, want %q", want)
		}
	}

	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, DisableKeepAlives: true}}
	resp, err := client.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello" {
		t.Fatalf("body %q", body)
	}
	wait(HandshakeOK)

	// A client that does not trust the CA: the rotation-failure signal.
	_, err = http.Get("https://" + addr + "/")
	if err == nil {
		t.Fatal("a client without the CA was served")
	}
	wait(HandshakeCertificateRejected)

	// Plain HTTP to the TLS port.
	if resp, err := http.Get("http://" + addr + "/"); err == nil {
		resp.Body.Close()
	}
	wait(HandshakeNotTLS)

	// Only versions the server refuses.
	_, err = tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil {
		t.Fatal("TLS 1.1 accepted")
	}
	wait(HandshakeProtocol)

	// Connect and hang up, as a TCP health check does.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	wait(HandshakeClosed)

	// Connect and say nothing: cut off at the handshake timeout, on a listener of its
	// own whose timeout is short, since no other client shares it.
	quiet, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	qln := NewListener(quiet, r.TLSConfig(), 300*time.Millisecond, report)
	go func() {
		for {
			c, err := qln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	defer qln.Close()
	c, err = net.Dial("tcp", qln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wait(HandshakeTimeout)

	mu.Lock()
	defer mu.Unlock()
	for _, res := range []string{HandshakeOK, HandshakeCertificateRejected, HandshakeNotTLS, HandshakeProtocol, HandshakeClosed, HandshakeTimeout} {
		if results[res] != 1 {
			t.Errorf("%s reported %d times, want 1 (all: %v)", res, results[res], results)
		}
	}
}

// TestListenerSlowClientHoldsUpNoOther: a client stuck in its handshake does not delay
// the next one, and Close ends Accept.
func TestListenerSlowClientHoldsUpNoOther(t *testing.T) {
	ca, r, inner := listenerSetup(t)
	ln := NewListener(inner, r.TLSConfig(), time.Minute, nil)
	slow, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	dialed := make(chan error, 1)
	go func() {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots})
		if err == nil {
			c.Close()
		}
		dialed <- err
	}()
	accepted := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	select {
	case err := <-accepted:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a stalled handshake held up the next client")
	}
	if err := <-dialed; err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if _, err := ln.Accept(); err == nil {
		t.Fatal("Accept after Close returned a connection")
	}
}

func TestHandshakeResultOfPlainErrors(t *testing.T) {
	for err, want := range map[error]string{
		nil:                                HandshakeOK,
		io.EOF:                             HandshakeClosed,
		fmt.Errorf("read: %w", io.EOF):     HandshakeClosed,
		fmt.Errorf("tls: no cipher suite"): HandshakeProtocol,
		fmt.Errorf("something else"):       HandshakeOther,
	} {
		if got := HandshakeResult(err); got != want {
			t.Errorf("HandshakeResult(%v) = %s, want %s", err, got, want)
		}
	}
}
