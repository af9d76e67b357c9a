// Package engine runs NATS JetStream embedded in the Fermion process: the KV buckets,
// object stores and subjects the registry and control plane keep their state in. One
// server, or a cluster of three or more with routes between them; the same client code
// works against an external NATS cluster. Consensus is JetStream's, never ours.
package engine

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
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
	// TLS, when set, makes clients on Listen use TLS with this server configuration
	// (its GetCertificate is asked at every handshake, so a reloading certificate
	// rotates). The in-process connection and the routes are not affected.
	TLS *tls.Config
	// Cluster settings: a name, the route listen address and the other servers' routes
	// (nats://host:port). Empty ClusterListen means a single server.
	ClusterName   string
	ClusterListen string
	Routes        []string
	// ClusterSecret, when set, authenticates the routes between cluster members: a
	// server that does not present it cannot join the cluster (and read its state).
	ClusterSecret string
	// ClusterTLS, when set, encrypts the routes: each member serves its certificate to
	// the others (GetCertificate) and checks theirs against RootCAs and the route's
	// host name. Members still authenticate with ClusterSecret.
	ClusterTLS *tls.Config
	// SyncAlways makes every acknowledged JetStream write reach disk before the ack.
	// A single server needs it to survive a crash without losing acknowledged writes;
	// a cluster gets durability from R3 replication and may leave it off.
	SyncAlways bool
	Logger     *slog.Logger
	// ReadyTimeout bounds how long Start waits for the server (and JetStream) to be ready.
	ReadyTimeout time.Duration
	// Auth, when set, authenticates every client connection but the engine's own
	// in-process one (which gets a random secret of its own): it returns the
	// permissions of the user or false to refuse the connection. Nil: no auth.
	Auth func(user, password string) (*server.Permissions, bool)
}

// routeUser is the user cluster members present to each other with ClusterSecret.
const routeUser = "fermion-route"

// systemUser is the in-process connection's user when Config.Auth is set.
const systemUser = "fermion-system"

// authenticator adapts Config.Auth to the server's custom authentication.
type authenticator struct {
	secret string
	check  func(user, password string) (*server.Permissions, bool)
}

func (a *authenticator) Check(c server.ClientAuthentication) bool {
	o := c.GetOpts()
	if o.Username == systemUser {
		if subtle.ConstantTimeCompare([]byte(o.Password), []byte(a.secret)) != 1 {
			return false
		}
		c.RegisterUser(&server.User{Username: systemUser})
		return true
	}
	perms, ok := a.check(o.Username, o.Password)
	if !ok {
		return false
	}
	c.RegisterUser(&server.User{Username: o.Username, Permissions: perms})
	return true
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
	if cfg.TLS != nil && !opts.DontListen {
		opts.TLSConfig = cfg.TLS
		opts.TLSTimeout = 5 // seconds, for a client's handshake
	}
	if cfg.ClusterListen != "" {
		host, port, err := splitHostPort(cfg.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("engine cluster listen %q: %w", cfg.ClusterListen, err)
		}
		opts.Cluster.Name = cfg.ClusterName
		opts.Cluster.Host, opts.Cluster.Port = host, port
		if cfg.ClusterTLS != nil {
			opts.Cluster.TLSConfig = cfg.ClusterTLS
			opts.Cluster.TLSTimeout = 5 // seconds
		}
		if cfg.ClusterSecret != "" {
			opts.Cluster.Username, opts.Cluster.Password = routeUser, cfg.ClusterSecret
		}
		for _, r := range cfg.Routes {
			u, err := url.Parse(r)
			if err != nil || u.Host == "" {
				return nil, fmt.Errorf("engine route %q: want nats://host:port", r)
			}
			if cfg.ClusterSecret != "" {
				u.User = url.UserPassword(routeUser, cfg.ClusterSecret)
			}
			opts.Routes = append(opts.Routes, u)
		}
		if cfg.Name == "" {
			return nil, errors.New("engine: a cluster member needs a unique name")
		}
	}
	connOpts := []nats.Option{nats.Name("fermion-inprocess"), nats.MaxReconnects(-1)}
	if cfg.Auth != nil {
		b := make([]byte, 32)
		rand.Read(b)
		a := &authenticator{secret: hex.EncodeToString(b), check: cfg.Auth}
		opts.CustomClientAuthentication = a
		connOpts = append(connOpts, nats.UserInfo(systemUser, a.secret))
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	// A listener that cannot bind (a port in use) is reported through the logger's
	// Fatalf and leaves the server never ready: fail at once with the server's reason.
	fatal := make(chan string, 1)
	srv.SetLoggerV2(slogAdapter{l: cfg.Logger.With("component", "nats"), fatal: fatal}, false, false, false)
	go srv.Start()
	if err := waitReady(srv, fatal, cfg.ReadyTimeout); err != nil {
		srv.Shutdown()
		return nil, err
	}
	nc, err := nats.Connect("", append(connOpts, nats.InProcessServer(srv))...)
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

// waitReady waits until the server accepts connections, or reports a fatal error.
func waitReady(srv *server.Server, fatal <-chan string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case msg := <-fatal:
			return fmt.Errorf("engine: %s", msg)
		default:
		}
		if srv.ReadyForConnections(100 * time.Millisecond) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("engine: server not ready after %s", timeout)
		}
	}
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

// slogAdapter sends the server's log lines to slog, and the first fatal one to fatal.
type slogAdapter struct {
	l     *slog.Logger
	fatal chan<- string
}

func (a slogAdapter) Noticef(format string, v ...any) { a.l.Info(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	a.l.Error(msg)
	select {
	case a.fatal <- msg:
	default:
	}
}
func (a slogAdapter) Errorf(format string, v ...any) { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Debugf(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Tracef(format string, v ...any) {}

// Retry runs op with a per-attempt timeout until it succeeds, ctx is done or total has
// passed, and returns its last error. Opening buckets goes through it: while a cluster
// forms, or when replicas ask to create the same stream at the same moment, a JetStream
// API request can go unanswered until it times out, and a short attempt followed by a
// retry (which then finds the stream) is far quicker than one long wait.
func Retry(ctx context.Context, total, attempt time.Duration, op func(ctx context.Context) error) error {
	deadline := time.Now().Add(total)
	for {
		actx, cancel := context.WithTimeout(ctx, attempt)
		err := op(actx)
		cancel()
		if permanent(err) {
			return err
		}
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// OpenKeyValue binds to a KV bucket, creating it when absent, retrying as Retry does.
func OpenKeyValue(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	err := Retry(ctx, 30*time.Second, 2*time.Second, func(ctx context.Context) error {
		var err error
		if kv, err = js.KeyValue(ctx, cfg.Bucket); err == nil || !errors.Is(err, jetstream.ErrBucketNotFound) {
			return err
		}
		if kv, err = js.CreateKeyValue(ctx, cfg); errors.Is(err, jetstream.ErrBucketExists) {
			// Another replica made it between the lookup and the create, and may already
			// have changed its configuration (leaderReads), which the create then reports
			// as a conflict: bind to it, as the lookup would have.
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
		return err
	})
	if err == nil && cfg.Replicas > 1 {
		// Rebind after the change: a handle keeps the read path it was bound with. Retried
		// like the rest: in a cluster still electing its stream leaders, a lookup can time
		// out.
		if err = leaderReads(ctx, js, "KV_"+cfg.Bucket, cfg.Replicas); err == nil {
			err = Retry(ctx, 30*time.Second, 2*time.Second, func(ctx context.Context) (err error) {
				kv, err = js.KeyValue(ctx, cfg.Bucket)
				return err
			})
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// leaderReads turns off direct gets on a replicated stream, so that reads are answered
// by the stream leader rather than by any replica: a follower that has not yet applied
// a write would otherwise answer "not found" right after the write was acknowledged.
// Compare-and-swap stays correct either way; read-your-writes needs this.
//
// It also raises an existing stream to the replication asked for (a bucket made by a
// single server that became a cluster); a single server refuses that with an error.
func leaderReads(ctx context.Context, js jetstream.JetStream, stream string, replicas int) error {
	return Retry(ctx, 30*time.Second, 2*time.Second, func(ctx context.Context) error {
		st, err := js.Stream(ctx, stream)
		if err != nil {
			return err
		}
		cfg := st.CachedInfo().Config
		if !cfg.AllowDirect && cfg.Replicas >= replicas {
			return nil
		}
		cfg.AllowDirect = false
		cfg.Replicas = max(cfg.Replicas, replicas)
		if _, err = js.UpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("set %d replicas on %s: %w", replicas, stream, err)
		}
		return nil
	})
}

// permanent reports JetStream errors that no retry cures: a configuration the server
// refuses.
func permanent(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case 10074, // replicas > 1 not supported in non-clustered mode
		10052, // invalid stream configuration
		10058: // stream name already in use with a different configuration
		return true
	}
	return false
}

// OpenObjectStore binds to an object store, creating it when absent, retrying as
// Retry does.
func OpenObjectStore(ctx context.Context, js jetstream.JetStream, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	var os jetstream.ObjectStore
	err := Retry(ctx, 30*time.Second, 2*time.Second, func(ctx context.Context) error {
		var err error
		if os, err = js.ObjectStore(ctx, cfg.Bucket); err == nil || !errors.Is(err, jetstream.ErrBucketNotFound) {
			return err
		}
		if os, err = js.CreateObjectStore(ctx, cfg); errors.Is(err, jetstream.ErrBucketExists) {
			os, err = js.ObjectStore(ctx, cfg.Bucket) // made meanwhile: see OpenKeyValue
		}
		return err
	})
	if err == nil && cfg.Replicas > 1 {
		if err = leaderReads(ctx, js, "OBJ_"+cfg.Bucket, cfg.Replicas); err == nil {
			err = Retry(ctx, 30*time.Second, 2*time.Second, func(ctx context.Context) (err error) {
				os, err = js.ObjectStore(ctx, cfg.Bucket)
				return err
			})
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open object store %s: %w", cfg.Bucket, err)
	}
	return os, nil
}

// OpenStream binds to a stream, creating it when absent, retrying as Retry does.
func OpenStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	var st jetstream.Stream
	err := Retry(ctx, 30*time.Second, 2*time.Second, func(ctx context.Context) error {
		var err error
		if st, err = js.Stream(ctx, cfg.Name); err == nil || !errors.Is(err, jetstream.ErrStreamNotFound) {
			return err
		}
		st, err = js.CreateStream(ctx, cfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", cfg.Name, err)
	}
	return st, nil
}
