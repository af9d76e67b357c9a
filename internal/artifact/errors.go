package artifact

import "errors"

// Errors that say why an artifact was refused. Callers test them with errors.Is and
// count them with Reason; the wrapping error's text says what exactly was wrong.
var (
	// ErrNoSignature: the policy requires a signature and the artifact has none.
	ErrNoSignature = errors.New("artifact is not signed")
	// ErrUntrustedSignature: signatures exist but none verifies with a trusted key.
	ErrUntrustedSignature = errors.New("no signature verifies with a trusted key")
	// ErrDigestMismatch: content (a manifest, or what a trusted signature names) does
	// not match the digest it was expected to have.
	ErrDigestMismatch = errors.New("content does not match its digest")
	// ErrIdentityMismatch: a trusted signature names a different repository.
	ErrIdentityMismatch = errors.New("signature is for a different repository")
	// ErrTamperedLayer: a blob does not match the size or digest its descriptor names.
	ErrTamperedLayer = errors.New("blob does not match its descriptor")
	// ErrBadManifest: an OCI manifest, config or signature manifest is malformed or
	// not a Fermion artifact.
	ErrBadManifest = errors.New("invalid artifact")
)

// Reason maps an error from this package to a short, bounded label for metrics such as
// fermion_artifact_verify_failures_total{reason}: "unsigned", "untrusted_key",
// "digest_mismatch", "identity_mismatch", "tampered_layer", "bad_manifest", or "other"
// for anything else. It returns "" for nil.
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrNoSignature):
		return "unsigned"
	case errors.Is(err, ErrUntrustedSignature):
		return "untrusted_key"
	case errors.Is(err, ErrDigestMismatch):
		return "digest_mismatch"
	case errors.Is(err, ErrIdentityMismatch):
		return "identity_mismatch"
	case errors.Is(err, ErrTamperedLayer):
		return "tampered_layer"
	case errors.Is(err, ErrBadManifest):
		return "bad_manifest"
	default:
		return "other"
	}
}
