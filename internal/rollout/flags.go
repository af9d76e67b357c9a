package rollout

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"fermion.dev/fermion/internal/diag"
)

// Flags is the strategy as `fermion deploy` takes it; empty fields were not given.
type Flags struct {
	Strategy       string // --strategy
	Steps          string // --steps 1node,10%,50%,100%
	Interval       string // --interval 1m
	MaxUnavailable string // --max-unavailable 1 or 25%
	MaxSurge       string // --max-surge
	Sticky         string // --sticky header:X-User or cookie:session
}

// IsZero reports whether no strategy flag was given, so the manifest's applies.
func (f Flags) IsZero() bool { return f == Flags{} }

// ParseFlags turns deploy's flags into a normalized Spec; errors name the flag and
// how to fix it. --steps without --strategy means a canary; --max-unavailable or
// --max-surge without it means rolling.
func ParseFlags(f Flags) (Spec, error) {
	var s Spec
	kind := f.Strategy
	if kind == "" {
		switch {
		case f.Steps != "":
			kind = string(Canary)
		case f.MaxUnavailable != "" || f.MaxSurge != "":
			kind = string(Rolling)
		default:
			kind = string(AllAtOnce)
		}
	}
	if !slices.Contains(Kinds, kind) {
		msg := fmt.Sprintf("--strategy %q is not a strategy; use %s", kind, strings.Join(Kinds, ", "))
		if c := diag.Closest(kind, Kinds); c != "" {
			msg = fmt.Sprintf("--strategy %q is not a strategy; did you mean %q?", kind, c)
		}
		return Spec{}, errors.New(msg)
	}
	s.Kind = Kind(kind)
	if f.Steps != "" {
		if s.Kind != Canary {
			return Spec{}, fmt.Errorf("--steps is for --strategy canary, not %s", s.Kind)
		}
		steps, err := ParseSteps(f.Steps)
		if err != nil {
			return Spec{}, fmt.Errorf("--steps: %w", err)
		}
		s.Steps = steps
	} else if s.Kind == Canary {
		return Spec{}, errors.New("--strategy canary needs --steps, such as --steps 1node,10%,50%,100%")
	}
	if f.Interval != "" {
		d, err := time.ParseDuration(f.Interval)
		if err != nil || d < time.Second || d > 24*time.Hour {
			return Spec{}, fmt.Errorf("--interval %q is not a duration between 1s and 24h, such as 1m", f.Interval)
		}
		s.Interval = d
	}
	for _, fl := range []struct {
		name, val string
		dst       *Amount
	}{{"--max-unavailable", f.MaxUnavailable, &s.MaxUnavailable}, {"--max-surge", f.MaxSurge, &s.MaxSurge}} {
		if fl.val == "" {
			continue
		}
		if s.Kind != Rolling {
			return Spec{}, fmt.Errorf("%s is for --strategy rolling, not %s", fl.name, s.Kind)
		}
		a, err := ParseAmount(fl.val)
		if err != nil {
			return Spec{}, fmt.Errorf("%s: %w", fl.name, err)
		}
		*fl.dst = a
	}
	if f.Sticky != "" {
		if s.Kind != Canary {
			return Spec{}, fmt.Errorf("--sticky is for --strategy canary's traffic weights, not %s", s.Kind)
		}
		k, err := ParseSticky(f.Sticky)
		if err != nil {
			return Spec{}, fmt.Errorf("--sticky: %w", err)
		}
		s.Sticky = k
	}
	if s.Kind == Rolling && f.MaxUnavailable == "" && f.MaxSurge == "" {
		s.MaxUnavailable = Amount{Count: 1}
	}
	return s.Normalize()
}
