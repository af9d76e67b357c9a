package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Handshake results, as a Listener reports them: a bounded set, fit for a metric label.
const (
	HandshakeOK = "ok"
	// HandshakeCertificateRejected: the client refused the certificate it was shown
	// (unknown authority, expired, wrong host, …), the sign of a failed rotation.
	HandshakeCertificateRejected = "certificate_rejected"
	// HandshakeNotTLS: the client spoke something else, typically plain HTTP.
	HandshakeNotTLS = "not_tls"
	// HandshakeProtocol: no TLS version or cipher suite in common, or a malformed hello.
	HandshakeProtocol = "protocol"
	// HandshakeTimeout: the client did not finish within the handshake timeout.
	HandshakeTimeout = "timeout"
	// HandshakeClosed: the client hung up before finishing, as TCP health checks and
	// port scanners do.
	HandshakeClosed = "closed"
	// HandshakeOther is any other failure.
	HandshakeOther = "other"
)

// HandshakeResults lists every result a Listener reports, to initialise metrics with.
var HandshakeResults = []string{HandshakeOK, HandshakeCertificateRejected, HandshakeNotTLS, HandshakeProtocol,
	HandshakeTimeout, HandshakeClosed, HandshakeOther}

// DefaultHandshakeTimeout bounds a client's handshake.
const DefaultHandshakeTimeout = 10 * time.Second

// Listener accepts TLS connections and completes each one's handshake before Accept
// returns it, so that every handshake's outcome is reported; an http.Server handed
// tls.NewListener's connections only writes failed handshakes to its error log. A
// failed handshake closes the connection and never reaches Accept. Handshakes run
// concurrently: a slow client holds up no other.
type Listener struct {
	inner   net.Listener
	config  *tls.Config
	timeout time.Duration
	report  func(result string, err error)

	ready     chan accepted
	done      chan struct{}
	closeOnce sync.Once
}

type accepted struct {
	conn net.Conn
	err  error
}

// NewListener serves TLS with config on inner. report, if not nil, is called once for
// every handshake, from the handshake's goroutine, with its result and, for a failure,
// the error. timeout <= 0 means DefaultHandshakeTimeout.
func NewListener(inner net.Listener, config *tls.Config, timeout time.Duration, report func(result string, err error)) *Listener {
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	if report == nil {
		report = func(string, error) {}
	}
	l := &Listener{inner: inner, config: config, timeout: timeout, report: report,
		ready: make(chan accepted), done: make(chan struct{})}
	go l.acceptLoop()
	return l
}

func (l *Listener) acceptLoop() {
	for {
		c, err := l.inner.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				l.closeOnce.Do(func() { close(l.done) })
				return
			}
			// Hand the error to Accept's caller, which decides whether to go on (as
			// http.Server does, backing off, for a temporary error).
			select {
			case l.ready <- accepted{err: err}:
			case <-l.done:
				return
			}
			continue
		}
		go l.handshake(c)
	}
}

func (l *Listener) handshake(c net.Conn) {
	tc := tls.Server(c, l.config)
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		l.report(HandshakeResult(err), err)
		c.Close()
		return
	}
	l.report(HandshakeOK, nil)
	select {
	case l.ready <- accepted{conn: tc}:
	case <-l.done:
		tc.Close()
	}
}

// Accept returns the next connection whose handshake succeeded.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case a := <-l.ready:
		return a.conn, a.err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting; handshakes in progress are abandoned and their connections
// closed.
func (l *Listener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.done)
		err = l.inner.Close()
	})
	return err
}

// Addr is the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// IsTLSFailure reports whether a client's err (from an HTTP round trip, say) is a TLS
// failure: the server's certificate did not verify, the server sent an alert, or it did
// not speak TLS at all.
func IsTLSFailure(err error) bool {
	var cv *tls.CertificateVerificationError
	var rh tls.RecordHeaderError
	var op *net.OpError
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	var he x509.HostnameError
	return errors.As(err, &cv) || errors.As(err, &rh) || errors.As(err, &ua) || errors.As(err, &ci) ||
		errors.As(err, &he) || errors.As(err, &op) && op.Op == "remote error" ||
		// net/http's transport replaces the RecordHeaderError of a server that answered
		// in plain HTTP with an error of its own.
		strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}

// HandshakeResult classifies a failed server-side handshake.
func HandshakeResult(err error) string {
	var rh tls.RecordHeaderError
	var op *net.OpError
	var ne net.Error
	switch {
	case err == nil:
		return HandshakeOK
	case errors.As(err, &rh):
		return HandshakeNotTLS
	case errors.As(err, &op) && op.Op == "remote error":
		// The client sent an alert. crypto/tls's alert type is unexported; its text
		// names the certificate for every certificate alert (bad, unsupported, revoked,
		// expired, unknown, unknown authority).
		if strings.Contains(op.Err.Error(), "certificate") {
			return HandshakeCertificateRejected
		}
		return HandshakeProtocol
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return HandshakeTimeout
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return HandshakeClosed
	case strings.HasPrefix(err.Error(), "tls: "):
		// Raised by crypto/tls itself on the client's hello: no common version or cipher
		// suite, an unsupported extension, a malformed message.
		return HandshakeProtocol
	}
	return HandshakeOther
}
