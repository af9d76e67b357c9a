// Package certs serves a TLS certificate from PEM files and picks up a renewed one
// without a restart: outside tooling (cert-manager, an ACME client, a cron job) rewrites
// the files before expiry and new connections get the new certificate, while those open
// keep theirs. A renewal that does not load leaves the old certificate in use, loudly.
package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// checkEvery bounds how often a handshake looks at the files.
const checkEvery = time.Second

// Reloader holds a certificate loaded from certFile and keyFile.
type Reloader struct {
	certFile, keyFile string
	logger            *slog.Logger
	onLoad            func(notAfter time.Time)

	mu      sync.Mutex // guards everything below; leaf
	cert    *tls.Certificate
	stamp   [2]fileStamp // of the files cert was loaded from
	checked time.Time
	failed  [2]fileStamp // a pair that did not load, not retried until it changes
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// NewReloader loads the pair once; an error names the file and what is wrong with it.
// onLoad, if not nil, is called with the expiry of every certificate loaded.
func NewReloader(certFile, keyFile string, logger *slog.Logger, onLoad func(notAfter time.Time)) (*Reloader, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("tls: give both a certificate and a key file")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{certFile: certFile, keyFile: keyFile, logger: logger, onLoad: onLoad}
	st, err := r.stamps()
	if err != nil {
		return nil, err
	}
	cert, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cert, r.stamp, r.checked = cert, st, time.Now()
	return r, nil
}

// TLSConfig is a server configuration that serves the current certificate, offering
// HTTP/2 and HTTP/1.1 (an http.Server serves either).
func (r *Reloader) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate, NextProtos: []string{"h2", "http/1.1"}}
}

// GetCertificate returns the current certificate, reloading it first if the files
// changed since the last look (at most once a second).
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checked) >= checkEvery {
		r.checked = now
		r.reloadLocked()
	}
	return r.cert, nil
}

func (r *Reloader) reloadLocked() {
	st, err := r.stamps()
	if err != nil || st == r.stamp || st == r.failed {
		if err != nil && st != r.failed {
			r.logger.Warn("tls: cannot read the certificate files; serving the loaded certificate", "err", err)
		}
		return
	}
	cert, err := r.load()
	if err != nil {
		// Half-written by a renewal in progress, or a bad renewal: keep serving.
		r.failed = st
		r.logger.Warn("tls: the renewed certificate does not load; serving the previous one", "err", err)
		return
	}
	r.cert, r.stamp, r.failed = cert, st, [2]fileStamp{}
	r.logger.Info("tls: certificate reloaded", "file", r.certFile, "not_after", cert.Leaf.NotAfter)
}

func (r *Reloader) stamps() ([2]fileStamp, error) {
	var st [2]fileStamp
	for i, name := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(name)
		if err != nil {
			return st, fmt.Errorf("tls: %w", err)
		}
		st[i] = fileStamp{fi.ModTime(), fi.Size()}
	}
	return st, nil
}

func (r *Reloader) load() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: load %s and %s: %w", r.certFile, r.keyFile, err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tls: parse %s: %w", r.certFile, err)
		}
	}
	if time.Now().After(cert.Leaf.NotAfter) {
		return nil, fmt.Errorf("tls: the certificate in %s expired at %s", r.certFile, cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if r.onLoad != nil {
		r.onLoad(cert.Leaf.NotAfter)
	}
	return &cert, nil
}

// LoadSystemPool is the system's CA pool plus the PEM CA certificates in file: for a
// client that must trust a private CA and still reach public hosts.
func LoadSystemPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", file)
	}
	return pool, nil
}

// LoadPool reads PEM CA certificates from file, for a client that must trust a private
// CA.
func LoadPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", file)
	}
	return pool, nil
}
