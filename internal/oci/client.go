// Package oci moves Fermion artifacts between this machine and any OCI registry (the
// built-in one or another): push with cosign-compatible signatures, pull with digest and
// signature verification against a trust policy, and inspect. It is also the node
// cache's Fetcher and Verifier. The transport is oras-go.
package oci

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
	"oras.land/oras-go/v2/registry/remote/retry"

	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/certs"
)

// Limits on what a pull reads, so a hostile registry cannot exhaust memory.
const (
	maxManifestBytes = 4 << 20
	maxConfigBytes   = 4 << 20
	maxLayerBytes    = 512 << 20
)

// Ref is a parsed reference: registry host, repository, and a tag and/or digest.
type Ref struct {
	Registry, Repo, Tag string
	Digest              digest.Digest
}

// ParseRef parses "host[:port]/repo[:tag][@sha256:…]".
func ParseRef(s string) (Ref, error) {
	r, err := registry.ParseReference(s)
	if err != nil {
		return Ref{}, fmt.Errorf("reference %q: %w; use host:port/repository:tag or …@sha256:<hex>", s, err)
	}
	ref := Ref{Registry: r.Registry, Repo: r.Repository}
	if d, err := r.Digest(); err == nil {
		ref.Digest = d
	} else if r.Reference != "" {
		ref.Tag = r.Reference
	}
	// registry.ParseReference keeps only one of tag and digest; recover the tag of
	// "repo:tag@digest".
	if ref.Digest != "" {
		if at := strings.LastIndex(s, "@"); at > 0 {
			head := s[:at]
			if c := strings.LastIndex(head, ":"); c > strings.LastIndex(head, "/") {
				ref.Tag = head[c+1:]
			}
		}
	}
	if ref.Tag == "" && ref.Digest == "" {
		ref.Tag = "latest"
	}
	return ref, nil
}

// Name is the repository with its registry ("host/repo"), the identity signatures name.
func (r Ref) Name() string { return r.Registry + "/" + r.Repo }

// Reference returns the digest when known, else the tag.
func (r Ref) Reference() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}

func (r Ref) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// Client talks to registries.
type Client struct {
	// Token authenticates (as the Basic password, any user name). Empty: anonymous.
	Token string
	// PlainHTTP forces http:// for every registry. Without it a registry is reached as
	// SetTLS said for its host; else a loopback one (localhost, 127.0.0.0/8, ::1) is
	// asked once whether it speaks TLS, as Docker does for local registries, and every
	// other one over TLS.
	PlainHTTP bool
	// HTTPClient is the transport (nil: oras' retrying client, trusting RootCAs).
	HTTPClient *http.Client
	// RootCAs, if not nil, are the CAs TLS registries' certificates are checked against
	// instead of the system's (only without HTTPClient).
	RootCAs *x509.CertPool

	// Progress, if set, is told how a module layer moves: Push, PushLayerFile, Pull and
	// FetchBlob call it once per transfer of a layer ("push" or "pull") and then call
	// what it returns with the bytes moved so far, as they move (from 0 again when a
	// push is retried). The CLI prints it; agents leave it nil.
	Progress func(op string, desc ocispec.Descriptor) func(done int64)

	mu      sync.Mutex      // guards the fields below
	tlsHost map[string]bool // registry host:port → speaks TLS, from SetTLS
	tr      *http.Transport // trusting RootCAs, made once
}

// SetTLS records whether the registry at host (host:port, as in references) speaks
// TLS, overriding the default for its address. An agent learns it for the control
// plane's built-in registry when it registers.
func (c *Client) SetTLS(host string, on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tlsHost == nil {
		c.tlsHost = map[string]bool{}
	}
	c.tlsHost[host] = on
}

// plainHTTP reports whether the registry at host is reached over plain HTTP.
func (c *Client) plainHTTP(ctx context.Context, host string) bool {
	if c.PlainHTTP {
		return true
	}
	c.mu.Lock()
	on, ok := c.tlsHost[host]
	c.mu.Unlock()
	if ok {
		return !on
	}
	if !isLoopback(host) {
		return false
	}
	on, known := c.probeTLS(ctx, host)
	if known {
		c.SetTLS(host, on)
	}
	return !on
}

// probeTLS asks a loopback registry whether it speaks TLS. A plain-HTTP answer says
// no; any answer over TLS, or a certificate this client does not trust, says yes (the
// request that follows then fails with the reason). No answer says nothing: plain HTTP
// is assumed this time, and the question asked again next time.
func (c *Client) probeTLS(ctx context.Context, host string) (on, known bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+"/v2/", nil)
	if err != nil {
		return false, false
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: c.transport()} // without oras' retries: one question
	}
	resp, err := hc.Do(req)
	var rh tls.RecordHeaderError
	switch {
	case err == nil:
		resp.Body.Close()
		return true, true
	case errors.As(err, &rh) || strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return false, true
	case certs.IsTLSFailure(err):
		return true, true
	}
	return false, false
}

// transport is http.DefaultTransport, or, with RootCAs, a copy of it that trusts them
// (made once).
func (c *Client) transport() http.RoundTripper {
	if c.RootCAs == nil {
		return http.DefaultTransport
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tr == nil {
		c.tr = http.DefaultTransport.(*http.Transport).Clone()
		c.tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: c.RootCAs}
	}
	return c.tr
}

// httpClient is HTTPClient, or oras' retrying client over transport.
func (c *Client) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	if c.RootCAs == nil {
		return retry.DefaultClient
	}
	return &http.Client{Transport: retry.NewTransport(c.transport())}
}

func (c *Client) repo(ctx context.Context, ref Ref) (*remote.Repository, error) {
	repo, err := remote.NewRepository(ref.Name())
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", ref.Name(), err)
	}
	repo.PlainHTTP = c.plainHTTP(ctx, ref.Registry)
	base := c.httpClient()
	ac := &auth.Client{Client: base, Cache: auth.NewCache()}
	if c.Token != "" {
		ac.Credential = auth.StaticCredential(ref.Registry, auth.Credential{Username: "fermion", Password: c.Token})
	}
	repo.Client = ac
	return repo, nil
}

func isLoopback(host string) bool {
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		h = host
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

// Push uploads the artifact's blobs (skipping those the registry has) and its
// manifest, tagged with ref.Tag when set. It returns the manifest descriptor.
func (c *Client) Push(ctx context.Context, ref Ref, a *artifact.Artifact) (ocispec.Descriptor, error) {
	return c.push(ctx, ref, a, bytesSource(a.Layer))
}

// PushLayerFile is Push with the module read from layerFile, which must hold the
// bytes a's manifest names (a.Layer may then be nil): the module streams from disk,
// so memory stays small whatever its size.
func (c *Client) PushLayerFile(ctx context.Context, ref Ref, a *artifact.Artifact, layerFile string) (ocispec.Descriptor, error) {
	return c.push(ctx, ref, a, fileSource(layerFile))
}

func (c *Client) push(ctx context.Context, ref Ref, a *artifact.Artifact, layer BlobSource) (ocispec.Descriptor, error) {
	om, err := artifact.ParseManifest(a.Manifest)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push %s: %w", ref, err)
	}
	if len(om.Layers) != 1 {
		return ocispec.Descriptor{}, fmt.Errorf("push %s: the manifest has %d layers, want 1", ref, len(om.Layers))
	}
	repo, err := c.repo(ctx, ref)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if c.Progress != nil {
		layer = countingSource(layer, c.Progress("push", om.Layers[0]))
	}
	for _, blob := range []struct {
		desc ocispec.Descriptor
		src  BlobSource
	}{{a.ConfigDescriptor(), bytesSource(a.Config)}, {om.Layers[0], layer}} {
		if err := pushBlob(ctx, repo, blob.desc, blob.src); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("push %s: %w", ref, err)
		}
	}
	desc := a.ManifestDescriptor()
	if ref.Tag != "" {
		err = repo.Manifests().PushReference(ctx, desc, bytes.NewReader(a.Manifest), ref.Tag)
	} else {
		err = repo.Manifests().Push(ctx, desc, bytes.NewReader(a.Manifest))
	}
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push manifest %s: %w", ref, explain(err))
	}
	return desc, nil
}

// BlobSource opens a blob's bytes for an upload; it is called again for a retry.
type BlobSource func() (io.ReadCloser, error)

func bytesSource(b []byte) BlobSource {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

func fileSource(path string) BlobSource {
	return func() (io.ReadCloser, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("open blob: %w", err)
		}
		return f, nil
	}
}

// countingSource reports the bytes read from each blob src opens.
func countingSource(src BlobSource, report func(int64)) BlobSource {
	return func() (io.ReadCloser, error) {
		rc, err := src()
		if err != nil {
			return nil, err
		}
		report(0)
		return &countingReader{ReadCloser: rc, report: report}, nil
	}
}

type countingReader struct {
	io.ReadCloser
	n      int64
	report func(int64)
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if n > 0 {
		r.n += int64(n)
		r.report(r.n)
	}
	return n, err
}

// PushBlob uploads the blob desc names from src to ref's repository, unless the
// registry has it. src streams: memory stays small whatever the blob's size.
func (c *Client) PushBlob(ctx context.Context, ref Ref, desc ocispec.Descriptor, src BlobSource) error {
	repo, err := c.repo(ctx, ref)
	if err != nil {
		return err
	}
	return pushBlob(ctx, repo, desc, src)
}

// pushAttempts bounds the uploads of one blob. oras' retrying transport can replay a
// body only when it is held in memory; a streamed one is retried here, from a fresh
// upload session, after a failure the registry or the network may get over.
const pushAttempts = 3

func pushBlob(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, src BlobSource) error {
	ok, err := repo.Blobs().Exists(ctx, desc)
	if err != nil {
		return fmt.Errorf("check blob %s: %w", desc.Digest, explain(err))
	}
	if ok {
		return nil
	}
	for attempt := 1; ; attempt++ {
		rc, err := src()
		if err != nil {
			return fmt.Errorf("push blob %s: %w", desc.Digest, err)
		}
		err = repo.Blobs().Push(ctx, desc, rc)
		rc.Close()
		if err == nil || errors.Is(err, errdef.ErrAlreadyExists) {
			return nil
		}
		if attempt >= pushAttempts || !transient(err) || ctx.Err() != nil {
			return fmt.Errorf("push blob %s: %w", desc.Digest, explain(err))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("push blob %s: %w", desc.Digest, ctx.Err())
		case <-time.After(time.Duration(attempt) * 500 * time.Millisecond):
		}
	}
}

// transient reports a failure that a new attempt may not meet: the registry's 5xx
// or 429, or a connection that broke. A 4xx is the request's fault and final.
func transient(err error) bool {
	var resp *errcode.ErrorResponse
	if errors.As(err, &resp) {
		return resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// Sign signs the manifest digest with priv and pushes the signature in cosign's layout
// (tag sha256-<hex>.sig in the same repository), appending to signatures already there.
func (c *Client) Sign(ctx context.Context, ref Ref, d digest.Digest, priv *ecdsa.PrivateKey) error {
	repo, err := c.repo(ctx, ref)
	if err != nil {
		return err
	}
	payload, sig, err := artifact.Sign(priv, ref.Name(), d)
	if err != nil {
		return err
	}
	tag := artifact.SignatureTag(d)
	existing, err := fetchManifest(ctx, repo, tag)
	if err != nil && !errors.Is(err, errdef.ErrNotFound) {
		return fmt.Errorf("read existing signatures: %w", err)
	}
	manifest, config, err := artifact.SignatureManifest(existing, payload, sig)
	if err != nil {
		return err
	}
	var m ocispec.Manifest
	if err := jsonUnmarshal(manifest, &m); err != nil {
		return err
	}
	blobs := map[digest.Digest][]byte{digest.FromBytes(config): config, digest.FromBytes(payload): payload}
	for _, desc := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		data, ok := blobs[desc.Digest]
		if !ok {
			continue // an earlier signature's payload: already in the registry
		}
		if err := pushBlob(ctx, repo, desc, bytesSource(data)); err != nil {
			return fmt.Errorf("push signature: %w", err)
		}
	}
	desc := ocispec.Descriptor{MediaType: m.MediaType, Digest: digest.FromBytes(manifest), Size: int64(len(manifest))}
	if err := repo.Manifests().PushReference(ctx, desc, bytes.NewReader(manifest), tag); err != nil {
		return fmt.Errorf("push signature manifest: %w", explain(err))
	}
	return nil
}

// Signatures returns the cosign signatures stored for digest d (none: empty, no error).
func (c *Client) Signatures(ctx context.Context, ref Ref, d digest.Digest) ([]artifact.Signature, error) {
	repo, err := c.repo(ctx, ref)
	if err != nil {
		return nil, err
	}
	return signatures(ctx, repo, d)
}

func signatures(ctx context.Context, repo *remote.Repository, d digest.Digest) ([]artifact.Signature, error) {
	m, err := fetchManifest(ctx, repo, artifact.SignatureTag(d))
	if errors.Is(err, errdef.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fetch signatures: %w", err)
	}
	return artifact.ParseSignatures(m, func(desc ocispec.Descriptor) ([]byte, error) {
		return fetchBlob(ctx, repo, desc, 1<<20)
	})
}

// Pulled is a verified artifact.
type Pulled struct {
	Ref            Ref
	ManifestDigest digest.Digest
	Parsed         *artifact.Parsed
	Manifest       []byte
	ConfigBytes    []byte
	Wasm           []byte
	Verified       artifact.Verified
}

// Resolve fetches and parses the manifest for ref and checks it against ref.Digest when
// the reference names one. It returns the manifest bytes and digest computed from them.
func (c *Client) Resolve(ctx context.Context, ref Ref) (*Pulled, error) {
	repo, err := c.repo(ctx, ref)
	if err != nil {
		return nil, err
	}
	return resolve(ctx, repo, ref)
}

func resolve(ctx context.Context, repo *remote.Repository, ref Ref) (*Pulled, error) {
	raw, d, err := fetchRefManifest(ctx, repo, ref)
	if err != nil {
		return nil, err
	}
	if ref.Digest != "" && d != ref.Digest {
		return nil, fmt.Errorf("fetch manifest %s: the registry served a manifest with digest %s, altered in the registry or in transit: %w",
			ref, d, artifact.ErrDigestMismatch)
	}
	return parsePulled(ctx, repo, ref, raw, d)
}

// fetchRefManifest fetches ref's manifest and returns it with the digest computed from
// its bytes; no header is trusted for that.
func fetchRefManifest(ctx context.Context, repo *remote.Repository, ref Ref) ([]byte, digest.Digest, error) {
	raw, err := fetchManifest(ctx, repo, ref.Reference())
	if err != nil {
		return nil, "", fmt.Errorf("fetch manifest %s: %w", ref, err)
	}
	return raw, digest.FromBytes(raw), nil
}

// parsePulled checks that raw is a Fermion artifact's manifest and fetches and checks
// its config.
func parsePulled(ctx context.Context, repo *remote.Repository, ref Ref, raw []byte, d digest.Digest) (*Pulled, error) {
	om, err := artifact.ParseManifest(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	config, err := fetchBlob(ctx, repo, om.Config, maxConfigBytes)
	if err != nil {
		return nil, fmt.Errorf("fetch config: %w", err)
	}
	parsed, err := artifact.Parse(raw, config)
	if err != nil {
		return nil, err
	}
	return &Pulled{Ref: ref, ManifestDigest: d, Parsed: parsed, Manifest: raw, ConfigBytes: config}, nil
}

// Pull resolves ref, verifies its signatures against policy, then fetches and checks
// the module. Nothing unverified is returned.
func (c *Client) Pull(ctx context.Context, ref Ref, policy artifact.TrustPolicy) (*Pulled, error) {
	repo, err := c.repo(ctx, ref)
	if err != nil {
		return nil, err
	}
	p, err := resolve(ctx, repo, ref)
	if err != nil {
		return nil, err
	}
	sigs, err := signatures(ctx, repo, p.ManifestDigest)
	if err != nil {
		return nil, err
	}
	v, err := policy.Verify(ref.Name(), p.ManifestDigest, sigs)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	p.Verified = v
	var report func(int64)
	if c.Progress != nil {
		report = c.Progress("pull", p.Parsed.Layer)
	}
	wasm, err := fetchBlobCounted(ctx, repo, p.Parsed.Layer, maxLayerBytes, report)
	if err != nil {
		return nil, fmt.Errorf("fetch module: %w", err)
	}
	p.Wasm = wasm
	return p, nil
}

// Accepted manifest media types: Fermion artifacts are OCI image manifests; signature
// manifests written by other tools may be Docker's; indexes are read to be refused with
// a clear error rather than a 404.
var manifestAccept = strings.Join([]string{
	ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex,
	"application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json",
}, ", ")

func fetchManifest(ctx context.Context, repo *remote.Repository, reference string) ([]byte, error) {
	rc, err := get(ctx, repo, "manifests", reference, manifestAccept)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := readBounded(rc, maxManifestBytes)
	if errors.Is(err, errTooLong) {
		return nil, fmt.Errorf("%w: manifest %s: %w", artifact.ErrBadManifest, reference, err)
	}
	return b, err
}

// fetchBlob reads the blob desc names and checks it against desc.
func fetchBlob(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	return fetchBlobCounted(ctx, repo, desc, limit, nil)
}

// fetchBlobCounted is fetchBlob reporting the bytes read so far to report, if not nil.
func fetchBlobCounted(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, limit int64, report func(int64)) ([]byte, error) {
	if desc.Size > limit {
		return nil, fmt.Errorf("blob %s is %d bytes, over the %d-byte limit", desc.Digest, desc.Size, limit)
	}
	for attempt := 1; ; attempt++ {
		rc, err := get(ctx, repo, "blobs", desc.Digest.String(), "")
		if err != nil {
			return nil, err
		}
		if report != nil {
			report(0)
			rc = &countingReader{ReadCloser: rc, report: report}
		}
		b, err := readBounded(rc, desc.Size)
		rc.Close()
		if err != nil && !errors.Is(err, errTooLong) {
			// A cut transfer: the network, or the registry finding the blob corrupt
			// as it streamed it. Asked again, such a registry says which.
			if attempt < 2 && ctx.Err() == nil {
				continue
			}
			return nil, fmt.Errorf("read blob %s: %w; the registry stopped sending it, retry", desc.Digest, err)
		}
		// Longer, shorter or other bytes than desc names: ErrTamperedLayer either way.
		if err := artifact.VerifyLayer(desc, b); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		return b, nil
	}
}

// FetchBlob streams the blob desc names from ref's repository into w and checks it
// on the way: memory stays small whatever the blob's size. On an error w may hold
// part of the blob or wrong bytes; the caller discards them.
func (c *Client) FetchBlob(ctx context.Context, ref Ref, desc ocispec.Descriptor, w io.Writer) error {
	repo, err := c.repo(ctx, ref)
	if err != nil {
		return err
	}
	rc, err := get(ctx, repo, "blobs", desc.Digest.String(), "")
	if err != nil {
		return err
	}
	defer rc.Close()
	if c.Progress != nil {
		report := c.Progress("pull", desc)
		report(0)
		rc = &countingReader{ReadCloser: rc, report: report}
	}
	v := desc.Digest.Verifier()
	n, err := io.Copy(io.MultiWriter(w, v), io.LimitReader(rc, desc.Size+1))
	if err != nil {
		return fmt.Errorf("read blob %s: %w; the registry stopped sending it, retry", desc.Digest, err)
	}
	if n != desc.Size || !v.Verified() {
		return fmt.Errorf("%w: blob %s: %w: %d bytes that do not hash to it (want %d)", ErrCorrupt, desc.Digest, artifact.ErrTamperedLayer, n, desc.Size)
	}
	return nil
}

// get opens /v2/<repository>/<kind>/<reference> through repo's client (its credentials
// and retries). Unlike oras' Fetch it does not compare Content-Length or
// Docker-Content-Digest with what was asked for: callers check the bytes themselves, so
// content that does not match its reference is reported as tampering
// (artifact.ErrTamperedLayer, artifact.ErrDigestMismatch) whatever the headers claim,
// and counted under that reason.
func get(ctx context.Context, repo *remote.Repository, kind, reference, accept string) (io.ReadCloser, error) {
	scheme := "https"
	if repo.PlainHTTP {
		scheme = "http"
	}
	r := repo.Reference
	u := scheme + "://" + r.Host() + "/v2/" + r.Repository + "/" + kind + "/" + reference
	ctx = auth.AppendRepositoryScope(ctx, r, auth.ActionPull)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := repo.Client.Do(req)
	if err != nil {
		return nil, explain(err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return resp.Body, nil
	case http.StatusNotFound:
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %w", strings.TrimSuffix(kind, "s"), reference, errdef.ErrNotFound)
	}
	defer resp.Body.Close()
	e := &errcode.ErrorResponse{Method: req.Method, URL: req.URL, StatusCode: resp.StatusCode}
	var body struct {
		Errors errcode.Errors `json:"errors"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body) == nil {
		e.Errors = body.Errors
	}
	for _, x := range e.Errors {
		if x.Code == codeBlobCorrupt {
			return nil, fmt.Errorf("%w: %s %s: %w: %w", ErrCorrupt, strings.TrimSuffix(kind, "s"), reference, artifact.ErrTamperedLayer, explain(e))
		}
	}
	return nil, explain(e)
}

// codeBlobCorrupt is the error code with which Fermion's registry refuses a blob
// whose stored bytes no longer match their digest.
const codeBlobCorrupt = "BLOB_CORRUPT"

// refusedError states a registry's error response in the registry's words; oras' text
// repeats the URL and prints the error details as a Go map.
type refusedError struct{ resp *errcode.ErrorResponse }

func (e *refusedError) Error() string {
	var msgs []string
	for _, x := range e.resp.Errors {
		msg := x.Message
		if msg == "" {
			msg = strings.ToLower(strings.ReplaceAll(x.Code, "_", " "))
		}
		msgs = append(msgs, msg)
	}
	if len(msgs) == 0 {
		msgs = []string{strings.ToLower(http.StatusText(e.resp.StatusCode))}
	}
	return fmt.Sprintf("registry answered %d: %s", e.resp.StatusCode, strings.Join(msgs, "; "))
}

func (e *refusedError) Unwrap() error { return e.resp }

// explain rewrites a registry's error response (as oras returns them, unwrapped) as a
// refusedError and says what oras' "basic credential not found" means; other errors
// are returned as they are.
func explain(err error) error {
	if resp, ok := err.(*errcode.ErrorResponse); ok {
		return &refusedError{resp}
	}
	if errors.Is(err, auth.ErrBasicCredentialNotFound) {
		return fmt.Errorf("%w: %w", ErrNoToken, err)
	}
	return err
}

var errTooLong = errors.New("longer than expected")

// ErrCorrupt means a blob's bytes do not match its digest: the registry found it so
// in its storage (BLOB_CORRUPT), or this client's check of what it received did.
// Retrying does not help; pushing the artifact again repairs a registry's copy.
// Such errors also match artifact.ErrTamperedLayer.
var ErrCorrupt = errors.New("blob is corrupt")

// ErrNoToken means the registry asked for credentials and the client has no token.
var ErrNoToken = errors.New("the registry requires a token and none was given")

// readBounded reads r to its end but at most limit bytes; more is errTooLong.
func readBounded(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return b, fmt.Errorf("%w: more than %d bytes", errTooLong, limit)
	}
	return b, nil
}

func jsonUnmarshal(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode manifest: %w", err)
	}
	return nil
}
