package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Object reads. nats.go's ObjectStore.Get reads through a push consumer that the
// server fills as fast as it can: a large object piles up in the client's buffers
// (a 160 MiB blob held ~150 MiB of heap), and a chunk the server cannot load (a
// damaged block) stalls the consumer until a timeout, after part of the body has
// been sent. open instead fetches the chunks one after the other with "next message
// on the object's subject" gets: one chunk in memory at a time whatever the size,
// and a chunk that cannot be read fails at once.
const objectGetWait = 30 * time.Second // one chunk's get, when the caller has no deadline

// open reads object name. Its Read ends with io.EOF after the last chunk the stream
// holds for the object, whatever its metadata says the size is: the caller checks
// the bytes (see verifyingReader).
func (o *objectStore) open(ctx context.Context, name string) (io.ReadCloser, error) {
	info, err := o.info(ctx, name)
	if err != nil {
		return nil, err
	}
	if info.Deleted || info.NUID == "" {
		return nil, jetstream.ErrObjectNotFound
	}
	return &objectReader{ctx: ctx, name: name, stream: o.stream, subj: "$O." + o.bucket + ".C." + info.NUID}, nil
}

// objectReader reads an object's chunks in order.
type objectReader struct {
	ctx    context.Context
	name   string
	stream jetstream.Stream
	subj   string
	next   uint64 // the stream sequence to look from
	cur    []byte // the unread rest of the current chunk
	err    error  // sticky
}

func (r *objectReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		ctx, cancel := r.ctx, context.CancelFunc(func() {})
		if _, ok := ctx.Deadline(); !ok {
			ctx, cancel = context.WithTimeout(ctx, objectGetWait)
		}
		m, err := r.stream.GetMsg(ctx, max(r.next, 1), jetstream.WithGetMsgSubject(r.subj))
		cancel()
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			r.err = io.EOF
		case err != nil:
			r.err = fmt.Errorf("read object %s at %d: %w", r.name, r.next, err)
		default:
			r.cur, r.next = m.Data, m.Sequence+1
		}
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

func (r *objectReader) Close() error { return nil }
