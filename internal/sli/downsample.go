package sli

import (
	"fmt"
	"sort"
	"time"
)

// Merge adds src's counts to dst, for the same Key: statuses, cold starts, reasons,
// CPU time, outbound errors and denials add; the sketch merges; memory and backlog keep
// the maximum; the interval widens to cover both; Seq keeps the larger. Merging
// summaries of different nodes (a fleet total) leaves Node empty. Counts are exact:
// merging is associative and commutative. Exemplars (Slowest) are an interval's and are
// left out: dst keeps its own, so rollups stay small (the control plane keeps the
// slowest requests in a ring of their own).
func Merge(dst *Summary, src Summary) error {
	if dst.Key != src.Key {
		return fmt.Errorf("merge sli summaries: keys differ (%v and %v)", dst.Key, src.Key)
	}
	if dst.Node != src.Node {
		dst.Node = ""
	}
	if dst.Start.IsZero() || src.Start.Before(dst.Start) {
		dst.Start = src.Start
	}
	if src.End.After(dst.End) {
		dst.End = src.End
	}
	dst.Seq = max(dst.Seq, src.Seq)
	for c := range dst.Status {
		dst.Status[c] += src.Status[c]
	}
	dst.OtherStatus += src.OtherStatus
	if dst.Latency == nil {
		dst.Latency = &Sketch{}
	}
	dst.Latency.Merge(src.Latency)
	dst.ColdStarts += src.ColdStarts
	dst.InstanceStarts = addAll(dst.InstanceStarts, src.InstanceStarts)
	dst.Discards = addAll(dst.Discards, src.Discards)
	dst.LimitRejections = addAll(dst.LimitRejections, src.LimitRejections)
	dst.MemoryMaxBytes = max(dst.MemoryMaxBytes, src.MemoryMaxBytes)
	dst.CPUTime += src.CPUTime
	dst.OutboundErrors += src.OutboundErrors
	dst.PolicyDenials += src.PolicyDenials
	dst.TelemetryBacklog = max(dst.TelemetryBacklog, src.TelemetryBacklog)
	return nil
}

// Downsample folds raw summaries into coarser ones: one per (node, key) and window of
// length width aligned to the Unix epoch (the window of a summary's Start). Each output
// spans its window exactly and its counts and sketch are the exact merge of its inputs
// (a 30-day SLO window kept as hours loses no count and no quantile accuracy). Inputs
// may come in any order; duplicates (same node, key and Seq) are merged once. Output is
// sorted by window, node and key.
func Downsample(in []Summary, width time.Duration) ([]Summary, error) {
	if width <= 0 {
		return nil, fmt.Errorf("downsample sli summaries: window %v must be positive", width)
	}
	type group struct {
		node  string
		key   Key
		start time.Time
	}
	type dup struct {
		node string
		key  Key
		seq  uint64
	}
	seen := map[dup]bool{}
	groups := map[group]*Summary{}
	for _, s := range in {
		if s.End.Sub(Boundary(s.Start, width)) > width {
			return nil, fmt.Errorf("downsample sli summaries: %s/%s %s on %s spans %s–%s, across a %v window's end", s.Key.Deployment, s.Key.Version, s.Key.Route, s.Node, s.Start.Format(time.RFC3339), s.End.Format(time.RFC3339), width)
		}
		d := dup{s.Node, s.Key, s.Seq}
		if seen[d] {
			continue
		}
		seen[d] = true
		g := group{s.Node, s.Key, Boundary(s.Start, width)}
		dst := groups[g]
		if dst == nil {
			dst = &Summary{Node: s.Node, Key: s.Key, Start: g.start, End: g.start.Add(width), Latency: &Sketch{}}
			groups[g] = dst
		}
		start, end := dst.Start, dst.End
		if err := Merge(dst, s); err != nil {
			return nil, err
		}
		dst.Start, dst.End = start, end
	}
	out := make([]Summary, 0, len(groups))
	for _, s := range groups {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if !a.Start.Equal(b.Start) {
			return a.Start.Before(b.Start)
		}
		if a.Node != b.Node {
			return a.Node < b.Node
		}
		return keyLess(a.Key, b.Key)
	})
	return out, nil
}
