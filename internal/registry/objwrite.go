package registry

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Object writes. nats.go's ObjectStore.Put publishes every chunk asynchronously with
// up to 4,000 acks pending and a 5 s timeout on each: a 200 MB body puts ~1,600
// chunks (200 MB) in flight at once, so the last acks time out behind the first
// fsyncs, or the stream's ingest queue (128 MiB) overflows and JetStream answers 429.
// objectStore writes the same format (chunks on $O.<bucket>.C.<nuid>, then a rollup
// meta message on $O.<bucket>.M.<name>) with a bounded window of chunks in flight,
// so memory and the server's queue stay bounded whatever the object's size, and
// resends what JetStream refused with 429 after a back-off.
const (
	// objectChunkSize is the payload of one chunk message: large enough that a
	// synced store does few fsyncs per megabyte, well under NATS's 1 MiB message cap.
	objectChunkSize = 256 << 10
	// objectWindow chunks (2 MiB) may await their ack at once per write.
	objectWindow = 8
	// objectAckWait is how long one chunk's ack may take. With a window of eight it is
	// only ever exceeded when storage is stuck, never by a long queue of our own.
	objectAckWait = 30 * time.Second
	// objectRetries bounds the resends after 429s in a row, with no chunk stored in
	// between (back-off doubling from 50 ms to 2 s: about half a minute of refusals
	// before the write fails).
	objectRetries = 20
)

// errAmbiguousAck is a chunk ack that never came: the chunk may or may not be
// stored, so it can be neither resent (a duplicate) nor trusted (a gap).
var errAmbiguousAck = errors.New("no ack for an object chunk")

// objectStore writes objects into one object store bucket.
type objectStore struct {
	bucket string
	js     jetstream.JetStream // a publisher of its own, with objectAckWait
	stream jetstream.Stream    // OBJ_<bucket>, to drop refused chunks' successors
	info   func(ctx context.Context, name string) (*jetstream.ObjectInfo, error)
	resent atomic.Int64 // chunks sent again after a 429, for tests
}

func newObjectStore(ctx context.Context, js jetstream.JetStream, bucket string, obs jetstream.ObjectStore) (*objectStore, error) {
	pub, err := jetstream.New(js.Conn(), jetstream.WithPublishAsyncTimeout(objectAckWait),
		jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return nil, fmt.Errorf("object publisher: %w", err)
	}
	st, err := js.Stream(ctx, "OBJ_"+bucket)
	if err != nil {
		return nil, fmt.Errorf("open object stream of %s: %w", bucket, err)
	}
	return &objectStore{bucket: bucket, js: pub, stream: st,
		info: func(ctx context.Context, name string) (*jetstream.ObjectInfo, error) {
			return obs.GetInfo(ctx, name, jetstream.GetObjectInfoShowDeleted())
		}}, nil
}

// inflight is a chunk published and not yet acknowledged.
type inflight struct {
	data []byte
	fut  jetstream.PubAckFuture
}

// put stores r's bytes as object name, replacing any earlier version once the new
// one is complete. check, when not nil, is asked after the last chunk is stored and
// before the object is published: an error from it (returned as it is) leaves no
// trace. On failure put purges the chunks it wrote and returns r's error when reading
// r failed. Memory: objectWindow+1 chunk buffers.
func (w *objectStore) put(ctx context.Context, name string, r io.Reader, check func() error) (*jetstream.ObjectInfo, error) {
	old, err := w.info(ctx, name)
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("stat object %s: %w", name, err)
	}
	nuid := newUploadID()
	subj := "$O." + w.bucket + ".C." + nuid
	purge := func() {
		// Not ctx: a cancelled write must still clean up after itself.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = w.stream.Purge(pctx, jetstream.WithPurgeSubject(subj))
	}
	h := sha256.New()
	var (
		q      []inflight
		free   [][]byte
		size   uint64
		chunks uint32
		tries  int
	)
	for eof := false; !eof; {
		var buf []byte
		if n := len(free); n > 0 {
			buf, free = free[n-1], free[:n-1]
		} else {
			buf = make([]byte, objectChunkSize)
		}
		n, rerr := fill(r, buf)
		switch {
		case rerr == io.EOF:
			eof = true
		case rerr != nil:
			w.settle(q)
			purge()
			return nil, rerr
		}
		if n > 0 {
			h.Write(buf[:n])
			size += uint64(n)
			chunks++
			f, err := w.js.PublishMsgAsync(&nats.Msg{Subject: subj, Data: buf[:n]})
			if err != nil {
				w.settle(q)
				purge()
				return nil, fmt.Errorf("publish chunk of %s: %w", name, err)
			}
			q = append(q, inflight{data: buf[:n], fut: f})
		} else {
			free = append(free, buf)
		}
		// Wait for the oldest acks while the window is full, and for all at the end.
		for len(q) >= objectWindow || (eof && len(q) > 0) {
			_, err := wait(q[0].fut)
			if err == nil {
				free = append(free, q[0].data[:objectChunkSize])
				q = q[1:]
				tries = 0 // the bound is on refusals in a row, not over a long upload
				continue
			}
			if !tooManyRequests(err) || tries >= objectRetries {
				w.settle(q)
				purge()
				return nil, fmt.Errorf("write chunk of %s: %w", name, err)
			}
			tries++
			if q, err = w.resend(ctx, subj, q, tries); err != nil {
				purge()
				return nil, fmt.Errorf("write chunk of %s: %w", name, err)
			}
		}
	}
	if check != nil {
		if err := check(); err != nil {
			purge()
			return nil, err
		}
	}
	info := &jetstream.ObjectInfo{
		ObjectMeta: jetstream.ObjectMeta{Name: name, Opts: &jetstream.ObjectMetaOptions{ChunkSize: objectChunkSize}},
		Bucket:     w.bucket, NUID: nuid, Size: size, Chunks: chunks,
		Digest: "SHA-256=" + base64.URLEncoding.EncodeToString(h.Sum(nil)),
	}
	meta, err := json.Marshal(info)
	if err != nil {
		purge()
		return nil, fmt.Errorf("encode object info %s: %w", name, err)
	}
	m := &nats.Msg{Subject: "$O." + w.bucket + ".M." + base64.URLEncoding.EncodeToString([]byte(name)),
		Header: nats.Header{jetstream.MsgRollup: {jetstream.MsgRollupSubject}}, Data: meta}
	for try := 0; ; try++ {
		pctx, cancel := context.WithTimeout(ctx, objectAckWait)
		_, err = w.js.PublishMsg(pctx, m)
		cancel()
		if err == nil {
			break
		}
		if !tooManyRequests(err) || try >= objectRetries {
			purge()
			return nil, fmt.Errorf("write object info %s: %w", name, err)
		}
		if err := backoff(ctx, try+1); err != nil {
			purge()
			return nil, err
		}
	}
	info.ModTime = time.Now().UTC()
	if old != nil && !old.Deleted && old.NUID != "" {
		_ = w.stream.Purge(ctx, jetstream.WithPurgeSubject("$O."+w.bucket+".C."+old.NUID))
	}
	return info, nil
}

// resend is called when q[0] was refused with 429: it waits for every chunk in q,
// deletes those stored after q[0] (they would precede it in the object), backs off
// and publishes all of q again, in order.
func (w *objectStore) resend(ctx context.Context, subj string, q []inflight, try int) ([]inflight, error) {
	var stored []uint64
	for _, c := range q[1:] {
		ack, err := wait(c.fut)
		switch {
		case err == nil:
			stored = append(stored, ack.Sequence)
		case !tooManyRequests(err):
			return nil, err
		}
	}
	for _, seq := range stored {
		if err := w.stream.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, fmt.Errorf("drop chunk %d to resend in order: %w", seq, err)
		}
	}
	if err := backoff(ctx, try); err != nil {
		return nil, err
	}
	w.resent.Add(int64(len(q)))
	for i := range q {
		f, err := w.js.PublishMsgAsync(&nats.Msg{Subject: subj, Data: q[i].data})
		if err != nil {
			w.settle(q[:i])
			return nil, fmt.Errorf("publish chunk: %w", err)
		}
		q[i].fut = f
	}
	return q, nil
}

// settle waits for the chunks in q, so a purge after it removes them all.
func (w *objectStore) settle(q []inflight) {
	for _, c := range q {
		_, _ = wait(c.fut)
	}
}

// wait returns a chunk's ack or its error. The publisher's ack timeout bounds it.
func wait(f jetstream.PubAckFuture) (*jetstream.PubAck, error) {
	select {
	case ack := <-f.Ok():
		return ack, nil
	case err := <-f.Err():
		if errors.Is(err, jetstream.ErrAsyncPublishTimeout) {
			return nil, fmt.Errorf("%w: %w", errAmbiguousAck, err)
		}
		return nil, err
	}
}

// tooManyRequests reports JetStream refusing a message because the stream's ingest
// queue is full: nothing was stored, and the same message may be sent again.
func tooManyRequests(err error) bool {
	var e *jetstream.APIError
	return errors.As(err, &e) && e.Code == http.StatusTooManyRequests
}

// backoff waits 50 ms doubling with try, at most 2 s, or until ctx is done.
func backoff(ctx context.Context, try int) error {
	d := min(50*time.Millisecond<<min(try-1, 6), 2*time.Second)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fill reads into buf until it is full or r ends (io.EOF, with what was read). Unlike
// io.ReadFull it passes r's io.ErrUnexpectedEOF on: a body cut short is an error.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
