package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/opencontainers/go-digest"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/nodecache"
)

// CacheSource lets the node cache pull through this client and verify against the
// node's trust policy. nodecache.Ref.Repo is the full name, "host[:port]/repository".
type CacheSource struct {
	Client *Client
	Policy artifact.TrustPolicy
}

var (
	_ nodecache.Fetcher  = (*CacheSource)(nil)
	_ nodecache.Verifier = (*CacheSource)(nil)
)

func cacheRef(r nodecache.Ref) (Ref, error) {
	s := r.Repo
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return ParseRef(s)
}

// Resolve implements nodecache.Fetcher. A digest reference answered with another
// manifest resolves to that manifest's digest, so that the cache refuses it and counts
// it under digest_mismatch.
func (s *CacheSource) Resolve(ctx context.Context, r nodecache.Ref) (string, nodecache.Descriptor, error) {
	ref, err := cacheRef(r)
	if err != nil {
		return "", nodecache.Descriptor{}, err
	}
	repo, err := s.Client.repo(ref)
	if err != nil {
		return "", nodecache.Descriptor{}, err
	}
	raw, d, err := fetchRefManifest(ctx, repo, ref)
	if err != nil {
		return "", nodecache.Descriptor{}, unavailable(err)
	}
	if ref.Digest != "" && d != ref.Digest {
		var layer nodecache.Descriptor
		if om, err := artifact.ParseManifest(raw); err == nil {
			layer = nodecache.Descriptor{Digest: om.Layers[0].Digest.String(), Size: om.Layers[0].Size}
		}
		return d.String(), layer, nil
	}
	p, err := parsePulled(ctx, repo, ref, raw, d)
	if err != nil {
		return "", nodecache.Descriptor{}, unavailable(err)
	}
	return p.ManifestDigest.String(), nodecache.Descriptor{Digest: p.Parsed.Layer.Digest.String(), Size: p.Parsed.Layer.Size}, nil
}

// Fetch implements nodecache.Fetcher. The stream is not checked here: the cache bounds
// and hashes it, and counts a mismatch.
func (s *CacheSource) Fetch(ctx context.Context, r nodecache.Ref, layer nodecache.Descriptor) (io.ReadCloser, error) {
	ref, err := cacheRef(r)
	if err != nil {
		return nil, err
	}
	repo, err := s.Client.repo(ref)
	if err != nil {
		return nil, err
	}
	d, err := digest.Parse(layer.Digest)
	if err != nil {
		return nil, err
	}
	rc, err := get(ctx, repo, "blobs", d.String(), "")
	if err != nil {
		return nil, unavailable(err)
	}
	return rc, nil
}

// Verify implements nodecache.Verifier: the signatures stored for the manifest must
// satisfy the trust policy. The signer is the trusted key's id, or "unsigned".
func (s *CacheSource) Verify(ctx context.Context, r nodecache.Ref, manifestDigest string) (string, error) {
	ref, err := cacheRef(r)
	if err != nil {
		return "", err
	}
	d, err := digest.Parse(manifestDigest)
	if err != nil {
		return "", err
	}
	sigs, err := s.Client.Signatures(ctx, ref, d)
	if err != nil {
		return "", unavailable(err)
	}
	v, err := s.Policy.Verify(ref.Name(), d, sigs)
	if err != nil {
		return "", &verifyError{err}
	}
	if !v.Signed {
		return "unsigned", nil
	}
	return v.KeyID, nil
}

// verifyError carries the bounded reason label nodecache counts failures under.
type verifyError struct{ err error }

func (e *verifyError) Error() string  { return e.err.Error() }
func (e *verifyError) Unwrap() error  { return e.err }
func (e *verifyError) Reason() string { return artifact.Reason(e.err) }

// unavailable marks transport failures and registry-side errors so the cache can serve
// what it has.
func unavailable(err error) error {
	var ne net.Error
	var resp *errcode.ErrorResponse
	switch {
	case errors.As(err, &ne), errors.Is(err, context.DeadlineExceeded), errors.Is(err, io.ErrUnexpectedEOF):
	case errors.As(err, &resp) && resp.StatusCode >= 500:
	default:
		return err
	}
	return fmt.Errorf("%w: %w", nodecache.ErrUnavailable, err)
}
