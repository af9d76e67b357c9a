package registry

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fermion.dev/fermion/internal/fermiontest"
	"github.com/opencontainers/go-digest"
)

// corruptOnDisk flips one byte of data where it is stored in the blob stream's
// message blocks under dir, and reports whether it found it. The engine must be
// stopped.
func corruptOnDisk(t *testing.T, dir string, data []byte, at int) bool {
	t.Helper()
	needle := data[at : at+64]
	found := false
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(p, ".blk") || !strings.Contains(p, "OBJ_"+bucketBlobs) {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		i := bytes.Index(b, needle)
		if i < 0 {
			return nil
		}
		b[i] ^= 0xff
		found = true
		return os.WriteFile(p, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestCorruptBlob damages stored blobs on disk and reads them: a small one is
// refused with 500 BLOB_CORRUPT before any byte is sent; a large one's transfer is
// cut before its last byte, and the read after that is refused with BLOB_CORRUPT.
// Each is counted and logged by digest, and pushing the blob again repairs it.
func TestCorruptBlob(t *testing.T) {
	dir := t.TempDir()
	tr := startRegistry(t, dir, Config{})
	small := randomBytes(t, 300<<10)
	large := randomBytes(t, verifyFirstMax+(3<<20))
	ds := tr.pushBlob(t, "r", small)
	dl := tr.pushBlob(t, "r", large)
	tr.close()
	for _, c := range []struct {
		data []byte
		at   int
	}{{small, 200 << 10}, {large, len(large) - (1 << 20)}} {
		if !corruptOnDisk(t, dir, c.data, c.at) {
			t.Fatal("the blob's bytes are not in the stream's message blocks")
		}
	}
	var logs fermiontest.SyncBuffer
	tr = startRegistry(t, dir, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	msg := tr.do(t, "GET", "/v2/r/blobs/"+ds.String(), nil).wantError(t, http.StatusInternalServerError, codeBlobCorrupt)
	if !strings.Contains(msg, "corrupt") || !strings.Contains(msg, ds.String()) {
		t.Errorf("message %q does not say the blob is corrupt", msg)
	}

	// The large one is streamed: the transfer is cut before its end.
	resp, err := tr.send("GET", "/v2/r/blobs/"+dl.String(), nil)
	if err == nil {
		t.Fatalf("a corrupt streamed blob was sent whole: %d, %d bytes", resp.status, len(resp.body))
	}
	// Its next read is checked first, and refused.
	tr.do(t, "GET", "/v2/r/blobs/"+dl.String(), nil).wantError(t, http.StatusInternalServerError, codeBlobCorrupt)

	if n := tr.counter(t, "fermion_registry_read_failures_total", "reason", failCorrupt); n != 3 {
		t.Errorf("corrupt reads counted %v, want 3", n)
	}
	for _, d := range []digest.Digest{ds, dl} {
		if !strings.Contains(logs.String(), "digest="+d.String()) {
			t.Errorf("no log line names %s:\n%s", d, logs.String())
		}
	}

	// Pushing them again repairs them.
	tr.pushBlob(t, "r", small)
	tr.pushBlob(t, "r", large)
	for _, b := range [][]byte{small, large} {
		got := tr.do(t, "GET", "/v2/r/blobs/"+digestOf(b), nil).want(t, http.StatusOK).body
		if !bytes.Equal(got, b) {
			t.Fatalf("after a new push, GET returned %d bytes, not the blob", len(got))
		}
	}
}

func TestVerifyingReader(t *testing.T) {
	data := []byte("the bytes of a blob")
	d := digest.FromBytes(data)
	for _, c := range []struct {
		name    string
		stored  []byte
		size    int64
		corrupt bool
	}{
		{"intact", data, int64(len(data)), false},
		{"short", data[:5], int64(len(data)), true},
		{"long", append(append([]byte{}, data...), 'x'), int64(len(data)), true},
		{"flipped", append([]byte("T"), data[1:]...), int64(len(data)), true},
		{"size recorded wrong", data, int64(len(data)) + 1, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := io.ReadAll(newVerifyingReader(bytes.NewReader(c.stored), d, c.size))
			if c.corrupt != errors.Is(err, errCorrupt) {
				t.Fatalf("err %v, corrupt want %v", err, c.corrupt)
			}
			if !c.corrupt && !bytes.Equal(got, data) {
				t.Fatalf("read %q", got)
			}
		})
	}
}
