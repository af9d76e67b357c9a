package backup

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"strings"
	"testing"
)

type entry struct{ name, body string }

func archive(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		if err := writeFile(tw, e.name, []byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

var (
	head   = entry{headerName, `{"format":1,"taken":"2026-12-06T00:00:00Z"}`}
	kvConf = entry{"kv/b/bucket.json", `{"bucket":"b","history":1}`}
	kvKey  = entry{"kv/b/keys/" + hex.EncodeToString([]byte("k.1")), "value"}
	obConf = entry{"obj/o/bucket.json", `{"bucket":"o"}`}
	obMeta = entry{"obj/o/meta/" + hex.EncodeToString([]byte("blob")), `{"name":"blob"}`}
	obData = entry{"obj/o/data/" + hex.EncodeToString([]byte("blob")), "bytes"}
	end    = entry{endName, `{"buckets":2,"keys":1,"objects":1,"bytes":10}`}
)

func TestReadWhole(t *testing.T) {
	a, err := Read(bytes.NewReader(archive(t, head, kvConf, kvKey, obConf, obMeta, obData, end)))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Buckets) != 2 || a.Buckets[0].Keys[0].Key != "k.1" || string(a.Buckets[1].Keys[0].Value) != "bytes" || a.Summary.Bytes != 10 {
		t.Fatalf("%+v", a)
	}
}

func TestReadRefuses(t *testing.T) {
	whole := archive(t, head, kvConf, kvKey, end)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"not gzip", []byte("hello"), "not a Fermion backup"},
		{"truncated gzip", whole[:len(whole)/2], "truncated"},
		{"empty", archive(t), "empty archive"},
		{"no header", archive(t, kvConf, end), "first entry"},
		{"other format", archive(t, entry{headerName, `{"format":2}`}, end), "format 2"},
		{"no end", archive(t, head, kvConf, kvKey), "truncated"},
		{"counts differ", archive(t, head, kvConf, end), "damaged"},
		{"key before bucket", archive(t, head, kvKey, end), "before its bucket.json"},
		{"key not hex", archive(t, head, kvConf, entry{"kv/b/keys/zz", "v"}, end), "not hex"},
		{"stray entry", archive(t, head, entry{"etc/passwd", ""}, end), "unexpected entry"},
		{"data without meta", archive(t, head, obConf, obData, entry{endName, `{"buckets":1,"objects":1,"bytes":5}`}), "without its metadata"},
		{"meta without data", archive(t, head, obConf, obMeta, entry{endName, `{"buckets":1}`}), "no data"},
		{"entry after end", archive(t, head, end, kvConf), "after"},
		{"bucket twice", archive(t, head, kvConf, kvConf, end), "twice"},
		{"config of another bucket", archive(t, head, entry{"kv/b/bucket.json", `{"bucket":"c"}`}, end), "another bucket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(tt.data))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Read = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// FuzzRead: no input makes Read panic, and what it accepts it counted consistently.
func FuzzRead(f *testing.F) {
	f.Add(archive(f, head, kvConf, kvKey, obConf, obMeta, obData, end))
	f.Add(archive(f, head, kvConf, end))
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := Read(bytes.NewReader(data))
		if err != nil {
			return
		}
		var keys, objects int
		for _, b := range a.Buckets {
			for _, r := range b.Keys {
				if b.Objects {
					objects++
					if r.Value == nil {
						t.Fatal("accepted an object without data")
					}
				} else {
					keys++
				}
			}
		}
		if keys != a.Summary.Keys || objects != a.Summary.Objects || len(a.Buckets) != a.Summary.Buckets {
			t.Fatalf("summary %+v, holds %d buckets %d keys %d objects", a.Summary, len(a.Buckets), keys, objects)
		}
	})
}
