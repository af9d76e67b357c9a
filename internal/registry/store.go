package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/opencontainers/go-digest"

	"fermion.dev/fermion/internal/engine"
)

// Bucket names. The registry creates them when absent and leaves their contents alone
// otherwise, so every server of a cluster may call New.
const (
	bucketBlobs     = "fermion_blobs"
	bucketLinks     = "fermion_links"
	bucketManifests = "fermion_manifests"
	bucketTags      = "fermion_tags"
	bucketReferrers = "fermion_referrers"
	bucketUploads   = "fermion_uploads"
)

// inlineManifestMax is the largest manifest kept inside its KV record. NATS caps a
// message at 1 MiB by default and the record base64-encodes the bytes, so larger
// manifests (the spec asks registries to take at least 4 MiB) go to the object store
// under their digest, like blobs.
const inlineManifestMax = 256 << 10

// store is the registry's state in JetStream.
type store struct {
	blobs     jetstream.ObjectStore
	objects   *objectStore // reads and writes blobs with flow control (objwrite.go, objread.go)
	links     jetstream.KeyValue
	manifests jetstream.KeyValue
	tags      jetstream.KeyValue
	referrers jetstream.KeyValue
	uploads   jetstream.KeyValue
}

// openStore opens the buckets, creating those that are absent, all at once (replicas
// of a new cluster race to create them, and each race can cost an API timeout). An
// existing bucket keeps its settings, with a warning when they differ, except that a
// replicated one is made to read from its stream leader and is raised to the
// replication asked for (see engine.OpenKeyValue).
func openStore(ctx context.Context, js jetstream.JetStream, replicas int, logger *slog.Logger) (*store, error) {
	s := &store{}
	var err error
	s.blobs, err = engine.OpenObjectStore(ctx, js, jetstream.ObjectStoreConfig{
		Bucket:      bucketBlobs,
		Description: "Fermion registry: blobs and large manifests by digest, and upload chunks",
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	if s.objects, err = newObjectStore(ctx, js, bucketBlobs, s.blobs); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	warnSettings(ctx, logger, bucketBlobs, replicas, func(ctx context.Context) (int, error) {
		st, err := s.blobs.Status(ctx)
		if err != nil {
			return 0, err
		}
		return st.Replicas(), nil
	})
	buckets := []struct {
		kv   *jetstream.KeyValue
		name string
		desc string
	}{
		{&s.links, bucketLinks, "Fermion registry: blobs visible in each repository"},
		{&s.manifests, bucketManifests, "Fermion registry: manifests by repository and digest"},
		{&s.tags, bucketTags, "Fermion registry: tags by repository"},
		{&s.referrers, bucketReferrers, "Fermion registry: manifests by subject"},
		{&s.uploads, bucketUploads, "Fermion registry: blob upload sessions"},
	}
	errs := make([]error, len(buckets))
	var wg sync.WaitGroup
	for i, b := range buckets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kv, err := engine.OpenKeyValue(ctx, js, jetstream.KeyValueConfig{
				Bucket:      b.name,
				Description: b.desc,
				History:     1,
				Storage:     jetstream.FileStorage,
				Replicas:    replicas,
			})
			if err != nil {
				errs[i] = fmt.Errorf("registry: %w", err)
				return
			}
			warnSettings(ctx, logger, b.name, replicas, func(ctx context.Context) (int, error) {
				st, err := kv.Status(ctx)
				if err != nil {
					return 0, err
				}
				return st.Config().Replicas, nil
			})
			*b.kv = kv
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// warnSettings logs when an existing bucket's replication differs from the configured one.
func warnSettings(ctx context.Context, logger *slog.Logger, bucket string, want int, replicas func(context.Context) (int, error)) {
	have, err := replicas(ctx)
	if err != nil {
		logger.Warn("registry: read bucket status", "bucket", bucket, "error", err)
		return
	}
	if have != want {
		logger.Warn("registry: bucket exists with other settings; using it as it is",
			"bucket", bucket, "replicas", have, "configured_replicas", want)
	}
}

// scanTimeout bounds a listing when the caller's context has no deadline.
const scanTimeout = 30 * time.Second

// scan returns the live entries whose keys match filter (a NATS subject pattern);
// with jetstream.MetaOnly() among opts, without their values.
func scan(ctx context.Context, kv jetstream.KeyValue, filter string, opts ...jetstream.WatchOpt) ([]jetstream.KeyValueEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, scanTimeout)
	defer cancel()
	w, err := kv.WatchFiltered(ctx, []string{filter}, append([]jetstream.WatchOpt{jetstream.IgnoreDeletes()}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("list %s %s: %w", kv.Bucket(), filter, err)
	}
	defer func() { _ = w.Stop() }()
	var out []jetstream.KeyValueEntry
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("list %s %s: watcher closed", kv.Bucket(), filter)
			}
			if e == nil { // every current value has been delivered
				return out, nil
			}
			out = append(out, e)
		case <-ctx.Done():
			return nil, fmt.Errorf("list %s %s: %w", kv.Bucket(), filter, ctx.Err())
		}
	}
}

// exists reports whether any live key matches filter.
func exists(ctx context.Context, kv jetstream.KeyValue, filter string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, scanTimeout)
	defer cancel()
	w, err := kv.WatchFiltered(ctx, []string{filter}, jetstream.IgnoreDeletes(), jetstream.MetaOnly())
	if err != nil {
		return false, fmt.Errorf("list %s %s: %w", kv.Bucket(), filter, err)
	}
	defer func() { _ = w.Stop() }()
	select {
	case e, ok := <-w.Updates():
		if !ok {
			return false, fmt.Errorf("list %s %s: watcher closed", kv.Bucket(), filter)
		}
		return e != nil, nil
	case <-ctx.Done():
		return false, fmt.Errorf("list %s %s: %w", kv.Bucket(), filter, ctx.Err())
	}
}

func notFound(err error) bool {
	return errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) ||
		errors.Is(err, jetstream.ErrObjectNotFound)
}

// conflict reports a lost compare-and-swap.
func conflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}

// manifestRecord is the value of a fermion_manifests key.
type manifestRecord struct {
	MediaType string        `json:"mediaType"`
	Digest    digest.Digest `json:"digest"`
	Size      int64         `json:"size"`
	// Bytes holds the manifest when it is at most inlineManifestMax; otherwise it is
	// the object named by Digest in the blob store.
	Bytes        []byte            `json:"bytes,omitempty"`
	InObject     bool              `json:"inObject,omitempty"`
	Subject      digest.Digest     `json:"subject,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// uploadSession is the value of a fermion_uploads key.
type uploadSession struct {
	Repo    string        `json:"repo"`
	Size    int64         `json:"size"`
	Chunks  []uploadChunk `json:"chunks,omitempty"`
	Started time.Time     `json:"started"`
	Updated time.Time     `json:"updated"`
	// SHA256 is the marshaled SHA-256 state over the bytes received so far, so a sha256
	// finalize verifies the digest without reading the chunks twice.
	SHA256 []byte `json:"sha256,omitempty"`
}

type uploadChunk struct {
	Object string `json:"object"`
	Size   int64  `json:"size"`
}

// getBytes reads a whole object into one buffer of its recorded size (a module the
// scanner reads is held once, never in a growing buffer) and checks it against the
// SHA-256 the object store recorded when it was written: a mismatch is errCorrupt. In a
// cluster a replica may not yet hold all of a just-written object, and the read ends
// short; that heals within milliseconds, so a mismatch is retried a few times before
// it is believed.
func (s *store) getBytes(ctx context.Context, name string) ([]byte, error) {
	var err error
	for attempt := range 6 {
		var b []byte
		if b, err = s.readObject(ctx, name); err == nil || !errors.Is(err, errCorrupt) {
			return b, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Duration(attempt+1) * 20 * time.Millisecond):
		}
	}
	return nil, err
}

func (s *store) readObject(ctx context.Context, name string) ([]byte, error) {
	info, err := s.objects.info(ctx, name)
	if err != nil {
		return nil, err
	}
	if info.Deleted {
		return nil, jetstream.ErrObjectNotFound
	}
	want, err := jetstream.DecodeObjectDigest(info.Digest)
	if err != nil {
		return nil, fmt.Errorf("object %s: %w", name, err)
	}
	rc, err := s.objects.open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b := make([]byte, info.Size)
	if _, err := io.ReadFull(rc, b); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("object %s: %w: shorter than its %d bytes", name, errCorrupt, info.Size)
		}
		return nil, fmt.Errorf("read object %s: %w", name, err)
	}
	var one [1]byte
	if n, _ := rc.Read(one[:]); n > 0 {
		return nil, fmt.Errorf("object %s: %w: longer than its %d bytes", name, errCorrupt, info.Size)
	}
	if got := sha256.Sum256(b); !bytes.Equal(got[:], want) {
		return nil, fmt.Errorf("object %s: %w", name, errCorrupt)
	}
	return b, nil
}
