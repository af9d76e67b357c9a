package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Object reads. nats.go's ObjectStore.Get reads through a push consumer that the
// server fills as fast as it can: a large object piles up in the client's pending
// buffer (a 160 MiB blob held ~150 MiB of heap). open pulls the chunks through an
// ordered pull consumer a few at a time, so a read holds at most objectReadAhead
// chunks whatever the object's size.
const (
	objectReadAhead = 8
	// objectStall is how long a read waits for the next chunk before giving up.
	objectStall = 30 * time.Second
)

// errStalled is a read whose next chunk did not come in time.
var errStalled = errors.New("no chunk arrived in time")

// open reads object name. Its Read ends with io.EOF after the chunk the stream says
// is the last one of the object, whatever the object's metadata says the size is:
// the caller checks the bytes (see verifyingReader).
func (o *objectStore) open(ctx context.Context, name string) (io.ReadCloser, error) {
	info, err := o.info(ctx, name)
	if err != nil {
		return nil, err
	}
	if info.Deleted {
		return nil, jetstream.ErrObjectNotFound
	}
	if info.Size == 0 {
		return io.NopCloser(eofReader{}), nil
	}
	cons, err := o.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{"$O." + o.bucket + ".C." + info.NUID},
		InactiveThreshold: time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("read object %s: %w", name, err)
	}
	ci, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("read object %s: %w", name, err)
	}
	r := &objectReader{name: name, cons: cons, stream: o.stream}
	if ci.NumPending == 0 {
		// Every chunk is gone: nothing would ever arrive.
		r.last = true
		return r, nil
	}
	if r.it, err = cons.Messages(jetstream.PullMaxMessages(objectReadAhead)); err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("read object %s: %w", name, err)
	}
	return r, nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// objectReader reads an object's chunks in order.
type objectReader struct {
	name   string
	cons   jetstream.Consumer
	stream jetstream.Stream
	it     jetstream.MessagesContext // nil when there is nothing to read
	cur    []byte                    // the unread rest of the current chunk
	last   bool                      // cur is the last chunk
	err    error                     // sticky
}

func (r *objectReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.last {
			r.err = io.EOF
			return 0, io.EOF
		}
		m, err := r.it.Next(jetstream.NextMaxWait(objectStall))
		if err != nil {
			if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("%w after %s", errStalled, objectStall)
			}
			r.err = fmt.Errorf("read object %s: %w", r.name, err)
			return 0, r.err
		}
		meta, err := m.Metadata()
		if err != nil {
			r.err = fmt.Errorf("read object %s: %w", r.name, err)
			return 0, r.err
		}
		r.cur, r.last = m.Data(), meta.NumPending == 0
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// Close stops the read and deletes its consumer now rather than when the server
// notices it idle, so many reads do not leave many consumers behind.
func (r *objectReader) Close() error {
	if r.it != nil {
		r.it.Stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.stream.DeleteConsumer(ctx, r.cons.CachedInfo().Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("delete read consumer of %s: %w", r.name, err)
	}
	return nil
}
