// Package engine runs NATS JetStream embedded in the Fermion process: the KV buckets,
// object stores and subjects the registry and control plane keep their state in. One
// server, or a cluster of three or more with routes between them; the same client code
// works against an external NATS cluster. Consensus is JetStream's, never ours.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"fermion.dev/fermion/internal/telemetry"
)

// Config configures an embedded server.
type Config struct {
	// Name identifies the server in a cluster; it must be unique and stable.
	Name string
	// DataDir holds the JetStream file store. Required.
	DataDir string
	// Listen is the client address ("127.0.0.1:4222"; port 0 picks one). Empty means no
	// client listener: only the in-process connection.
	Listen string
	// Cluster settings: a name, the route listen address and the other servers' routes
	// (nats://host:port). Empty ClusterListen means a single server.
	ClusterName   string
	ClusterListen string
	Routes        []string
	// SyncAlways makes every acknowledged JetStream write reach disk before the ack.
	// A single server needs it to survive a crash without losing acknowledged writes;
	// a cluster gets durability from R3 replication and may leave it off.
	SyncAlways bool
	Logger     *slog.Logger
	// ReadyTimeout bounds how long Start waits for the server (and JetStream) to be ready.
	ReadyTimeout time.Duration
}

// Engine is a running embedded server and an in-process client connection to it.
type Engine struct {
	srv    *server.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	logger *slog.Logger
}

// Start starts the server and connects to it in-process.
func Start(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("engine: a data directory is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = telemetry.Discard
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 30 * time.Second
	}
	opts := &server.Options{
		ServerName: cfg.Name,
		JetStream:  true,
		StoreDir:   cfg.DataDir,
		SyncAlways: cfg.SyncAlways,
		NoSigs:     true,
		NoLog:      true,
	}
	if cfg.Listen == "" && cfg.ClusterListen != "" {
		// The server starts routing only once its client listener is up.
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := splitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("engine listen %q: %w", cfg.Listen, err)
		}
		opts.Host, opts.Port = host, port
	}
	if cfg.ClusterListen != "" {
		host, port, err := splitHostPort(cfg.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("engine cluster listen %q: %w", cfg.ClusterListen, err)
		}
		opts.Cluster.Name = cfg.ClusterName
		opts.Cluster.Host, opts.Cluster.Port = host, port
		for _, r := range cfg.Routes {
			u, err := url.Parse(r)
			if err != nil || u.Host == "" {
				return nil, fmt.Errorf("engine route %q: want nats://host:port", r)
			}
			opts.Routes = append(opts.Routes, u)
		}
		if cfg.Name == "" {
			return nil, errors.New("engine: a cluster member needs a unique name")
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	srv.SetLoggerV2(slogAdapter{cfg.Logger.With("component", "nats")}, false, false, false)
	go srv.Start()
	if !srv.ReadyForConnections(cfg.ReadyTimeout) {
		srv.Shutdown()
		return nil, fmt.Errorf("engine: server not ready after %s", cfg.ReadyTimeout)
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("fermion-inprocess"),
		nats.MaxReconnects(-1))
	if err != nil {
		srv.Shutdown()
		return nil, fmt.Errorf("engine: connect in-process: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		srv.Shutdown()
		return nil, fmt.Errorf("engine: jetstream: %w", err)
	}
	e := &Engine{srv: srv, nc: nc, js: js, logger: cfg.Logger}
	if err := e.waitJetStream(ctx, cfg.ReadyTimeout); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// waitJetStream waits until JetStream answers (in a cluster, until it has a meta leader).
func (e *Engine) waitJetStream(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := e.js.AccountInfo(actx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("engine: jetstream not ready: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Conn is the in-process client connection.
func (e *Engine) Conn() *nats.Conn { return e.nc }

// JetStream is the JetStream API on the in-process connection.
func (e *Engine) JetStream() jetstream.JetStream { return e.js }

// ClientURL is the address external clients (agents) connect to, or "" without a listener.
func (e *Engine) ClientURL() string {
	if e.srv.Addr() == nil {
		return ""
	}
	return e.srv.ClientURL()
}

// ClusterAddr is the route listen address, or "" for a single server.
func (e *Engine) ClusterAddr() string {
	if a := e.srv.ClusterAddr(); a != nil {
		return a.String()
	}
	return ""
}

// Server exposes the embedded server (for tests and health checks).
func (e *Engine) Server() *server.Server { return e.srv }

// Close drains the client connection and shuts the server down.
func (e *Engine) Close() {
	e.nc.Close()
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

func splitHostPort(s string) (string, int, error) {
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// slogAdapter sends the server's log lines to slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Noticef(format string, v ...any) { a.l.Info(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Fatalf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Tracef(format string, v ...any)  {}
