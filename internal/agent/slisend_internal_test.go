package agent

import (
	"bytes"
	"testing"
	"time"

	v1 "fermion.dev/fermion/api/v1"
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

// TestStrippedRefusals: a summary with exemplars that a replica refused as malformed
// (one that predates them) is sent again without them; other refusals, and summaries
// without extensions, are not.
func TestStrippedRefusals(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	a := sli.NewAggregator(sli.Config{Node: "n", Start: t0})
	h := a.Series(sli.Key{Deployment: "d", Version: "v", Route: "/"})
	h.RecordRequest(&sli.Exemplar{Duration: time.Second, Status: 200, Start: t0.UnixMilli(), TraceID: [16]byte{1}, Method: "GET", Path: "/a"}, false)
	sum := a.Flush(t0.Add(10 * time.Second))[0]
	with := sli.EncodeSummary(nil, sum)
	sum.Slowest = nil
	plain := sli.EncodeSummary(nil, sum)
	items := [][]byte{with, plain, with, with}
	got := strippedRefusals(items, []v1.SLIRefusal{
		{Index: 0, Reason: v1.SLIRefusedMalformed},
		{Index: 1, Reason: v1.SLIRefusedMalformed},      // no extensions: malformed for good
		{Index: 2, Reason: v1.SLIRefusedUnknownVersion}, // not about the encoding
		{Index: 9, Reason: v1.SLIRefusedMalformed},      // out of range: ignored
	})
	if len(got) != 1 || !bytes.Equal(got[0], plain) {
		t.Fatalf("resent %d summaries, want only the first, stripped", len(got))
	}
}
