package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/opencontainers/go-digest"
)

func (r *Registry) serveBlob(w http.ResponseWriter, req *http.Request, p request) error {
	d, err := parseDigest(p.ref)
	if err != nil {
		return invalidDigest(p.ref, err)
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		return r.getBlob(w, req, p.repo, d)
	case http.MethodDelete:
		return r.deleteBlob(w, req, p.repo, d)
	}
	return methodNotAllowed(req, "GET, HEAD, DELETE")
}

func invalidDigest(s string, err error) *apiError {
	return newError(http.StatusBadRequest, codeDigestInvalid,
		"invalid digest %q (%v): want <algorithm>:<hex>, algorithm sha256 or sha512", clip(s), err).
		withDetail(map[string]string{"digest": clip(s)})
}

func blobUnknown(repo string, d digest.Digest) *apiError {
	return newError(http.StatusNotFound, codeBlobUnknown, "blob %s is not in repository %s", d, repo).
		withDetail(map[string]string{"digest": d.String()})
}

// linkedSize returns the size of blob d if repo links it.
func (r *Registry) linkedSize(ctx context.Context, repo string, d digest.Digest) (int64, bool, error) {
	e, err := r.st.links.Get(ctx, blobKey(repo, d))
	if notFound(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("get link %s@%s: %w", repo, d, err)
	}
	size, err := strconv.ParseInt(string(e.Value()), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("link %s@%s holds %q, not a size", repo, d, e.Value())
	}
	return size, true, nil
}

// parseRange interprets a single "bytes=" range against size. A header it does not
// understand (or several ranges) means the whole blob, as HTTP allows.
func parseRange(header string, size int64) (start, length int64, partial, satisfiable bool) {
	spec, ok := strings.CutPrefix(header, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return 0, size, false, true
	}
	a, b, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return 0, size, false, true
	}
	if a == "" { // suffix: the last b bytes
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 0 {
			return 0, size, false, true
		}
		if n == 0 || size == 0 {
			return 0, 0, false, false
		}
		n = min(n, size)
		return size - n, n, true, true
	}
	first, err := strconv.ParseInt(a, 10, 64)
	if err != nil || first < 0 {
		return 0, size, false, true
	}
	last := size - 1
	if b != "" {
		if last, err = strconv.ParseInt(b, 10, 64); err != nil {
			return 0, size, false, true
		}
		if last < first {
			return 0, 0, false, false
		}
		last = min(last, size-1)
	}
	if first >= size {
		return 0, 0, false, false
	}
	return first, last - first + 1, true, true
}

func (r *Registry) deleteBlob(w http.ResponseWriter, req *http.Request, repo string, d digest.Digest) error {
	ctx := req.Context()
	_, ok, err := r.linkedSize(ctx, repo, d)
	if err != nil {
		return err
	}
	if !ok {
		return blobUnknown(repo, d)
	}
	if err := r.st.links.Delete(ctx, blobKey(repo, d)); err != nil {
		return fmt.Errorf("unlink %s@%s: %w", repo, d, err)
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

var uploadIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

func newUploadID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// chunkName names an upload chunk object. The random suffix keeps two requests racing
// on one session from writing the same object; the session's compare-and-swap then
// keeps one of them.
func chunkName(id string, n int) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("uploads.%s.%d.%s", id, n, hex.EncodeToString(b[:]))
}

func (r *Registry) serveUpload(w http.ResponseWriter, req *http.Request, p request) error {
	if p.ref == "" {
		if req.Method != http.MethodPost {
			return methodNotAllowed(req, "POST")
		}
		return r.startUpload(w, req, p.repo)
	}
	switch req.Method {
	case http.MethodGet:
		sess, _, err := r.loadSession(req.Context(), p.repo, p.ref)
		if err != nil {
			return err
		}
		uploadHeaders(w, p.repo, p.ref, sess.Size)
		w.WriteHeader(http.StatusNoContent)
		return nil
	case http.MethodPatch:
		return r.patchUpload(w, req, p.repo, p.ref)
	case http.MethodPut:
		return r.finishUpload(w, req, p.repo, p.ref)
	case http.MethodDelete:
		return r.cancelUpload(w, req, p.repo, p.ref)
	}
	return methodNotAllowed(req, "GET, PATCH, PUT, DELETE")
}

func uploadUnknown(id string) *apiError {
	return newError(http.StatusNotFound, codeBlobUploadUnknown,
		"upload %q is unknown: it finished, was cancelled or expired; start a new one with POST", clip(id))
}

// uploadUnknownFailed counts a chunk or finalize for a session that does not exist.
func (r *Registry) uploadUnknownFailed(err error) {
	var e *apiError
	if errors.As(err, &e) && e.Code == codeBlobUploadUnknown {
		r.metrics.uploadFailed(failUnknown)
	}
}

func uploadHeaders(w http.ResponseWriter, repo, id string, size int64) {
	h := w.Header()
	h.Set("Location", "/v2/"+repo+"/blobs/uploads/"+id)
	h.Set("Range", uploadRange(size))
	h.Set("Docker-Upload-UUID", id)
	h.Set("Content-Length", "0")
}

// uploadRange is the Range header of a session holding size bytes ("0-0" when empty,
// as clients expect).
func uploadRange(size int64) string {
	return "0-" + itoa(max(size-1, 0))
}

func blobCreated(w http.ResponseWriter, repo string, d digest.Digest) {
	h := w.Header()
	h.Set("Location", "/v2/"+repo+"/blobs/"+d.String())
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

func (r *Registry) startUpload(w http.ResponseWriter, req *http.Request, repo string) error {
	ctx := req.Context()
	q := req.URL.Query()
	if m := q.Get("mount"); m != "" {
		d, err := parseDigest(m)
		if err != nil {
			return invalidDigest(m, err)
		}
		ok, err := r.mount(ctx, repo, q.Get("from"), d)
		if err != nil {
			return err
		}
		if ok {
			blobCreated(w, repo, d)
			return nil
		}
		// Not mountable: open a session, as the spec asks.
	}
	if ds := q.Get("digest"); ds != "" {
		d, err := parseDigest(ds)
		if err != nil {
			return invalidDigest(ds, err)
		}
		if err := r.commit(ctx, repo, d, &uploadSession{}, req); err != nil {
			return err
		}
		blobCreated(w, repo, d)
		return nil
	}
	id := newUploadID()
	now := time.Now().UTC()
	sess := uploadSession{Repo: repo, Started: now, Updated: now}
	b, _ := json.Marshal(sess)
	if _, err := r.st.uploads.Create(ctx, id, b); err != nil {
		return fmt.Errorf("create upload session: %w", err)
	}
	uploadHeaders(w, repo, id, 0)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// mount links blob d into repo from repository from, or from any repository when from
// is empty, and reports whether it could.
func (r *Registry) mount(ctx context.Context, repo, from string, d digest.Digest) (bool, error) {
	var size int64
	if from != "" {
		if !validRepo(from) {
			return false, nil
		}
		s, ok, err := r.linkedSize(ctx, from, d)
		if err != nil || !ok {
			return false, err
		}
		size = s
	} else {
		info, err := r.st.blobs.GetInfo(ctx, objectName(d))
		if notFound(err) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("stat blob %s: %w", d, err)
		}
		size = int64(info.Size)
	}
	if _, err := r.st.links.Put(ctx, blobKey(repo, d), []byte(itoa(size))); err != nil {
		return false, fmt.Errorf("link %s@%s: %w", repo, d, err)
	}
	return true, nil
}

func (r *Registry) loadSession(ctx context.Context, repo, id string) (*uploadSession, uint64, error) {
	if !uploadIDPattern.MatchString(id) {
		return nil, 0, uploadUnknown(id)
	}
	e, err := r.st.uploads.Get(ctx, id)
	if notFound(err) {
		return nil, 0, uploadUnknown(id)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("get upload %s: %w", id, err)
	}
	var s uploadSession
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		return nil, 0, fmt.Errorf("decode upload %s: %w", id, err)
	}
	if s.Repo != repo {
		return nil, 0, uploadUnknown(id)
	}
	return &s, e.Revision(), nil
}

// parseContentRange reads "<start>-<end>" (or "bytes <start>-<end>/<total>").
func parseContentRange(h string) (start, end int64, present bool, err error) {
	if h == "" {
		return 0, 0, false, nil
	}
	s := strings.TrimPrefix(h, "bytes ")
	s, _, _ = strings.Cut(s, "/")
	a, b, ok := strings.Cut(s, "-")
	if ok {
		start, err = strconv.ParseInt(a, 10, 64)
		if err == nil {
			end, err = strconv.ParseInt(b, 10, 64)
		}
	}
	if !ok || err != nil || start < 0 || end < start {
		return 0, 0, true, newError(http.StatusBadRequest, codeBlobUploadInvalid,
			"invalid Content-Range %q: want <start>-<end>, inclusive byte offsets", clip(h))
	}
	return start, end, true, nil
}

// checkRange verifies that a chunk with the request's Content-Range continues at the
// session's offset and returns its declared length (-1 without a Content-Range).
func (r *Registry) checkRange(req *http.Request, repo, id string, sess *uploadSession) (int64, error) {
	start, end, present, err := parseContentRange(req.Header.Get("Content-Range"))
	if err != nil {
		r.metrics.uploadFailed(failRange)
		return 0, err
	}
	if !present {
		return -1, nil
	}
	if start != sess.Size {
		r.metrics.uploadFailed(failRange)
		e := newError(http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid,
			"chunk starts at %d but the upload holds %d bytes: send the chunk starting at %d", start, sess.Size, sess.Size)
		e.header = http.Header{
			"Location":           {"/v2/" + repo + "/blobs/uploads/" + id},
			"Range":              {uploadRange(sess.Size)},
			"Docker-Upload-Uuid": {id},
		}
		return 0, e
	}
	n := end - start + 1
	if req.ContentLength >= 0 && req.ContentLength != n {
		r.metrics.uploadFailed(failRange)
		return 0, newError(http.StatusBadRequest, codeBlobUploadInvalid,
			"Content-Range %q declares %d bytes but Content-Length is %d", req.Header.Get("Content-Range"), n, req.ContentLength)
	}
	return n, nil
}

func (r *Registry) patchUpload(w http.ResponseWriter, req *http.Request, repo, id string) error {
	ctx := req.Context()
	sess, rev, err := r.loadSession(ctx, repo, id)
	if err != nil {
		r.uploadUnknownFailed(err)
		return err
	}
	want, err := r.checkRange(req, repo, id, sess)
	if err != nil {
		return err
	}
	h, err := sessionHash(sess)
	if err != nil {
		return err
	}
	c, err := r.spool(ctx, id, sess, req, want, h)
	if err != nil {
		return err
	}
	if c.Size > 0 {
		state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			r.deleteChunks([]uploadChunk{c})
			return fmt.Errorf("save hash state: %w", err)
		}
		sess.Chunks = append(sess.Chunks, c)
		sess.Size += c.Size
		sess.SHA256 = state
	}
	sess.Updated = time.Now().UTC()
	b, _ := json.Marshal(sess)
	if _, err := r.st.uploads.Update(ctx, id, b, rev); err != nil {
		r.deleteChunks([]uploadChunk{c})
		if conflict(err) {
			r.metrics.uploadFailed(failConflict)
			return newError(http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid,
				"upload %s changed while this chunk was written (another request on the same session?); check its status with GET", id)
		}
		if notFound(err) {
			return uploadUnknown(id)
		}
		r.metrics.uploadFailed(failStorage)
		return fmt.Errorf("update upload %s: %w", id, err)
	}
	uploadHeaders(w, repo, id, sess.Size)
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// sessionHash returns the SHA-256 over the bytes the session holds, resumed from its
// saved state.
func sessionHash(sess *uploadSession) (hash.Hash, error) {
	h := sha256.New()
	if sess.SHA256 != nil {
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(sess.SHA256); err != nil {
			return nil, fmt.Errorf("restore hash state: %w", err)
		}
	}
	return h, nil
}

// bodyReader remembers the first error reading the request body, to tell a client's
// broken upload from a storage failure.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// spool writes the request body to a new chunk object of session id, feeding h, and
// checks it against want (-1: any length). An empty body gives a zero chunk and no object.
func (r *Registry) spool(ctx context.Context, id string, sess *uploadSession, req *http.Request, want int64, h hash.Hash) (uploadChunk, error) {
	allowed := r.cfg.MaxBlobBytes - sess.Size
	if req.ContentLength > allowed {
		r.metrics.uploadFailed(failSize)
		return uploadChunk{}, r.tooLarge(sess.Size + req.ContentLength)
	}
	body := &bodyReader{r: &limitReader{r: req.Body, n: allowed}}
	name := chunkName(id, len(sess.Chunks))
	info, err := r.st.objects.put(writeContext(ctx), name, io.TeeReader(body, h), nil)
	if err != nil {
		return uploadChunk{}, r.bodyError(body.err, err, sess.Size)
	}
	c := uploadChunk{Object: name, Size: int64(info.Size)}
	if c.Size == 0 {
		r.deleteChunks([]uploadChunk{c})
		c.Object = ""
	}
	if want >= 0 && c.Size != want {
		r.deleteChunks([]uploadChunk{c})
		r.metrics.uploadFailed(failBody)
		return uploadChunk{}, newError(http.StatusBadRequest, codeBlobUploadInvalid,
			"the chunk has %d bytes but its Content-Range declares %d", c.Size, want)
	}
	return c, nil
}

func (r *Registry) tooLarge(size int64) *apiError {
	return newError(http.StatusRequestEntityTooLarge, codeSizeInvalid,
		"the blob would be %d bytes or more; this registry takes blobs up to %d bytes", size, r.cfg.MaxBlobBytes)
}

// bodyError classifies a failed write: the client's body (too large, cut short) or storage.
func (r *Registry) bodyError(bodyErr, err error, have int64) error {
	switch {
	case errors.Is(bodyErr, errTooLarge):
		r.metrics.uploadFailed(failSize)
		return r.tooLarge(r.cfg.MaxBlobBytes + 1)
	case bodyErr != nil:
		r.metrics.uploadFailed(failBody)
		return newError(http.StatusBadRequest, codeBlobUploadInvalid,
			"the request body could not be read (%v); nothing was stored, the upload still holds %d bytes", bodyErr, have)
	}
	r.metrics.uploadFailed(failStorage)
	return fmt.Errorf("write upload chunk: %w", err)
}

func (r *Registry) finishUpload(w http.ResponseWriter, req *http.Request, repo, id string) error {
	ctx := req.Context()
	ds := req.URL.Query().Get("digest")
	d, err := parseDigest(ds)
	if err != nil {
		r.metrics.uploadFailed(failDigest)
		return invalidDigest(ds, err)
	}
	sess, rev, err := r.loadSession(ctx, repo, id)
	if err != nil {
		r.uploadUnknownFailed(err)
		return err
	}
	if _, err := r.checkRange(req, repo, id, sess); err != nil {
		return err
	}
	// Claim the session: whatever happens next, it ends here, and a request racing on
	// it finds it gone. Its chunks go when this request is done.
	if err := r.st.uploads.Delete(ctx, id, jetstream.LastRevision(rev)); err != nil {
		if conflict(err) {
			r.metrics.uploadFailed(failConflict)
			return newError(http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid,
				"upload %s changed while it was being finished (another request on the same session?)", id)
		}
		return fmt.Errorf("claim upload %s: %w", id, err)
	}
	if err := r.commit(ctx, repo, d, sess, req); err != nil {
		if final(err) {
			r.deleteChunks(sess.Chunks)
		} else {
			r.restoreSession(id, sess)
		}
		return err
	}
	r.deleteChunks(sess.Chunks)
	blobCreated(w, repo, d)
	return nil
}

// final reports whether a failed finalize ends its upload session: the bytes are
// wrong (digest, size). After anything else (storage trouble, a body cut short) the
// session is restored, so the client's retry of the same PUT finds it; ending it
// there made the retry fail with a misleading "upload … is unknown".
func final(err error) bool {
	var e *apiError
	return errors.As(err, &e) && (e.Code == codeDigestInvalid || e.Code == codeSizeInvalid)
}

// restoreSession puts back a session claimed by a finalize that failed midway.
func (r *Registry) restoreSession(id string, sess *uploadSession) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sess.Updated = time.Now().UTC()
	b, _ := json.Marshal(sess)
	if _, err := r.st.uploads.Create(ctx, id, b); err != nil {
		// Its chunks stay until the sweep finds them unowned.
		r.logger.Warn("registry: restore upload session after a failed finalize", "upload", id, "error", err)
	}
}

// commit verifies that the session's bytes plus the request body hash to d, writes blob
// d and links it into repo, in one pass: the chunks and the body stream into the blob
// object, and the object is published (made visible) only once the digest is verified;
// otherwise what was written is purged. Memory stays bounded whatever the size.
// A blob already stored with the expected size is not written again, only the body
// is checked, unless a read found it corrupt.
func (r *Registry) commit(ctx context.Context, repo string, d digest.Digest, sess *uploadSession, req *http.Request) error {
	// A sha256 session carries its hash state: only the body is still to be hashed.
	resumed := d.Algorithm() == digest.SHA256 && (sess.SHA256 != nil || len(sess.Chunks) == 0)
	var h hash.Hash
	if resumed {
		var err error
		if h, err = sessionHash(sess); err != nil {
			return err
		}
	} else {
		h = d.Algorithm().Hash()
	}
	allowed := r.cfg.MaxBlobBytes - sess.Size
	if req.ContentLength > allowed {
		r.metrics.uploadFailed(failSize)
		return r.tooLarge(sess.Size + req.ContentLength)
	}
	var body *bodyReader
	var bodyBytes io.Reader = bytes.NewReader(nil)
	if req.ContentLength != 0 && req.Body != nil {
		body = &bodyReader{r: &limitReader{r: req.Body, n: allowed}}
		bodyBytes = body
	}
	counted := &countingReader{r: bodyBytes}
	chunks := &chunkReader{ctx: ctx, obs: r.st.objects, chunks: sess.Chunks}
	var src io.Reader
	if resumed {
		src = io.MultiReader(chunks, io.TeeReader(counted, h))
	} else {
		src = io.TeeReader(io.MultiReader(chunks, counted), h)
	}
	verify := func() error {
		size := sess.Size + counted.n
		if got := digest.NewDigest(d.Algorithm(), h); got != d {
			r.metrics.uploadFailed(failDigest)
			return newError(http.StatusBadRequest, codeDigestInvalid,
				"the %d bytes uploaded hash to %s, not %s; nothing was stored, start the upload again", size, got, d).
				withDetail(map[string]string{"expected": d.String(), "actual": got.String()})
		}
		return nil
	}
	readErr := func(err error) error {
		var e *apiError
		if errors.As(err, &e) {
			return e
		}
		var bodyErr error
		if body != nil {
			bodyErr = body.err
		}
		return r.bodyError(bodyErr, err, sess.Size)
	}
	name := objectName(d)
	info, err := r.st.blobs.GetInfo(ctx, name)
	if err != nil && !notFound(err) {
		return fmt.Errorf("stat blob %s: %w", d, err)
	}
	if err == nil && req.ContentLength >= 0 && int64(info.Size) == sess.Size+req.ContentLength && !r.suspect.has(d) {
		// Already stored (content-addressed): check the bytes, write nothing.
		if !resumed {
			bodyBytes = src
		} else {
			bodyBytes = io.TeeReader(counted, h)
		}
		if _, err := io.Copy(io.Discard, bodyBytes); err != nil {
			return readErr(err)
		}
		if err := verify(); err != nil {
			return err
		}
	} else {
		if _, err := r.st.objects.put(writeContext(ctx), name, src, verify); err != nil {
			return readErr(err)
		}
		r.suspect.clear(d)
	}
	size := sess.Size + counted.n
	if _, err := r.st.links.Put(ctx, blobKey(repo, d), []byte(itoa(size))); err != nil {
		return fmt.Errorf("link %s@%s: %w", repo, d, err)
	}
	return nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// writeContext is the context of an object store write: not cancelled with the
// request, because a Put cancelled midway cannot purge the chunks it already stored
// (they would stay in the stream, invisible, for good). A client that goes away still
// ends the write: its body read fails, and Put purges what it wrote.
func writeContext(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// copyChunks writes the chunks' bytes, in order, to w.
func (r *Registry) copyChunks(ctx context.Context, w io.Writer, chunks []uploadChunk) error {
	if _, err := io.Copy(w, &chunkReader{ctx: ctx, obs: r.st.objects, chunks: chunks}); err != nil {
		return fmt.Errorf("read upload chunks: %w", err)
	}
	return nil
}

// chunkReader reads upload chunks one after the other.
type chunkReader struct {
	ctx    context.Context
	obs    *objectStore
	chunks []uploadChunk
	cur    io.ReadCloser
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for {
		if c.cur == nil {
			if len(c.chunks) == 0 {
				return 0, io.EOF
			}
			obj, err := c.obs.open(c.ctx, c.chunks[0].Object)
			if err != nil {
				return 0, fmt.Errorf("open chunk %s: %w", c.chunks[0].Object, err)
			}
			c.cur, c.chunks = obj, c.chunks[1:]
		}
		n, err := c.cur.Read(p)
		if err == io.EOF {
			_ = c.cur.Close()
			c.cur = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (r *Registry) cancelUpload(w http.ResponseWriter, req *http.Request, repo, id string) error {
	ctx := req.Context()
	sess, rev, err := r.loadSession(ctx, repo, id)
	if err != nil {
		return err
	}
	if err := r.st.uploads.Delete(ctx, id, jetstream.LastRevision(rev)); err != nil && !notFound(err) {
		if conflict(err) {
			return newError(http.StatusConflict, codeBlobUploadInvalid, "upload %s changed while it was being cancelled; retry", id)
		}
		return fmt.Errorf("delete upload %s: %w", id, err)
	}
	r.deleteChunks(sess.Chunks)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deleteChunks removes chunk objects, best effort: what it misses, the sweep finds.
func (r *Registry) deleteChunks(chunks []uploadChunk) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range chunks {
		if c.Object == "" {
			continue
		}
		if err := r.st.blobs.Delete(ctx, c.Object); err != nil && !notFound(err) {
			r.logger.Warn("registry: delete upload chunk", "object", c.Object, "error", err)
		}
	}
}

// sweepLoop runs the upload sweep until ctx is done.
func (r *Registry) sweepLoop(ctx context.Context) {
	defer close(r.done)
	every := min(max(r.cfg.UploadExpiry/4, time.Second), 5*time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if _, err := r.sweep(ctx, now); err != nil && ctx.Err() == nil {
				r.logger.Warn("registry: upload sweep", "error", err)
			}
		}
	}
}

// sweep deletes upload sessions idle for longer than UploadExpiry at now, and chunk
// objects no session owns (left by a crash) that are as old. It returns the number of
// sessions deleted.
func (r *Registry) sweep(ctx context.Context, now time.Time) (int, error) {
	entries, err := scan(ctx, r.st.uploads, ">")
	if err != nil {
		return 0, err
	}
	live := map[string]bool{}
	expired := 0
	for _, e := range entries {
		var s uploadSession
		if err := json.Unmarshal(e.Value(), &s); err != nil || now.Sub(s.Updated) <= r.cfg.UploadExpiry {
			live[e.Key()] = true
			continue
		}
		if err := r.st.uploads.Delete(ctx, e.Key(), jetstream.LastRevision(e.Revision())); err != nil {
			live[e.Key()] = true // in use again, or storage trouble: next time
			continue
		}
		r.deleteChunks(s.Chunks)
		r.metrics.uploadFailed(failExpired)
		expired++
	}
	objs, err := r.st.blobs.List(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
		return expired, fmt.Errorf("list objects: %w", err)
	}
	for _, o := range objs {
		rest, ok := strings.CutPrefix(o.Name, "uploads.")
		if !ok {
			continue
		}
		id, _, _ := strings.Cut(rest, ".")
		if live[id] || now.Sub(o.ModTime) <= r.cfg.UploadExpiry {
			continue
		}
		if err := r.st.blobs.Delete(ctx, o.Name); err != nil && !notFound(err) {
			return expired, fmt.Errorf("delete orphan chunk %s: %w", o.Name, err)
		}
	}
	return expired, nil
}
