// Package registry is Fermion's built-in OCI registry: an http.Handler serving the
// distribution spec v1.1 API (/v2/...) — blobs, chunked and monolithic uploads,
// cross-repository mounts, manifests, tags, the referrers API and the catalog — with
// its state in NATS JetStream, so every server of a Fermion cluster serves the same
// content. Blobs of any size (up to Config.MaxBlobBytes) stream in and out with
// bounded memory (objwrite.go, objread.go), and every blob read is checked against its
// digest (blobread.go).
//
// # Storage
//
// Blobs live once, by digest, in the object store fermion_blobs; a repository sees a
// blob only through a link (KV fermion_links), so a blob pushed to one repository is
// BLOB_UNKNOWN in another until pushed or mounted there. Manifests are KV records
// (fermion_manifests; bytes inline up to 256 KiB, larger ones in the object store),
// tags map to digests (fermion_tags, moved by compare-and-swap on the key's
// revision), fermion_referrers indexes manifests by subject, and fermion_uploads holds
// upload sessions whose chunks are objects "uploads.<uuid>.…" until the final PUT
// streams them into the blob. The key layout is described in names.go.
//
// # Durability
//
// A write is acknowledged to the client (201, 202) only after JetStream has
// acknowledged every message it consists of, and JetStream acknowledges a message only
// once it is stored. On a single server, which the server role runs with SyncAlways,
// stored means written and fsynced to the file store, so a crash or power loss after
// the response loses nothing. In a cluster the buckets are R3 (Config.Replicas = 3):
// a message is acknowledged once a majority of the three servers has it, so losing
// any one server loses nothing acknowledged (without SyncAlways, only losing power on
// two at once before they flush could).
//
// Writes are ordered so that a failure at any step leaves no visible half-state: a
// blob object is written only after its digest is verified, and linked into the
// repository only once complete (the object store publishes an object's metadata
// after its last chunk); a manifest is stored only after it and what it references
// are checked, and its tag is set last. A failure can leave unreferenced data behind
// (chunks of an abandoned upload, which the expiry sweep deletes; an untagged
// manifest), never a reference to something missing.
//
// Blob DELETE removes the repository's link; the object stays, because other
// repositories may link the same content. Unlinked objects are not yet collected.
//
// # Access
//
// Writes need a push token; reads need a pull or push token when pull tokens are
// configured and are anonymous otherwise. Tokens are accepted as a Bearer token or as
// the password of Basic auth (any user name).
//
// Tags that look like release versions (1.2.0, v1.2.0-rc.1) are immutable: pushing a
// different manifest under one is DENIED; pushing the same digest again succeeds.
// Deleting one (or its manifest) yanks the version: pulls by the tag fail, but the
// name stays bound to its digest and can only be restored with the same content.
package registry

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"fermion.dev/fermion/internal/telemetry"
)

// Config configures a Registry.
type Config struct {
	// PushTokens grant writes (and reads). Empty: every write is refused.
	PushTokens []string
	// PullTokens grant reads. Empty: anyone may read.
	PullTokens []string
	// Tokens, when set, is asked about a presented token the static lists do not hold:
	// it returns whether the token may push and whether it may pull. The control plane
	// uses it to accept its own API tokens.
	Tokens func(token string) (push, pull bool)
	// Replicas is the replication of the buckets: 1 on a single server, 3 in a cluster.
	// Zero means 1.
	Replicas int
	// Metrics receives the registry's collectors; nil records nothing.
	Metrics prometheus.Registerer
	Logger  *slog.Logger
	// MaxManifestBytes caps a manifest (default 4 MiB, the size the spec asks
	// registries to accept).
	MaxManifestBytes int64
	// MaxBlobBytes caps a blob (default DefaultMaxBlobBytes, 2 GiB). Uploads stream
	// into storage with bounded memory whatever the cap.
	MaxBlobBytes int64
	// UploadExpiry is how long an upload session may sit idle before the sweep deletes
	// it and its chunks (default 1h).
	UploadExpiry time.Duration
}

// DefaultMaxBlobBytes is the blob size cap when Config.MaxBlobBytes is zero.
const DefaultMaxBlobBytes = 2 << 30

const (
	defaultMaxManifestBytes = 4 << 20
	defaultUploadExpiry     = time.Hour
)

// Registry serves the OCI distribution API. It is safe for concurrent use, and several
// Registries (one per server) may share the same JetStream buckets.
type Registry struct {
	cfg     Config
	st      *store
	logger  *slog.Logger
	metrics *metrics
	push    [][sha256.Size]byte
	pull    [][sha256.Size]byte
	suspect suspects // blobs a streamed read found corrupt (see blobread.go)

	closed    atomic.Bool
	closeOnce sync.Once
	stop      context.CancelFunc // stops the upload sweep
	done      chan struct{}      // closed when the sweep has returned
}

// New opens (creating when absent) the registry's buckets on js and starts the sweep
// that deletes abandoned uploads; Close stops it.
func New(ctx context.Context, js jetstream.JetStream, cfg Config) (*Registry, error) {
	if js == nil {
		return nil, errors.New("registry: a JetStream context is required")
	}
	switch cfg.Replicas {
	case 0:
		cfg.Replicas = 1
	case 1, 3:
	default:
		return nil, fmt.Errorf("registry: replicas %d: want 1 (single server) or 3 (cluster)", cfg.Replicas)
	}
	if cfg.Logger == nil {
		cfg.Logger = telemetry.Discard
	}
	if cfg.MaxManifestBytes <= 0 {
		cfg.MaxManifestBytes = defaultMaxManifestBytes
	}
	if cfg.MaxBlobBytes <= 0 {
		cfg.MaxBlobBytes = DefaultMaxBlobBytes
	}
	if cfg.UploadExpiry <= 0 {
		cfg.UploadExpiry = defaultUploadExpiry
	}
	for i, t := range append(append([]string{}, cfg.PushTokens...), cfg.PullTokens...) {
		if t == "" {
			return nil, fmt.Errorf("registry: token %d is empty", i)
		}
	}
	st, err := openStore(ctx, js, cfg.Replicas, cfg.Logger.With("component", "registry"))
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	r := &Registry{
		cfg:     cfg,
		st:      st,
		logger:  cfg.Logger.With("component", "registry"),
		metrics: m,
		push:    hashTokens(cfg.PushTokens),
		pull:    hashTokens(cfg.PullTokens),
		done:    make(chan struct{}),
	}
	sweepCtx, stop := context.WithCancel(context.Background())
	r.stop = stop
	go r.sweepLoop(sweepCtx)
	return r, nil
}

// Close stops the upload sweep; requests after Close get 503. It does not close the
// JetStream connection, which the caller owns.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		r.stop()
		<-r.done
	})
	return nil
}

func hashTokens(ts []string) [][sha256.Size]byte {
	out := make([][sha256.Size]byte, len(ts))
	for i, t := range ts {
		out[i] = sha256.Sum256([]byte(t))
	}
	return out
}

// Routes, the metric's bounded "route" label.
const (
	routeBase      = "base"
	routeCatalog   = "catalog"
	routeBlobs     = "blobs"
	routeUploads   = "uploads"
	routeManifests = "manifests"
	routeTags      = "tags"
	routeReferrers = "referrers"
	routeUnknown   = "unknown"
)

// request is one parsed API request.
type request struct {
	route string
	repo  string
	ref   string // digest, tag, or upload id; "" for the uploads collection
}

// parsePath splits /v2/<name>/<kind>/<ref>. The name may itself contain "/", so the
// kind is found from the end.
func parsePath(p string) (request, bool) {
	if p == "/v2/" || p == "/v2" {
		return request{route: routeBase}, true
	}
	if p == "/v2/_catalog" {
		return request{route: routeCatalog}, true
	}
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return request{route: routeUnknown}, false
	}
	seg := strings.Split(rest, "/")
	n := len(seg)
	join := func(k int) string { return strings.Join(seg[:k], "/") }
	switch {
	case n >= 3 && seg[n-2] == "tags" && seg[n-1] == "list":
		return request{route: routeTags, repo: join(n - 2)}, true
	case n >= 4 && seg[n-3] == "blobs" && seg[n-2] == "uploads":
		return request{route: routeUploads, repo: join(n - 3), ref: seg[n-1]}, true
	case n >= 3 && seg[n-2] == "blobs" && seg[n-1] == "uploads":
		return request{route: routeUploads, repo: join(n - 2)}, true
	case n >= 3 && seg[n-2] == "blobs":
		return request{route: routeBlobs, repo: join(n - 2), ref: seg[n-1]}, true
	case n >= 3 && seg[n-2] == "manifests":
		return request{route: routeManifests, repo: join(n - 2), ref: seg[n-1]}, true
	case n >= 3 && seg[n-2] == "referrers":
		return request{route: routeReferrers, repo: join(n - 2), ref: seg[n-1]}, true
	}
	return request{route: routeUnknown}, false
}

// ServeHTTP serves one request of the distribution API.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	rw.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	p, ok := parsePath(req.URL.Path)
	defer func() {
		r.metrics.request(req.Method, p.route, rw.status)
		r.metrics.bytesOut.Add(float64(rw.written))
	}()
	if r.closed.Load() {
		writeError(rw, req, newError(http.StatusServiceUnavailable, codeUnavailable, "the registry is shutting down"))
		return
	}
	if !ok {
		writeError(rw, req, newError(http.StatusNotFound, codeUnsupported, "no such endpoint %s; the API is under /v2/", clip(req.URL.Path)))
		return
	}
	write := req.Method != http.MethodGet && req.Method != http.MethodHead
	if e := r.authorize(req, write); e != nil {
		writeError(rw, req, e)
		return
	}
	if req.Body != nil {
		req.Body = countingBody{req.Body, r.metrics.bytesIn}
	}
	if p.route != routeBase && p.route != routeCatalog && !validRepo(p.repo) {
		writeError(rw, req, newError(http.StatusBadRequest, codeNameInvalid,
			"invalid repository name %q: up to %d characters, lowercase letters, digits and separators (. _ __ -), path components joined by /", clip(p.repo), maxRepoLen).
			withDetail(map[string]string{"name": clip(p.repo)}))
		return
	}
	var err error
	switch p.route {
	case routeBase:
		err = r.serveBase(rw, req)
	case routeCatalog:
		err = r.serveCatalog(rw, req)
	case routeBlobs:
		err = r.serveBlob(rw, req, p)
	case routeUploads:
		err = r.serveUpload(rw, req, p)
	case routeManifests:
		err = r.serveManifest(rw, req, p)
	case routeTags:
		err = r.serveTags(rw, req, p)
	case routeReferrers:
		err = r.serveReferrers(rw, req, p)
	}
	if err != nil {
		r.fail(rw, req, err)
	}
}

// fail answers with err: an *apiError as it is, anything else (a storage failure) as
// 503 when JetStream did not answer in time and 500 otherwise, logged.
func (r *Registry) fail(w http.ResponseWriter, req *http.Request, err error) {
	var e *apiError
	if errors.As(err, &e) {
		writeError(w, req, e)
		return
	}
	if errors.Is(err, context.Canceled) && req.Context().Err() != nil {
		// The client went away; 499 (nginx's "client closed request") is for the metric.
		w.WriteHeader(499)
		return
	}
	r.logger.Error("registry request failed", "method", req.Method, "path", clip(req.URL.Path), "error", err)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) {
		writeError(w, req, newError(http.StatusServiceUnavailable, codeUnavailable, "storage did not answer in time; retry"))
		return
	}
	writeError(w, req, newError(http.StatusInternalServerError, codeUnknown, "internal storage error; see the server log"))
}

func (r *Registry) serveBase(w http.ResponseWriter, req *http.Request) error {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return methodNotAllowed(req, "GET, HEAD")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	if req.Method == http.MethodGet {
		_, _ = w.Write([]byte("{}"))
	}
	return nil
}

func methodNotAllowed(req *http.Request, allow string) *apiError {
	e := newError(http.StatusMethodNotAllowed, codeUnsupported, "method %s is not supported here; allowed: %s", req.Method, allow)
	e.header = http.Header{"Allow": {allow}}
	return e
}

// authorize checks the request's token. A write needs a push token. A read needs a
// pull or push token when pull tokens are configured; otherwise it is anonymous, but
// credentials that are presented must still be valid.
func (r *Registry) authorize(req *http.Request, write bool) *apiError {
	token, presented := credentials(req)
	var extPush, extPull bool
	if presented && r.cfg.Tokens != nil {
		extPush, extPull = r.cfg.Tokens(token)
	}
	if write {
		if extPush {
			return nil
		}
		if len(r.push) == 0 && r.cfg.Tokens == nil {
			return newError(http.StatusForbidden, codeDenied, "this registry accepts no pushes (no push tokens are configured)")
		}
		if !presented {
			return newError(http.StatusUnauthorized, codeUnauthorized, "authentication required: send a push token as Bearer or as the Basic password")
		}
		if !match(token, r.push) {
			return newError(http.StatusUnauthorized, codeUnauthorized, "the token is not a push token")
		}
		return nil
	}
	if !presented {
		if len(r.pull) == 0 {
			return nil
		}
		return newError(http.StatusUnauthorized, codeUnauthorized, "authentication required: send a pull token as Bearer or as the Basic password")
	}
	if extPull || extPush || match(token, r.pull) || match(token, r.push) {
		return nil
	}
	return newError(http.StatusUnauthorized, codeUnauthorized, "the token is not a pull or push token")
}

func credentials(req *http.Request) (string, bool) {
	h := req.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	scheme, rest, _ := strings.Cut(h, " ")
	rest = strings.TrimSpace(rest)
	switch strings.ToLower(scheme) {
	case "bearer":
		return rest, true
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return "", true
		}
		_, pass, _ := strings.Cut(string(raw), ":")
		return pass, true
	}
	return "", true
}

// match compares token against every configured token in constant time (hashing
// first so the comparison does not depend on lengths either).
func match(token string, set [][sha256.Size]byte) bool {
	h := sha256.Sum256([]byte(token))
	ok := 0
	for i := range set {
		ok |= subtle.ConstantTimeCompare(h[:], set[i][:])
	}
	return ok == 1
}

// statusWriter records the status and body bytes of a response.
type statusWriter struct {
	http.ResponseWriter
	status      int
	written     int64
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	n, err := w.ResponseWriter.Write(b)
	w.written += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
