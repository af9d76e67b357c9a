package fleet

import (
	"encoding/binary"
)

// detailBuf is one window's detail tier: its raw intervals (routes merged), ascending by
// start, concatenated into one exact-size byte slice. Each entry is three varints —
// the gap from the previous entry's end (or from the window's start), the interval's
// length less the previous entry's (zig-zag), the length of its stored encoding — then
// that encoding. A slice per interval cost a 40-byte header (start, end, slice) and an
// allocation rounded up to its size class, ~45 bytes on top of ~150 per interval, for
// 1.8 million intervals at the fleet budget; here an entry's header is about 4 bytes.
// A window holds at most 30 intervals, so the linear scans are cheap; inserting
// appends in place (bench/RESULTS.md, "Fleet SLI store over hours").
type detailBuf []byte

// detailEntry is one decoded entry: its interval and its stored bytes (a sub-slice of
// the buffer; valid until the buffer changes).
type detailEntry struct {
	start, end int64
	b          []byte
	// off and next are the entry's offsets in the buffer.
	off, next int
}

// each calls fn with every entry in order until fn returns false. ws is the window's
// start.
func (d detailBuf) each(ws int64, fn func(e detailEntry) bool) {
	prevEnd, prevDur := ws, int64(0)
	for off := 0; off < len(d); {
		gap, n1 := binary.Varint(d[off:])
		if n1 <= 0 {
			return // not written by put: a bug; show what precedes it
		}
		dd, n2 := binary.Varint(d[off+n1:])
		l, n3 := binary.Uvarint(d[off+n1+max(n2, 0):])
		if n2 <= 0 || n3 <= 0 || uint64(len(d)-off-n1-n2-n3) < l {
			return
		}
		p := off + n1 + n2 + n3
		e := detailEntry{start: prevEnd + gap, b: d[p : p+int(l) : p+int(l)], off: off, next: p + int(l)}
		e.end = e.start + prevDur + dd
		if !fn(e) {
			return
		}
		prevEnd, prevDur, off = e.end, e.end-e.start, e.next
	}
}

// len is the number of entries.
func (d detailBuf) len(ws int64) (n int) {
	d.each(ws, func(detailEntry) bool { n++; return true })
	return n
}

// entries decodes every entry.
func (d detailBuf) entries(ws int64) []detailEntry {
	var es []detailEntry
	d.each(ws, func(e detailEntry) bool { es = append(es, e); return true })
	return es
}

// put merges or inserts an interval: with(old) returns the new stored bytes of the
// entry starting at start given its current bytes (nil when there is none; a fresh
// slice, not aliasing the buffer) and its end. It changes the buffer in place: an
// interval after the last (nearly every one) appends, a merge or an insert rewrites
// only that entry and the next one's header. The buffer grows by half when full, so a
// window's ~30 intervals cost a handful of copies, not one each; Prune trims closed
// windows to their exact size.
func (d detailBuf) put(ws, start, end int64, with func(old []byte) []byte) detailBuf {
	prevEnd, prevDur := ws, int64(0)
	var at, after detailEntry
	var hasAt, hasAfter bool
	d.each(ws, func(e detailEntry) bool {
		if hasAt {
			after, hasAfter = e, true
			return false
		}
		if e.start >= start {
			at, hasAt = e, true
			return e.start == start // a merge also rewrites the next entry's header
		}
		prevEnd, prevDur = e.end, e.end-e.start
		return true
	})
	var hdr [3 * binary.MaxVarintLen64]byte
	header := func(b []byte, start, end int64, size int) []byte {
		b = binary.AppendVarint(b, start-prevEnd)
		b = binary.AppendVarint(b, end-start-prevDur)
		b = binary.AppendUvarint(b, uint64(size))
		prevEnd, prevDur = end, end-start
		return b
	}
	switch {
	case !hasAt: // after the last entry
		nb := with(nil)
		h := header(hdr[:0], start, end, len(nb))
		return splice(d, len(d), len(d), h, nb, nil)
	case at.start == start: // merge
		nb := with(at.b)
		h := header(hdr[:0], start, max(at.end, end), len(nb))
		if !hasAfter {
			return splice(d, at.off, at.next, h, nb, nil)
		}
		var h2 [3 * binary.MaxVarintLen64]byte
		nh := header(h2[:0], after.start, after.end, len(after.b))
		return splice(d, at.off, after.next-len(after.b), h, nb, nh)
	default: // insert before at
		nb := with(nil)
		h := header(hdr[:0], start, end, len(nb))
		var h2 [3 * binary.MaxVarintLen64]byte
		nh := header(h2[:0], at.start, at.end, len(at.b))
		return splice(d, at.off, at.next-len(at.b), h, nb, nh)
	}
}

// splice replaces d[i:j] with the concatenation of parts, in place when d has room,
// else in a new buffer half again as large as needed.
func splice(d detailBuf, i, j int, parts ...[]byte) detailBuf {
	add := 0
	for _, p := range parts {
		add += len(p)
	}
	n := len(d) - (j - i) + add
	if n > cap(d) {
		nd := make([]byte, 0, n+n/2)
		nd = append(nd, d[:i]...)
		for _, p := range parts {
			nd = append(nd, p...)
		}
		return append(nd, d[j:]...)
	}
	old := len(d)
	if n > old {
		d = d[:n]
	}
	copy(d[i+add:], d[j:old])
	d = d[:n]
	k := i
	for _, p := range parts {
		k += copy(d[k:], p)
	}
	return d
}

// dropThrough drops the entries that start at or before floor and returns the rest
// (nil when none) and the end of the last one dropped (0 when none). The first kept
// entry's header is rewritten against the window's start and the rest moved down in
// place; the buffer is copied to its exact size only once it is less than half full.
func (d detailBuf) dropThrough(ws, floor int64) (detailBuf, int64) {
	var lastEnd int64
	var first detailEntry
	found := false
	d.each(ws, func(e detailEntry) bool {
		if e.start <= floor {
			lastEnd = e.end
			return true
		}
		first, found = e, true
		return false
	})
	if lastEnd == 0 && (!found || first.off == 0) {
		return d, 0 // nothing dropped
	}
	if !found {
		return nil, lastEnd
	}
	var hdr [3 * binary.MaxVarintLen64]byte
	h := binary.AppendVarint(hdr[:0], first.start-ws)
	h = binary.AppendVarint(h, first.end-first.start)
	h = binary.AppendUvarint(h, uint64(len(first.b)))
	d = splice(d, 0, first.next-len(first.b), h)
	if cap(d) > 2*len(d) {
		d = detailBuf(exact(d))
	}
	return d, lastEnd
}
