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

// Resolve implements nodecache.Fetcher: the manifest must be a Fermion artifact's, and
// the cache keeps its config (the app manifest and scan results) with the module. The
// config is not read here: the cache downloads and checks it like the layer, so a config
// that does not match the manifest is refused and counted (tampered_layer or
// digest_mismatch); what it says is for the consumer to parse. A digest reference
// answered with another manifest resolves to that manifest's digest, so that the cache
// refuses it and counts it under digest_mismatch.
func (s *CacheSource) Resolve(ctx context.Context, r nodecache.Ref) (nodecache.Resolved, error) {
	ref, err := cacheRef(r)
	if err != nil {
		return nodecache.Resolved{}, err
	}
	repo, err := s.Client.repo(ctx, ref)
	if err != nil {
		return nodecache.Resolved{}, err
	}
	raw, d, err := fetchRefManifest(ctx, repo, ref)
	if err != nil {
		return nodecache.Resolved{}, unavailable(err)
	}
	om, err := artifact.ParseManifest(raw)
	if ref.Digest != "" && d != ref.Digest {
		res := nodecache.Resolved{ManifestDigest: d.String()}
		if err == nil {
			res.Layer = nodecache.Descriptor{Digest: om.Layers[0].Digest.String(), Size: om.Layers[0].Size}
		}
		return res, nil
	}
	if err != nil {
		return nodecache.Resolved{}, fmt.Errorf("%s: %w", ref, err)
	}
	if om.Config.Size > artifact.MaxConfigSize {
		return nodecache.Resolved{}, fmt.Errorf("%s: %w: config is %d bytes, more than the %d allowed",
			ref, artifact.ErrBadManifest, om.Config.Size, artifact.MaxConfigSize)
	}
	return nodecache.Resolved{
		ManifestDigest: d.String(),
		Layer:          nodecache.Descriptor{Digest: om.Layers[0].Digest.String(), Size: om.Layers[0].Size},
		Config:         nodecache.Descriptor{Digest: om.Config.Digest.String(), Size: om.Config.Size},
	}, nil
}

// Fetch implements nodecache.Fetcher for the layer and the config. The stream is not
// checked here: the cache bounds and hashes it, and counts a mismatch.
func (s *CacheSource) Fetch(ctx context.Context, r nodecache.Ref, blob nodecache.Descriptor) (io.ReadCloser, error) {
	ref, err := cacheRef(r)
	if err != nil {
		return nil, err
	}
	repo, err := s.Client.repo(ctx, ref)
	if err != nil {
		return nil, err
	}
	d, err := digest.Parse(blob.Digest)
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
