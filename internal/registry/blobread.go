package registry

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/opencontainers/go-digest"
)

// Blob reads are verified against the digest that names them, so a blob damaged in
// storage (a flipped bit in a file store block, a block truncated on recovery) is
// reported as corrupt instead of being served, or looking like a network glitch.
//
// A blob up to verifyFirstMax is read and checked before the status is sent: the
// client gets 500 BLOB_CORRUPT. A larger one is streamed, hashed on the way, with its
// last byte held back until the whole object has been read and checked: on a
// mismatch the connection is cut, so the client never holds a complete body of wrong
// bytes, and the blob is marked suspect; the next read of a suspect blob checks it
// whole before answering and so gets 500 BLOB_CORRUPT (the client's retry after a
// cut transfer learns the reason that way). A suspect mark is a hint, kept in memory:
// in a cluster a replica that has not yet caught up on a just-written object reads
// it short for a few milliseconds, which must not condemn it for good.
const verifyFirstMax = 4 << 20

// errCorrupt is a stored blob whose bytes do not match its digest or size.
var errCorrupt = errors.New("stored bytes do not match the blob's digest")

// maxSuspects bounds the suspect set; past it, the oldest marks are forgotten.
const maxSuspects = 1024

// suspects is the set of blobs a streamed read found corrupt.
type suspects struct {
	mu    sync.Mutex // leaf lock
	set   map[digest.Digest]struct{}
	order []digest.Digest
}

func (s *suspects) add(d digest.Digest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set == nil {
		s.set = map[digest.Digest]struct{}{}
	}
	if _, ok := s.set[d]; ok {
		return
	}
	if len(s.order) >= maxSuspects {
		delete(s.set, s.order[0])
		s.order = s.order[1:]
	}
	s.set[d] = struct{}{}
	s.order = append(s.order, d)
}

func (s *suspects) has(d digest.Digest) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.set[d]
	return ok
}

func (s *suspects) clear(d digest.Digest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.set[d]; !ok {
		return
	}
	delete(s.set, d)
	for i, x := range s.order {
		if x == d {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
}

// verifyingReader hashes what it reads and, at the end, fails with errCorrupt
// unless exactly size bytes hashing to want were read.
type verifyingReader struct {
	r    io.Reader
	want digest.Digest
	size int64
	h    hash.Hash
	n    int64
	err  error // sticky
}

func newVerifyingReader(r io.Reader, want digest.Digest, size int64) *verifyingReader {
	return &verifyingReader{r: r, want: want, size: size, h: want.Algorithm().Hash()}
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	switch {
	case v.n > v.size:
		v.err = fmt.Errorf("%w: more than the %d bytes recorded", errCorrupt, v.size)
	case errors.Is(err, jetstream.ErrDigestMismatch):
		// The object store's own checksum, over what was stored, failed.
		v.err = fmt.Errorf("%w: %w", errCorrupt, err)
	case err == io.EOF && v.n < v.size:
		v.err = fmt.Errorf("%w: %d of %d bytes", errCorrupt, v.n, v.size)
	case err == io.EOF:
		if got := digest.NewDigest(v.want.Algorithm(), v.h); got != v.want {
			v.err = fmt.Errorf("%w: the bytes hash to %s", errCorrupt, got)
		}
	case err != nil:
		v.err = err
	}
	if v.err != nil {
		return n, v.err
	}
	return n, err
}

// openObject opens blob d for reading; ctx bounds the whole read.
func (r *Registry) openObject(ctx context.Context, d digest.Digest) (io.ReadCloser, error) {
	return r.st.objects.open(ctx, objectName(d))
}

// readVerified reads the whole of blob d, which must be size bytes, into w (nil:
// discard) and checks it. A mismatch is retried a few times before it is believed
// (see store.getBytes); w must then take the bytes again from the start, so it is
// reset between attempts.
func (r *Registry) readVerified(ctx context.Context, d digest.Digest, size int64, w interface {
	io.Writer
	Reset()
}) error {
	var err error
	for attempt := range 4 {
		if err = r.readOnce(ctx, d, size, w); !errors.Is(err, errCorrupt) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt+1) * 20 * time.Millisecond):
		}
	}
	return err
}

func (r *Registry) readOnce(ctx context.Context, d digest.Digest, size int64, w interface {
	io.Writer
	Reset()
}) error {
	obj, err := r.openObject(ctx, d)
	if err != nil {
		return err
	}
	defer func() { _ = obj.Close() }()
	var dst io.Writer = io.Discard
	if w != nil {
		w.Reset()
		dst = w
	}
	_, err = io.Copy(dst, newVerifyingReader(obj, d, size))
	return err
}

// corrupt reports blob d as corrupt: a log line naming it, the metric, and the error
// the client gets.
func (r *Registry) corrupt(repo string, d digest.Digest, cause error) *apiError {
	r.logger.Error("registry: stored blob is corrupt; push it again to repair it",
		"repository", repo, "digest", d.String(), "error", cause)
	r.metrics.readFailed(failCorrupt)
	return newError(http.StatusInternalServerError, codeBlobCorrupt,
		"blob %s is corrupt in the registry's storage (%v); push it again to repair it", d, cause).
		withDetail(map[string]string{"digest": d.String()})
}

func (r *Registry) getBlob(w http.ResponseWriter, req *http.Request, repo string, d digest.Digest) error {
	ctx := req.Context()
	size, ok, err := r.linkedSize(ctx, repo, d)
	if err != nil {
		return err
	}
	if !ok {
		return blobUnknown(repo, d)
	}
	h := w.Header()
	if req.Method == http.MethodHead {
		h.Set("Docker-Content-Digest", d.String())
		h.Set("Accept-Ranges", "bytes")
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Length", itoa(size))
		w.WriteHeader(http.StatusOK)
		return nil
	}
	start, length, partial, satisfiable := parseRange(req.Header.Get("Range"), size)
	if !satisfiable {
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		return nil
	}
	status := http.StatusOK
	send := func() {
		h.Set("Docker-Content-Digest", d.String())
		h.Set("Accept-Ranges", "bytes")
		h.Set("Content-Type", "application/octet-stream")
		if partial {
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, size))
			status = http.StatusPartialContent
		}
		h.Set("Content-Length", itoa(length))
		w.WriteHeader(status)
	}
	if size <= verifyFirstMax || r.suspect.has(d) {
		var buf *byteBuffer
		if size <= verifyFirstMax {
			buf = &byteBuffer{}
		}
		var dst interface {
			io.Writer
			Reset()
		}
		if buf != nil {
			dst = buf
		}
		err := r.readVerified(ctx, d, size, dst)
		switch {
		case notFound(err):
			return blobUnknown(repo, d)
		case errors.Is(err, errCorrupt):
			r.suspect.add(d)
			return r.corrupt(repo, d, err)
		case err != nil:
			return fmt.Errorf("read blob %s: %w", d, err)
		}
		r.suspect.clear(d)
		if buf != nil {
			send()
			_, _ = w.Write(buf.b[start : start+length])
			return nil
		}
	}
	return r.streamBlob(w, req, repo, d, size, start, length, send)
}

// streamBlob sends bytes [start, start+length) of blob d, checking the whole blob on
// the way, and cuts the connection before the last byte when it is corrupt.
func (r *Registry) streamBlob(w http.ResponseWriter, req *http.Request, repo string, d digest.Digest, size, start, length int64, send func()) error {
	obj, err := r.openObject(req.Context(), d)
	if notFound(err) {
		return blobUnknown(repo, d)
	}
	if err != nil {
		return fmt.Errorf("get blob %s: %w", d, err)
	}
	defer func() { _ = obj.Close() }()
	vr := newVerifyingReader(obj, d, size)
	if _, err := io.CopyN(io.Discard, vr, start); err != nil {
		if errors.Is(err, errCorrupt) {
			r.suspect.add(d)
			return r.corrupt(repo, d, err)
		}
		return fmt.Errorf("read blob %s: %w", d, err)
	}
	send()
	var last [1]byte
	_, err = io.CopyN(w, vr, length-1)
	if err == nil {
		_, err = io.ReadFull(vr, last[:])
	}
	if err == nil {
		_, err = io.Copy(io.Discard, vr) // the rest, to check the digest
	}
	if err == nil {
		_, _ = w.Write(last[:])
		return nil
	}
	if req.Context().Err() != nil {
		return nil // the client went away
	}
	if errors.Is(err, errCorrupt) {
		r.suspect.add(d)
		_ = r.corrupt(repo, d, err)
	} else {
		r.logger.Error("registry: blob read failed mid-response", "digest", d.String(), "error", err)
	}
	// The status is sent: cut the response short, so the client sees a failed transfer
	// rather than a complete body.
	panic(http.ErrAbortHandler)
}

// byteBuffer collects a small blob; Reset lets a retried read start over.
type byteBuffer struct{ b []byte }

func (b *byteBuffer) Write(p []byte) (int, error) {
	b.b = append(b.b, p...)
	return len(p), nil
}

func (b *byteBuffer) Reset() { b.b = b.b[:0] }
