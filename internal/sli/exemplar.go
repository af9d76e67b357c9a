package sli

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Bounds on exemplars: the few slowest requests of an interval, sent with its summary.
const (
	// DefaultExemplars is how many slowest requests a summary carries unless
	// Config.Exemplars says otherwise.
	DefaultExemplars = 5
	// MaxExemplars bounds Config.Exemplars and a decoded summary's exemplars.
	MaxExemplars = 8
	// MaxExemplarPath bounds an exemplar's path: a longer one is cut at a rune
	// boundary. Paths are the request's, query dropped: no secrets from query strings.
	MaxExemplarPath = 64
	// MaxExemplarMethod bounds an unusual method's name (known methods take a byte).
	MaxExemplarMethod = 16
	// MaxExemplarBytes bounds the encoded exemplar section. The encoder leaves out the
	// fastest exemplars that would not fit, so a summary stays within its wire budget
	// (≤ 1 KB per version-interval, bench/RESULTS.md "Slowest requests") whatever its
	// paths.
	MaxExemplarBytes = 160
	// MaxSummaryWithExemplars bounds a summary's size with its exemplars: past it only
	// the slowest is sent. It keeps a hello-like version-interval within the issue's
	// 1 KB on the wire with every exemplar's path spelled out (bench/RESULTS.md).
	MaxSummaryWithExemplars = 560
	// maxExemplarDuration bounds a plausible request duration.
	maxExemplarDuration = 24 * time.Hour
	// exemplarLateStart is how long after its interval's end a request may have
	// started: a flush runs a little after the boundary it closes the interval at, and
	// a request that started and ended in between is still the closing interval's.
	exemplarLateStart = time.Minute
)

// Exemplar is one slow request: enough to find it in the trace UI and the logs.
type Exemplar struct {
	// Duration is how long the request took, to the microsecond on the wire.
	Duration time.Duration
	// Start is when the request began, Unix milliseconds.
	Start int64
	// TraceID is the request's W3C trace id, present whether or not its span was
	// sampled; Sampled says whether the span was recorded (and so whether the trace
	// backend has it).
	TraceID [16]byte
	Sampled bool
	Status  int
	// Instance numbers the sandbox instance that served it, per version on its node
	// (0: none, e.g. the request was refused before it reached one).
	Instance uint64
	Method   string
	// Path is the request's path without its query, at most MaxExemplarPath bytes.
	Path string
}

// slowHeap keeps the k slowest exemplars offered to it: a min-heap by Duration, so
// that a request no slower than the kth costs one comparison.
type slowHeap struct {
	n int
	e [MaxExemplars]Exemplar
}

// offer considers ex for the k slowest (k ≤ MaxExemplars).
func (h *slowHeap) offer(k int, ex *Exemplar) {
	if h.n == k {
		if k == 0 || ex.Duration <= h.e[0].Duration {
			return
		}
		h.e[0] = kept(ex)
		h.down(0)
		return
	}
	i := h.n
	h.e[i] = kept(ex)
	h.n++
	for i > 0 { // up
		p := (i - 1) / 2
		if h.e[p].Duration <= h.e[i].Duration {
			break
		}
		h.e[p], h.e[i] = h.e[i], h.e[p]
		i = p
	}
}

func (h *slowHeap) down(i int) {
	for {
		l, m := 2*i+1, i
		if l < h.n && h.e[l].Duration < h.e[m].Duration {
			m = l
		}
		if r := l + 1; r < h.n && h.e[r].Duration < h.e[m].Duration {
			m = r
		}
		if m == i {
			return
		}
		h.e[i], h.e[m] = h.e[m], h.e[i]
		i = m
	}
}

// reset empties the heap and drops its strings.
func (h *slowHeap) reset() {
	clear(h.e[:h.n])
	h.n = 0
}

// TruncatePath cuts p to at most MaxExemplarPath bytes at a rune boundary and drops
// any query. A path that is not valid UTF-8 (a decoded %ff) has its bad bytes replaced,
// which allocates; otherwise the result is a substring.
func TruncatePath(p string) string {
	for i := 0; i < len(p); i++ {
		if p[i] == '?' {
			p = p[:i]
			break
		}
	}
	if !utf8.ValidString(p) {
		p = strings.ToValidUTF8(p, "\uFFFD")
	}
	if len(p) <= MaxExemplarPath {
		return p
	}
	n := MaxExemplarPath
	for n > 0 && !utf8.RuneStart(p[n]) {
		n--
	}
	return p[:n]
}

// kept is ex as an exemplar keeps it: its path cut (TruncatePath), its method at most
// MaxExemplarMethod bytes, so that whatever a client sent, the summary decodes.
func kept(ex *Exemplar) Exemplar {
	e := *ex
	e.Path = TruncatePath(ex.Path)
	if len(e.Method) > MaxExemplarMethod || !utf8.ValidString(e.Method) {
		e.Method = strings.ToValidUTF8(e.Method, "?")
		e.Method = e.Method[:min(len(e.Method), MaxExemplarMethod)]
	}
	return e
}

// sortSlowest orders exemplars slowest first (ties: earlier first, then by trace id),
// the order the wire requires, and keeps the first k.
func sortSlowest(e []Exemplar, k int) []Exemplar {
	slices.SortFunc(e, func(a, b Exemplar) int {
		if c := cmp.Compare(b.Duration, a.Duration); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Start, b.Start); c != 0 {
			return c
		}
		return slices.Compare(a.TraceID[:], b.TraceID[:])
	})
	if len(e) > k {
		clear(e[k:])
		e = e[:k]
	}
	return e
}

// Wire extension sections follow the version-1 fields (docs/sli.md, "Extensions"): a
// tag byte, the section's length, the section. A decoder skips tags it does not know;
// a server that predates extensions refuses trailing bytes, so an agent sends them only
// to a server that says it reads them (v1.RegisterReply.SLIExemplars), and strips them
// otherwise (WithoutExtensions).
const (
	extExemplars = 1
)

// methods are the methods that encode as one byte: their index + 1 (0: a name follows).
var methods = [...]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE"}

// Exemplar flag bits.
const (
	flagSampled     = 1 << 0
	flagPathIsRoute = 1 << 1 // the path is the summary's route: not repeated
	flagsKnown      = flagSampled | flagPathIsRoute
)

// appendExemplars appends the exemplar section of s, if it has exemplars: as many of
// them, slowest first, as fit in MaxExemplarBytes and, past the first, keep the summary
// (base bytes so far) within MaxSummaryWithExemplars.
func appendExemplars(b []byte, base int, s *Summary) []byte {
	if len(s.Slowest) == 0 {
		return b
	}
	var sec, one []byte
	n := 0
	for i := range s.Slowest {
		if n == MaxExemplars {
			break
		}
		one = appendExemplar(one[:0], &s.Slowest[i], s)
		if 1+len(sec)+len(one) > MaxExemplarBytes { // 1: the count, always one byte
			break
		}
		if n > 0 && base+sectionBytes(1+len(sec)+len(one)) > MaxSummaryWithExemplars {
			break
		}
		sec = append(sec, one...)
		n++
	}
	if n == 0 {
		return b
	}
	b = append(b, extExemplars)
	b = binary.AppendUvarint(b, uint64(1+len(sec)))
	b = append(b, byte(n))
	return append(b, sec...)
}

// sectionBytes is the size of an exemplar section whose content is n bytes: its tag,
// its length, its content.
func sectionBytes(n int) int {
	var l [binary.MaxVarintLen64]byte
	return 1 + binary.PutUvarint(l[:], uint64(n)) + n
}

func appendExemplar(b []byte, e *Exemplar, s *Summary) []byte {
	b = binary.AppendUvarint(b, uint64(max(e.Duration, 0)/time.Microsecond))
	b = binary.AppendUvarint(b, uint64(max(e.Status, 0)))
	b = binary.AppendVarint(b, e.Start-s.Start.UnixMilli())
	b = append(b, e.TraceID[:]...)
	var flags byte
	if e.Sampled {
		flags |= flagSampled
	}
	path := TruncatePath(e.Path)
	if path == s.Key.Route {
		flags |= flagPathIsRoute
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, e.Instance)
	if m := slices.Index(methods[:], e.Method); m >= 0 {
		b = append(b, byte(m+1))
	} else {
		b = append(b, 0)
		b = appendString(b, e.Method)
	}
	if flags&flagPathIsRoute == 0 {
		b = appendString(b, path)
	}
	return b
}

// extensions reads the extension sections after the version-1 fields into s.
func (r *reader) extensions(s *Summary) error {
	base, last := r.off, -1
	for r.off < len(r.b) {
		tag := int(r.b[r.off])
		at := r.off
		r.off++
		if tag == 0 {
			return fmt.Errorf("%d trailing bytes after the summary (extension tag 0 is not used)", len(r.b)-at)
		}
		if tag <= last {
			return fmt.Errorf("extension %d at byte %d: out of order or repeated", tag, at)
		}
		last = tag
		n, err := r.uvarintOf("extension", " length")
		if err != nil {
			return err
		}
		if tag == extExemplars && n > MaxExemplarBytes {
			return fmt.Errorf("exemplars are %d bytes, over the %d-byte limit", n, MaxExemplarBytes)
		}
		if n > uint64(len(r.b)-r.off) {
			return fmt.Errorf("extension %d of %d bytes at byte %d: %w", tag, n, r.off, errTruncated)
		}
		end := r.off + int(n)
		switch tag {
		case extExemplars:
			sub := &reader{b: r.b[:end], off: r.off}
			if s.Slowest, err = sub.exemplars(s); err != nil {
				return err
			}
			if sub.off != end {
				return fmt.Errorf("exemplars: %d bytes left over in their section", end-sub.off)
			}
			if size := base + sectionBytes(int(n)); len(s.Slowest) > 1 && size > MaxSummaryWithExemplars {
				return fmt.Errorf("%d exemplars make the summary %d bytes, over the %d-byte limit past the first", len(s.Slowest), size, MaxSummaryWithExemplars)
			}
		default: // a newer agent's: not ours to read
		}
		r.off = end
	}
	return nil
}

func (r *reader) exemplars(s *Summary) ([]Exemplar, error) {
	if r.off >= len(r.b) {
		return nil, fmt.Errorf("exemplar count at byte %d: %w", r.off, errTruncated)
	}
	n := int(r.b[r.off])
	r.off++
	if n == 0 || n > MaxExemplars {
		return nil, fmt.Errorf("%d exemplars: a section holds 1–%d", n, MaxExemplars)
	}
	out := make([]Exemplar, n)
	base := s.Start.UnixMilli()
	for i := range out {
		e := &out[i]
		d, err := r.uvarint("exemplar duration")
		if err != nil {
			return nil, err
		}
		if d > uint64(maxExemplarDuration/time.Microsecond) {
			return nil, fmt.Errorf("exemplar %d: duration %dµs is over %v", i, d, maxExemplarDuration)
		}
		e.Duration = time.Duration(d) * time.Microsecond
		st, err := r.uvarint("exemplar status")
		if err != nil {
			return nil, err
		}
		if st > 999 {
			return nil, fmt.Errorf("exemplar %d: status %d is not an HTTP status", i, st)
		}
		e.Status = int(st)
		delta, err := r.varint("exemplar start")
		if err != nil {
			return nil, err
		}
		if delta < -int64(maxExemplarDuration/time.Millisecond) || delta > int64(maxExemplarDuration/time.Millisecond) {
			return nil, fmt.Errorf("exemplar %d: start is %dms from the interval's start, over %v", i, delta, maxExemplarDuration)
		}
		e.Start = base + delta
		if len(r.b)-r.off < len(e.TraceID)+1 {
			return nil, fmt.Errorf("exemplar %d trace id at byte %d: %w", i, r.off, errTruncated)
		}
		copy(e.TraceID[:], r.b[r.off:])
		r.off += len(e.TraceID)
		flags := r.b[r.off]
		r.off++
		if flags&^flagsKnown != 0 {
			return nil, fmt.Errorf("exemplar %d: unknown flags %#x", i, flags&^flagsKnown)
		}
		e.Sampled = flags&flagSampled != 0
		if e.Instance, err = r.uvarint("exemplar instance"); err != nil {
			return nil, err
		}
		if r.off >= len(r.b) {
			return nil, fmt.Errorf("exemplar %d method at byte %d: %w", i, r.off, errTruncated)
		}
		m := int(r.b[r.off])
		r.off++
		switch {
		case m > len(methods):
			return nil, fmt.Errorf("exemplar %d: method code %d is unknown", i, m)
		case m > 0:
			e.Method = methods[m-1]
		default:
			if e.Method, err = r.str("exemplar method", MaxExemplarMethod); err != nil {
				return nil, err
			}
			if slices.Contains(methods[:], e.Method) {
				return nil, fmt.Errorf("exemplar %d: method %q is spelled out but has a code", i, e.Method)
			}
		}
		if flags&flagPathIsRoute != 0 {
			e.Path = s.Key.Route
		} else {
			if e.Path, err = r.str("exemplar path", MaxExemplarPath); err != nil {
				return nil, err
			}
			if e.Path == s.Key.Route {
				return nil, fmt.Errorf("exemplar %d: path %q is spelled out but is the route", i, e.Path)
			}
		}
	}
	return out, nil
}

// validateExemplars checks s's exemplars; ValidateSummary calls it.
func validateExemplars(s *Summary, requests uint64) error {
	if len(s.Slowest) > MaxExemplars {
		return fmt.Errorf("%d exemplars, over the limit of %d", len(s.Slowest), MaxExemplars)
	}
	if uint64(len(s.Slowest)) > requests {
		return fmt.Errorf("%d exemplars but %d requests", len(s.Slowest), requests)
	}
	end := s.End.Add(exemplarLateStart).UnixMilli()
	for i := range s.Slowest {
		e := &s.Slowest[i]
		switch {
		case e.TraceID == [16]byte{}:
			return fmt.Errorf("exemplar %d: trace id is all zeros, which W3C trace context forbids", i)
		case e.Duration < 0:
			return fmt.Errorf("exemplar %d: duration %v is negative", i, e.Duration)
		case e.Duration > maxExemplarDuration:
			return fmt.Errorf("exemplar %d: duration %v is over %v", i, e.Duration, maxExemplarDuration)
		case e.Status < 0 || e.Status > 999:
			return fmt.Errorf("exemplar %d: status %d is not an HTTP status", i, e.Status)
		case e.Start > end:
			return fmt.Errorf("exemplar %d: starts over %v after its interval ends", i, exemplarLateStart)
		case len(e.Path) > MaxExemplarPath:
			return fmt.Errorf("exemplar %d: path is %d bytes, over %d", i, len(e.Path), MaxExemplarPath)
		case len(e.Method) > MaxExemplarMethod:
			return fmt.Errorf("exemplar %d: method is %d bytes, over %d", i, len(e.Method), MaxExemplarMethod)
		case i > 0 && e.Duration > s.Slowest[i-1].Duration:
			return fmt.Errorf("exemplar %d is slower than exemplar %d: they must be slowest first", i, i-1)
		}
		for j := 0; j < len(e.Path); j++ {
			if e.Path[j] == '?' {
				return fmt.Errorf("exemplar %d: path has a query; the query is dropped at the source", i)
			}
		}
	}
	return nil
}

// WithoutExtensions returns b, an encoded summary, without its extension sections:
// the version-1 encoding a server that predates them reads. It returns b unchanged
// when b does not decode.
func WithoutExtensions(b []byte) []byte {
	var s Summary
	r := &reader{b: b, off: 1}
	if len(b) == 0 || b[0] != WireVersion || r.base(&s) != nil {
		return b
	}
	return b[:r.off]
}
