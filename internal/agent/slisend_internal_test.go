package agent

import (
	"bytes"
	"testing"
	"time"

	"fermion.dev/fermion/internal/sli"
)

// TestWithoutExtensions: to a server that predates summary extensions the agent sends
// exactly the version-1 encoding (which that server's decoder reads), and leaves its
// buffer's own bytes alone for a server that reads them.
func TestWithoutExtensions(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	a := sli.NewAggregator(sli.Config{Node: "n", Start: t0})
	h := a.Series(sli.Key{Deployment: "d", Version: "v", Route: "/"})
	h.RecordRequest(&sli.Exemplar{Duration: time.Second, Status: 200, Start: t0.UnixMilli(), TraceID: [16]byte{1}, Method: "GET", Path: "/a"}, false)
	sum := a.Flush(t0.Add(10 * time.Second))[0]
	with := sli.EncodeSummary(nil, sum)
	sum.Slowest = nil
	v1 := sli.EncodeSummary(nil, sum)
	if bytes.Equal(with, v1) {
		t.Fatal("the exemplar was not encoded")
	}
	items := [][]byte{with, v1}
	out := withoutExtensions(items)
	for i, b := range out {
		if !bytes.Equal(b, v1) {
			t.Errorf("item %d: %x, want the version-1 encoding %x", i, b, v1)
		}
	}
	if !bytes.Equal(items[0], with) {
		t.Error("the buffer's item was changed")
	}
}
