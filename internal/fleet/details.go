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
// A window holds at most 30 intervals, so the linear scans and the copy on insert are
// cheap (bench/RESULTS.md, "Fleet SLI store").
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

// appendEntries encodes es (ascending by start) after prev (the end and length of the
// entry before them, or ws and 0) onto b.
func appendEntries(b []byte, prevEnd, prevDur int64, es []detailEntry) []byte {
	for _, e := range es {
		b = binary.AppendVarint(b, e.start-prevEnd)
		b = binary.AppendVarint(b, e.end-e.start-prevDur)
		b = binary.AppendUvarint(b, uint64(len(e.b)))
		b = append(b, e.b...)
		prevEnd, prevDur = e.end, e.end-e.start
	}
	return b
}

// entries decodes every entry.
func (d detailBuf) entries(ws int64) []detailEntry {
	var es []detailEntry
	d.each(ws, func(e detailEntry) bool { es = append(es, e); return true })
	return es
}

// put merges or inserts an interval: with(old) returns the new stored bytes of the
// entry starting at start given its current bytes (nil when there is none) and its
// end. It returns the new buffer (a fresh exact-size slice; d is not changed).
func (d detailBuf) put(ws, start, end int64, with func(old []byte) []byte) detailBuf {
	es := d.entries(ws)
	i := 0
	for i < len(es) && es[i].start < start {
		i++
	}
	if i < len(es) && es[i].start == start {
		es[i].b = with(es[i].b)
		es[i].end = max(es[i].end, end)
	} else {
		es = append(es, detailEntry{})
		copy(es[i+1:], es[i:])
		es[i] = detailEntry{start: start, end: end, b: with(nil)}
	}
	size := 0
	for _, e := range es {
		size += len(e.b) + 3*binary.MaxVarintLen64
	}
	return detailBuf(exact(appendEntries(make([]byte, 0, size), ws, 0, es)))
}

// dropThrough drops the entries that start at or before floor and returns the rest
// (a fresh slice, or nil) and the end of the last one dropped (0 when none).
func (d detailBuf) dropThrough(ws, floor int64) (detailBuf, int64) {
	es := d.entries(ws)
	i := 0
	for i < len(es) && es[i].start <= floor {
		i++
	}
	if i == 0 {
		return d, 0
	}
	lastEnd := es[i-1].end
	if i == len(es) {
		return nil, lastEnd
	}
	return detailBuf(exact(appendEntries(nil, ws, 0, es[i:]))), lastEnd
}
