package registry

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	rtmetrics "runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// patternReader yields n pseudo-random bytes from seed, the same every time, so a
// test can stream a large blob without holding it.
type patternReader struct {
	rng *rand.ChaCha8
	n   int64
}

func newPattern(seed byte, n int64) *patternReader {
	var s [32]byte
	s[0] = seed
	return &patternReader{rng: rand.NewChaCha8(s), n: n}
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n {
		b = b[:p.n]
	}
	_, _ = p.rng.Read(b)
	p.n -= int64(len(b))
	return len(b), nil
}

func patternDigest(t testing.TB, seed byte, n int64) digest.Digest {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, newPattern(seed, n)); err != nil {
		t.Fatal(err)
	}
	return digest.NewDigest(digest.SHA256, h)
}

// heapPeak samples the live Go heap (as of the last GC: garbage not yet collected
// does not count) until stop is called, and returns the peak.
func heapPeak() (stop func() uint64) {
	var peak atomic.Uint64
	sample := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			rtmetrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak.Load()
	}
}

// largeBlobSize is the blob TestLargeBlob streams; FERMION_LARGE_BLOB_MIB changes it.
func largeBlobSize(t *testing.T) int64 {
	n := int64(160)
	if s := os.Getenv("FERMION_LARGE_BLOB_MIB"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v <= 0 {
			t.Fatalf("FERMION_LARGE_BLOB_MIB=%q: want a positive number of MiB", s)
		}
		n = v
	}
	return n << 20
}

// TestLargeBlob uploads a blob of 160 MiB monolithically and in chunks and reads it
// back: every request succeeds (no ack timeouts, no dropped ingest), the bytes come
// back whole, and the test process's heap (registry, JetStream and client together)
// never grows by more than a fraction of the blob: nothing buffers it whole.
func TestLargeBlob(t *testing.T) {
	if testing.Short() {
		t.Skip("streams hundreds of MiB through JetStream")
	}
	size := largeBlobSize(t)
	tr := startRegistry(t, "", Config{})
	d := patternDigest(t, 1, size)
	runtime.GC()
	base := liveHeap()
	stop := heapPeak()

	// Monolithic: POST then PUT with the whole body, as oras and crane do.
	loc := tr.do(t, "POST", "/v2/big/blobs/uploads/", nil).want(t, http.StatusAccepted).header.Get("Location")
	req, err := http.NewRequest("PUT", tr.srv.URL+loc+"?digest="+d.String(), newPattern(1, size))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	req.Header.Set("Authorization", "Bearer "+tr.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("monolithic PUT of %d bytes: %d %s", size, resp.StatusCode, body)
	}

	t.Logf("after monolithic: %d MiB", int64(stop()-base)>>20)
	stop = heapPeak()
	// Chunked, 16 MiB at a time, into another repository.
	loc = tr.do(t, "POST", "/v2/big2/blobs/uploads/", nil).want(t, http.StatusAccepted).header.Get("Location")
	src := newPattern(1, size)
	const chunk = 16 << 20
	for off := int64(0); off < size; off += chunk {
		n := min(chunk, size-off)
		req, _ := http.NewRequest("PATCH", tr.srv.URL+loc, io.LimitReader(src, n))
		req.ContentLength = n
		req.Header.Set("Authorization", "Bearer "+tr.token)
		req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", off, off+n-1))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("PATCH at %d: %d", off, resp.StatusCode)
		}
		loc = resp.Header.Get("Location")
	}
	tr.do(t, "PUT", loc+"?digest="+d.String(), nil).want(t, http.StatusCreated)

	t.Logf("after chunked: %d MiB", int64(stop()-base)>>20)
	stop = heapPeak()
	for _, repo := range []string{"big", "big2"} {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", tr.srv.URL+"/v2/"+repo+"/blobs/"+d.String(), nil)
		req.Header.Set("Authorization", "Bearer "+tr.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		resp.Body.Close()
		if err != nil || n != size || digest.NewDigest(digest.SHA256, h) != d {
			t.Fatalf("GET %s: %d bytes (%v), want %d hashing to %s", repo, n, err, size, d)
		}
	}
	peak := stop()
	grew := int64(peak) - int64(base)
	t.Logf("%d MiB blob: heap in use grew by at most %d MiB", size>>20, grew>>20)
	if grew > size/2 {
		t.Errorf("the heap grew by %d MiB while streaming a %d MiB blob: something buffers it", grew>>20, size>>20)
	}
}

func liveHeap() uint64 {
	s := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	rtmetrics.Read(s)
	return s[0].Value.Uint64()
}
