package sli

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
	"unicode/utf8"
)

// WireVersion is the first byte of every encoded summary. A decoder refuses versions
// it does not know, so a newer agent's summaries are counted as refused, not misread.
const WireVersion = 1

// Bounds on a decoded summary. A typical summary is a few hundred bytes (docs/sli.md);
// these only keep a malformed or hostile one from costing the receiver much.
const (
	MaxSummaryBytes = 16 << 10
	MaxNameLen      = 253  // node, deployment, version
	MaxRouteLen     = 1024 // a route pattern
	MaxReasonLen    = 64
	MaxReasons      = 32 // distinct reasons per map
)

// EncodeSummary appends s's wire encoding to b (docs/sli.md, "Wire format"): the
// version byte, then length-prefixed strings and uvarints, reasons sorted so equal
// summaries encode equally. It does not validate s; ValidateSummary does.
func EncodeSummary(b []byte, s Summary) []byte {
	start := len(b)
	b = append(b, WireVersion)
	b = appendString(b, s.Node)
	b = appendString(b, s.Key.Deployment)
	b = appendString(b, s.Key.Version)
	b = appendString(b, s.Key.Route)
	b = binary.AppendUvarint(b, s.Seq)
	b = binary.AppendVarint(b, s.Start.UnixNano())
	b = binary.AppendVarint(b, int64(s.End.Sub(s.Start)))
	for _, c := range s.Status {
		b = binary.AppendUvarint(b, c)
	}
	b = binary.AppendUvarint(b, s.OtherStatus)
	lat := s.Latency
	if lat == nil {
		lat = &Sketch{}
	}
	b = lat.AppendBinary(b)
	b = binary.AppendUvarint(b, s.ColdStarts)
	b = appendReasons(b, s.InstanceStarts)
	b = appendReasons(b, s.Discards)
	b = appendReasons(b, s.LimitRejections)
	b = binary.AppendUvarint(b, s.MemoryMaxBytes)
	b = binary.AppendVarint(b, int64(s.CPUTime))
	b = binary.AppendUvarint(b, s.OutboundErrors)
	b = binary.AppendUvarint(b, s.PolicyDenials)
	b = binary.AppendUvarint(b, s.TelemetryBacklog)
	return appendExemplars(b, len(b)-start, &s)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendReasons(b []byte, m map[string]uint64) []byte {
	b = binary.AppendUvarint(b, uint64(len(m)))
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = appendString(b, k)
		b = binary.AppendUvarint(b, m[k])
	}
	return b
}

// DecodeSummary decodes one summary written by EncodeSummary and validates it
// (ValidateSummary). It refuses input over MaxSummaryBytes, an unknown version,
// truncated or trailing bytes, and fields out of bounds, naming the field.
func DecodeSummary(b []byte) (Summary, error) {
	s, err := decodeSummary(b)
	if err != nil {
		return Summary{}, fmt.Errorf("decode sli summary: %w", err)
	}
	return s, nil
}

func decodeSummary(b []byte) (Summary, error) {
	var s Summary
	if len(b) > MaxSummaryBytes {
		return s, fmt.Errorf("%d bytes, over the %d-byte limit for one summary", len(b), MaxSummaryBytes)
	}
	if len(b) == 0 {
		return s, errors.New("empty input")
	}
	if b[0] != WireVersion {
		return s, fmt.Errorf("wire version %d, this decoder reads %d; upgrade the server before its agents", b[0], WireVersion)
	}
	r := &reader{b: b, off: 1}
	if err := r.base(&s); err != nil {
		return s, err
	}
	if err := r.extensions(&s); err != nil {
		return s, err
	}
	return s, ValidateSummary(s)
}

// base reads the version-1 fields (after the version byte) into s.
func (r *reader) base(s *Summary) error {
	var err error
	if s.Node, err = r.str("node", MaxNameLen); err != nil {
		return err
	}
	if s.Key.Deployment, err = r.str("deployment", MaxNameLen); err != nil {
		return err
	}
	if s.Key.Version, err = r.str("version", MaxNameLen); err != nil {
		return err
	}
	if s.Key.Route, err = r.str("route", MaxRouteLen); err != nil {
		return err
	}
	if s.Seq, err = r.uvarint("seq"); err != nil {
		return err
	}
	start, err := r.varint("start")
	if err != nil {
		return err
	}
	length, err := r.varint("interval length")
	if err != nil {
		return err
	}
	if length <= 0 {
		return fmt.Errorf("interval length %v: end must be after start", time.Duration(length))
	}
	if start > math.MaxInt64-length {
		return errors.New("interval end overflows the time range")
	}
	s.Start, s.End = time.Unix(0, start).UTC(), time.Unix(0, start+length).UTC()
	for c := range s.Status {
		if s.Status[c], err = r.uvarint(statusFields[c]); err != nil {
			return err
		}
	}
	if s.OtherStatus, err = r.uvarint("other status"); err != nil {
		return err
	}
	if s.Latency, err = r.decodeSketch(); err != nil {
		return err
	}
	if s.ColdStarts, err = r.uvarint("cold starts"); err != nil {
		return err
	}
	if s.InstanceStarts, err = r.reasons("instance starts"); err != nil {
		return err
	}
	if s.Discards, err = r.reasons("discards"); err != nil {
		return err
	}
	if s.LimitRejections, err = r.reasons("limit rejections"); err != nil {
		return err
	}
	if s.MemoryMaxBytes, err = r.uvarint("memory max"); err != nil {
		return err
	}
	cpu, err := r.varint("cpu time")
	if err != nil {
		return err
	}
	s.CPUTime = time.Duration(cpu)
	if s.OutboundErrors, err = r.uvarint("outbound errors"); err != nil {
		return err
	}
	if s.PolicyDenials, err = r.uvarint("policy denials"); err != nil {
		return err
	}
	if s.TelemetryBacklog, err = r.uvarint("telemetry backlog"); err != nil {
		return err
	}
	return nil
}

var statusFields = [5]string{"status 1xx", "status 2xx", "status 3xx", "status 4xx", "status 5xx"}

func (r *reader) varint(field string) (int64, error) {
	v, n := binary.Varint(r.b[r.off:])
	switch {
	case n == 0:
		return 0, fmt.Errorf("%s at byte %d: %w", field, r.off, errTruncated)
	case n < 0:
		return 0, fmt.Errorf("%s at byte %d: varint overflows 64 bits", field, r.off)
	case n > 1 && r.b[r.off+n-1] == 0:
		return 0, fmt.Errorf("%s at byte %d: varint is not minimally encoded", field, r.off)
	}
	r.off += n
	return v, nil
}

func (r *reader) str(field string, maxLen int) (string, error) {
	n, err := r.uvarintOf(field, " length")
	if err != nil {
		return "", err
	}
	if n > uint64(maxLen) {
		return "", fmt.Errorf("%s is %d bytes, over the %d-byte limit", field, n, maxLen)
	}
	if n > uint64(len(r.b)-r.off) {
		return "", fmt.Errorf("%s of %d bytes at byte %d: %w", field, n, r.off, errTruncated)
	}
	v := string(r.b[r.off : r.off+int(n)])
	r.off += int(n)
	if !utf8.ValidString(v) {
		return "", fmt.Errorf("%s %q is not valid UTF-8", field, v)
	}
	return v, nil
}

func (r *reader) reasons(field string) (map[string]uint64, error) {
	n, err := r.uvarintOf(field, " reasons")
	if err != nil {
		return nil, err
	}
	if n > MaxReasons {
		return nil, fmt.Errorf("%s has %d reasons, over the limit of %d", field, n, MaxReasons)
	}
	if n == 0 {
		return nil, nil
	}
	m := make(map[string]uint64, n)
	prev := ""
	for i := uint64(0); i < n; i++ {
		k, err := r.str(field, MaxReasonLen)
		if err != nil {
			return nil, err
		}
		if i > 0 && k <= prev {
			return nil, fmt.Errorf("%s reason %q is out of order or repeated", field, k)
		}
		prev = k
		c, err := r.uvarintOf(field, " count")
		if err != nil {
			return nil, err
		}
		m[k] = c
	}
	return m, nil
}

var reasonFields = [3]string{"instance starts", "discards", "limit rejections"}

// ValidateSummary checks a summary's fields against each other and the bounds above;
// the receiver calls it (through DecodeSummary) before a summary touches its store.
func ValidateSummary(s Summary) error {
	switch {
	case s.Node == "":
		return errors.New("node is empty")
	case s.Key.Deployment == "":
		return errors.New("deployment is empty")
	case s.Key.Version == "":
		return errors.New("version is empty")
	case len(s.Node) > MaxNameLen || len(s.Key.Deployment) > MaxNameLen || len(s.Key.Version) > MaxNameLen:
		return fmt.Errorf("a name is over %d bytes", MaxNameLen)
	case len(s.Key.Route) > MaxRouteLen:
		return fmt.Errorf("route is over %d bytes", MaxRouteLen)
	case !s.End.After(s.Start):
		return fmt.Errorf("interval end %s is not after its start %s", s.End.Format(time.RFC3339Nano), s.Start.Format(time.RFC3339Nano))
	case s.CPUTime < 0:
		return fmt.Errorf("cpu time %v is negative", s.CPUTime)
	}
	var req uint64
	for _, n := range s.Status {
		req += n
		if req < n {
			return errors.New("status counts overflow 64 bits")
		}
	}
	if req += s.OtherStatus; req < s.OtherStatus {
		return errors.New("status counts overflow 64 bits")
	}
	var lat uint64
	if s.Latency != nil {
		lat = s.Latency.Count()
	}
	if lat != req {
		return fmt.Errorf("latency sketch counts %d requests but the status classes count %d; they must agree", lat, req)
	}
	if err := validateExemplars(&s, req); err != nil {
		return err
	}
	if s.ColdStarts > req {
		return fmt.Errorf("cold starts (%d) exceed requests (%d)", s.ColdStarts, req)
	}
	for i, m := range [3]map[string]uint64{s.InstanceStarts, s.Discards, s.LimitRejections} {
		field := reasonFields[i]
		if len(m) > MaxReasons {
			return fmt.Errorf("%s has %d reasons, over the limit of %d", field, len(m), MaxReasons)
		}
		for k := range m {
			if k == "" || len(k) > MaxReasonLen {
				return fmt.Errorf("%s reason %q must be 1–%d bytes", field, k, MaxReasonLen)
			}
		}
	}
	return nil
}
