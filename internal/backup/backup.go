package backup

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Format is the archive's format version; Restore refuses others.
const Format = 1

const (
	headerName = "fermion-backup.json"
	endName    = "end.json"
)

// Header is the archive's first entry.
type Header struct {
	Format int       `json:"format"`
	Taken  time.Time `json:"taken"`
}

// Summary counts what an archive holds.
type Summary struct {
	Buckets int   `json:"buckets"` // KV buckets and object stores
	Keys    int   `json:"keys"`
	Objects int   `json:"objects"`
	Bytes   int64 `json:"bytes"` // values and object data
}

// String names each count before it ("buckets 3, keys 1"), so that no count needs a
// plural it may not take; the CLI prints summaries in words (v1.Count).
func (s Summary) String() string {
	return fmt.Sprintf("buckets %d, keys %d, objects %d, bytes %d", s.Buckets, s.Keys, s.Objects, s.Bytes)
}

type objectStoreConfig struct {
	Bucket      string                `json:"bucket"`
	Description string                `json:"description,omitempty"`
	TTL         time.Duration         `json:"ttl,omitempty"`
	Storage     jetstream.StorageType `json:"storage"`
}

// Write writes every KV bucket and object store of js to w as an archive, except the
// buckets skip names (transient state: leases, elections, upload sessions). now is the
// time recorded in the header.
func Write(ctx context.Context, js jetstream.JetStream, w io.Writer, now time.Time, skip func(bucket string) bool) (Summary, error) {
	var sum Summary
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	if err := writeJSON(tw, headerName, Header{Format: Format, Taken: now.UTC()}); err != nil {
		return sum, err
	}
	kvs, err := names(js.KeyValueStoreNames(ctx))
	if err != nil {
		return sum, fmt.Errorf("backup: list buckets: %w", err)
	}
	for _, name := range kvs {
		if skip != nil && skip(name) {
			continue
		}
		if err := writeKV(ctx, js, tw, name, &sum); err != nil {
			return sum, err
		}
	}
	objs, err := names(js.ObjectStoreNames(ctx))
	if err != nil {
		return sum, fmt.Errorf("backup: list object stores: %w", err)
	}
	for _, name := range objs {
		if skip != nil && skip(name) {
			continue
		}
		if err := writeObjects(ctx, js, tw, name, &sum); err != nil {
			return sum, err
		}
	}
	if err := writeJSON(tw, endName, sum); err != nil {
		return sum, err
	}
	if err := tw.Close(); err != nil {
		return sum, fmt.Errorf("backup: %w", err)
	}
	if err := gz.Close(); err != nil {
		return sum, fmt.Errorf("backup: %w", err)
	}
	return sum, nil
}

func writeKV(ctx context.Context, js jetstream.JetStream, tw *tar.Writer, name string, sum *Summary) error {
	kv, err := js.KeyValue(ctx, name)
	if err != nil {
		return fmt.Errorf("backup bucket %s: %w", name, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return fmt.Errorf("backup bucket %s: %w", name, err)
	}
	cfg := st.Config()
	cfg.Replicas = 0 // the target's choice
	if err := writeJSON(tw, "kv/"+name+"/bucket.json", cfg); err != nil {
		return err
	}
	sum.Buckets++
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("backup bucket %s: list keys: %w", name, err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted (or expired) since listed
		}
		if err != nil {
			return fmt.Errorf("backup bucket %s key %s: %w", name, k, err)
		}
		if err := writeFile(tw, "kv/"+name+"/keys/"+hex.EncodeToString([]byte(k)), e.Value()); err != nil {
			return err
		}
		sum.Keys++
		sum.Bytes += int64(len(e.Value()))
	}
	return nil
}

func writeObjects(ctx context.Context, js jetstream.JetStream, tw *tar.Writer, name string, sum *Summary) error {
	os, err := js.ObjectStore(ctx, name)
	if err != nil {
		return fmt.Errorf("backup object store %s: %w", name, err)
	}
	st, err := os.Status(ctx)
	if err != nil {
		return fmt.Errorf("backup object store %s: %w", name, err)
	}
	cfg := objectStoreConfig{Bucket: name, Description: st.Description(), TTL: st.TTL(), Storage: st.Storage()}
	if err := writeJSON(tw, "obj/"+name+"/bucket.json", cfg); err != nil {
		return err
	}
	sum.Buckets++
	infos, err := os.List(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
		return fmt.Errorf("backup object store %s: list: %w", name, err)
	}
	for _, info := range infos {
		if info.Deleted || (info.Opts != nil && info.Opts.Link != nil) {
			continue // links point at objects that are themselves backed up
		}
		b, err := os.GetBytes(ctx, info.Name)
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("backup object store %s object %s: %w", name, info.Name, err)
		}
		id := hex.EncodeToString([]byte(info.Name))
		if err := writeJSON(tw, "obj/"+name+"/meta/"+id, info.ObjectMeta); err != nil {
			return err
		}
		if err := writeFile(tw, "obj/"+name+"/data/"+id, b); err != nil {
			return err
		}
		sum.Objects++
		sum.Bytes += int64(len(b))
	}
	return nil
}

func names(l interface {
	Name() <-chan string
	Error() error
}) ([]string, error) {
	var out []string
	for n := range l.Name() {
		out = append(out, n)
	}
	slices.Sort(out)
	return out, l.Error()
}

func writeJSON(tw *tar.Writer, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("backup %s: %w", name, err)
	}
	return writeFile(tw, name, b)
}

func writeFile(tw *tar.Writer, name string, b []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
		return fmt.Errorf("backup %s: %w", name, err)
	}
	if _, err := tw.Write(b); err != nil {
		return fmt.Errorf("backup %s: %w", name, err)
	}
	return nil
}

// Archive is a read and checked backup, held in memory so that a restore starts only
// from an archive known to be whole.
type Archive struct {
	Header  Header
	Summary Summary
	Buckets []Bucket // in archive order
}

// Bucket is one KV bucket or object store of an archive.
type Bucket struct {
	Name    string
	Objects bool                     // an object store, not a KV bucket
	KV      jetstream.KeyValueConfig // for a KV bucket
	Store   objectStoreConfig        // for an object store
	Keys    []Record
}

// Record is a key and its value, or an object's metadata and data.
type Record struct {
	Key   string
	Value []byte
	Meta  jetstream.ObjectMeta
}

// maxEntry bounds one archive entry, so a corrupt size cannot make Read allocate
// without limit. Objects are artifacts' layers, bounded by the registry's blob cap.
const maxEntry = 4 << 30

// Read reads and checks a whole archive: format, structure, names and the end entry's
// counts. Its errors say what is wrong with the file.
func Read(r io.Reader) (*Archive, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("read backup: not a Fermion backup (want a gzip-compressed tar from fermion server backup): %w", err)
	}
	tr := tar.NewReader(gz)
	a := &Archive{}
	var got Summary
	var ended, started bool
	byName := map[string]*Bucket{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read backup: damaged or truncated archive: %w", err)
		}
		if ended {
			return nil, fmt.Errorf("read backup: entry %s after %s", h.Name, endName)
		}
		if h.Typeflag != tar.TypeReg || h.Size < 0 || h.Size > maxEntry {
			return nil, fmt.Errorf("read backup: entry %s: not a regular file of at most %d bytes", h.Name, int64(maxEntry))
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("read backup: entry %s: damaged or truncated archive: %w", h.Name, err)
		}
		if !started {
			if h.Name != headerName {
				return nil, fmt.Errorf("read backup: first entry is %s, want %s: not a Fermion backup", h.Name, headerName)
			}
			if err := json.Unmarshal(b, &a.Header); err != nil {
				return nil, fmt.Errorf("read backup: %s: %w", headerName, err)
			}
			if a.Header.Format != Format {
				return nil, fmt.Errorf("read backup: format %d, this fermion reads format %d: restore with the fermion version that took it", a.Header.Format, Format)
			}
			started = true
			continue
		}
		if h.Name == endName {
			if err := json.Unmarshal(b, &a.Summary); err != nil {
				return nil, fmt.Errorf("read backup: %s: %w", endName, err)
			}
			ended = true
			continue
		}
		kind, rest, _ := strings.Cut(h.Name, "/")
		bucket, rest, _ := strings.Cut(rest, "/")
		if (kind != "kv" && kind != "obj") || bucket == "" || rest == "" {
			return nil, fmt.Errorf("read backup: unexpected entry %s", h.Name)
		}
		key := kind + "/" + bucket
		if rest == "bucket.json" {
			if byName[key] != nil {
				return nil, fmt.Errorf("read backup: bucket %s twice", bucket)
			}
			bk := Bucket{Name: bucket, Objects: kind == "obj"}
			if bk.Objects {
				err = json.Unmarshal(b, &bk.Store)
			} else {
				err = json.Unmarshal(b, &bk.KV)
			}
			if err != nil || (bk.Store.Bucket != bucket && bk.KV.Bucket != bucket) {
				return nil, fmt.Errorf("read backup: %s: configuration of another bucket or not JSON (%v)", h.Name, err)
			}
			got.Buckets++
			a.Buckets = append(a.Buckets, bk)
			byName[key] = &a.Buckets[len(a.Buckets)-1]
			continue
		}
		bk := byName[key]
		if bk == nil {
			return nil, fmt.Errorf("read backup: entry %s before its bucket.json", h.Name)
		}
		part, id, _ := strings.Cut(rest, "/")
		raw, err := hex.DecodeString(id)
		if err != nil || len(raw) == 0 {
			return nil, fmt.Errorf("read backup: entry %s: the name is not hex", h.Name)
		}
		switch {
		case !bk.Objects && part == "keys":
			bk.Keys = append(bk.Keys, Record{Key: string(raw), Value: b})
			got.Keys++
			got.Bytes += int64(len(b))
		case bk.Objects && part == "meta":
			var m jetstream.ObjectMeta
			if err := json.Unmarshal(b, &m); err != nil || m.Name != string(raw) {
				return nil, fmt.Errorf("read backup: %s: metadata of another object or not JSON (%v)", h.Name, err)
			}
			bk.Keys = append(bk.Keys, Record{Key: m.Name, Meta: m})
		case bk.Objects && part == "data":
			n := len(bk.Keys)
			if n == 0 || bk.Keys[n-1].Key != string(raw) || bk.Keys[n-1].Value != nil {
				return nil, fmt.Errorf("read backup: %s without its metadata just before it", h.Name)
			}
			bk.Keys[n-1].Value = b
			got.Objects++
			got.Bytes += int64(len(b))
		default:
			return nil, fmt.Errorf("read backup: unexpected entry %s", h.Name)
		}
	}
	if !started {
		return nil, errors.New("read backup: empty archive: not a Fermion backup")
	}
	if !ended {
		return nil, fmt.Errorf("read backup: no %s: the archive is truncated (was the backup interrupted?); take it again", endName)
	}
	if got != a.Summary {
		return nil, fmt.Errorf("read backup: holds %s, its end entry says %s: the archive is damaged", got, a.Summary)
	}
	for _, bk := range a.Buckets {
		for _, r := range bk.Keys {
			if bk.Objects && r.Value == nil {
				return nil, fmt.Errorf("read backup: object %s of %s has metadata but no data", r.Key, bk.Name)
			}
		}
	}
	return a, nil
}

// Restore writes the archive's buckets into js: each bucket is created when absent
// (with replicas copies), each key put, each object put. first lists buckets to restore
// before the others and last those after (say, registry blobs first and deployments
// last, so that what watches deployments finds their artifacts); the rest go in
// between, in archive order.
func Restore(ctx context.Context, js jetstream.JetStream, a *Archive, replicas int, first, last []string) error {
	order := slices.Clone(a.Buckets)
	rank := func(b Bucket) int {
		if i := slices.Index(first, b.Name); i >= 0 {
			return i - len(first)
		}
		if i := slices.Index(last, b.Name); i >= 0 {
			return 1 + i
		}
		return 0
	}
	slices.SortStableFunc(order, func(x, y Bucket) int { return rank(x) - rank(y) })
	for _, bk := range order {
		if bk.Objects {
			if err := restoreObjects(ctx, js, bk, replicas); err != nil {
				return err
			}
			continue
		}
		kv, err := js.KeyValue(ctx, bk.Name)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			cfg := bk.KV
			cfg.Replicas = replicas
			kv, err = js.CreateKeyValue(ctx, cfg)
		}
		if err != nil {
			return fmt.Errorf("restore bucket %s: %w", bk.Name, err)
		}
		for _, r := range bk.Keys {
			if _, err := kv.Put(ctx, r.Key, r.Value); err != nil {
				return fmt.Errorf("restore bucket %s key %s: %w", bk.Name, r.Key, err)
			}
		}
	}
	return nil
}

func restoreObjects(ctx context.Context, js jetstream.JetStream, bk Bucket, replicas int) error {
	os, err := js.ObjectStore(ctx, bk.Name)
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		os, err = js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: bk.Name, Description: bk.Store.Description,
			TTL: bk.Store.TTL, Storage: bk.Store.Storage, Replicas: replicas})
	}
	if err != nil {
		return fmt.Errorf("restore object store %s: %w", bk.Name, err)
	}
	for _, r := range bk.Keys {
		if _, err := os.PutBytes(ctx, r.Key, r.Value); err != nil {
			return fmt.Errorf("restore object store %s object %s: %w", bk.Name, r.Key, err)
		}
		if r.Meta.Description != "" || len(r.Meta.Headers) > 0 || len(r.Meta.Metadata) > 0 {
			if err := os.UpdateMeta(ctx, r.Key, r.Meta); err != nil {
				return fmt.Errorf("restore object store %s object %s metadata: %w", bk.Name, r.Key, err)
			}
		}
	}
	return nil
}
