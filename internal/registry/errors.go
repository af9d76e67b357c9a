package registry

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Error codes of the distribution spec (and UNAVAILABLE/UNKNOWN, which registries use
// for server-side failures the spec has no code for). Clients match on these, never
// on messages.
const (
	codeBlobUnknown         = "BLOB_UNKNOWN"
	codeBlobCorrupt         = "BLOB_CORRUPT" // Fermion's: a stored blob no longer matches its digest
	codeBlobUploadInvalid   = "BLOB_UPLOAD_INVALID"
	codeBlobUploadUnknown   = "BLOB_UPLOAD_UNKNOWN"
	codeDigestInvalid       = "DIGEST_INVALID"
	codeManifestBlobUnknown = "MANIFEST_BLOB_UNKNOWN"
	codeManifestInvalid     = "MANIFEST_INVALID"
	codeManifestUnknown     = "MANIFEST_UNKNOWN"
	codeNameInvalid         = "NAME_INVALID"
	codeNameUnknown         = "NAME_UNKNOWN"
	codeSizeInvalid         = "SIZE_INVALID"
	codeTagInvalid          = "TAG_INVALID"
	codeUnauthorized        = "UNAUTHORIZED"
	codeDenied              = "DENIED"
	codeUnsupported         = "UNSUPPORTED"
	codeTooManyRequests     = "TOOMANYREQUESTS"
	codeUnavailable         = "UNAVAILABLE"
	codeUnknown             = "UNKNOWN"
)

// apiError is an error the client gets as {"errors":[{code,message,detail}]}.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
	// header is set on the response (Location and Range on a 416, for example).
	header http.Header
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func newError(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *apiError) withDetail(d any) *apiError {
	e.Detail = d
	return e
}

// maxEcho is the most of a client's input (a name, a tag, a path) an error message
// repeats; the rest is summarized by its length, so a 1 MB name gets a short 400
// rather than a 1 MB one.
const maxEcho = 64

// clip returns s for an error message: whole when short, else its first maxEcho
// bytes (cut at a character boundary) and its length.
func clip(s string) string {
	if len(s) <= maxEcho+16 {
		return s
	}
	cut := maxEcho
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", strings.ToValidUTF8(s[:cut], ""), len(s))
}

func writeError(w http.ResponseWriter, r *http.Request, e *apiError) {
	h := w.Header()
	for k, v := range e.header {
		h[k] = v
	}
	if e.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Basic realm="fermion"`)
	}
	body, _ := json.Marshal(struct {
		Errors []*apiError `json:"errors"`
	}{[]*apiError{e}})
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(e.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
