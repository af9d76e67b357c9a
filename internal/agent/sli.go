package agent

import (
	"sync"
	"time"

	"fermion.dev/fermion/internal/sli"
	"fermion.dev/fermion/internal/telemetry"
)

// sliNameTTL is how long a deployment name is kept for a version no function reports
// a pool for: long enough that a version being loaded (named before its Load) is not
// forgotten before it reports one.
const sliNameTTL = 10 * time.Minute

// sliSource is the data plane's SLI aggregator and the telemetry sink that feeds it the
// sandbox's instance, limit and outbound events (telemetry.SLISink), keyed by the
// deployment the version runs under. The gateway records requests into the same
// aggregator (gateway.Config.SLIs). A nil *sliSource records nothing.
type sliSource struct {
	agg     *sli.Aggregator
	metrics *telemetry.Metrics

	mu    sync.Mutex // leaf
	names map[[2]string]sliName
}

type sliName struct {
	deployment string
	seen       time.Time     // last time it was named or had a pool
	cpu        time.Duration // its guest CPU time as last observed (observePools)
}

// newSLISource returns cfg.SLIs wrapped, or a new aggregator when cfg.Telemetry is on,
// or nil.
func newSLISource(cfg DataPlaneConfig, m *telemetry.Metrics) *sliSource {
	agg := cfg.SLIs
	if agg == nil {
		if !cfg.Telemetry {
			return nil
		}
		iv := cfg.SLIInterval
		if iv <= 0 {
			iv = sli.DefaultInterval
		}
		start := sli.Boundary(time.Now(), iv)
		agg = sli.NewAggregator(sli.Config{Node: cfg.Labels["node"], Interval: iv, Start: start, FirstSeq: sli.SeqFor(start, iv)})
	}
	s := &sliSource{agg: agg, metrics: m, names: map[[2]string]sliName{}}
	m.SetSLISink(s)
	return s
}

func (s *sliSource) aggregator() *sli.Aggregator {
	if s == nil {
		return nil
	}
	return s.agg
}

// name records that app@version is deployed under deployment.
func (s *sliSource) name(deployment, app, version string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	k := [2]string{app, version}
	n := s.names[k]
	n.deployment, n.seen = deployment, time.Now()
	s.names[k] = n
	s.mu.Unlock()
}

// key is the SLI key of app@version's instance events: its deployment, no route.
func (s *sliSource) key(app, version string) sli.Key {
	s.mu.Lock()
	n, ok := s.names[[2]string{app, version}]
	s.mu.Unlock()
	if !ok {
		n.deployment = app // fermion run deploys under the app's name
	}
	return sli.Key{Deployment: n.deployment, Version: version}
}

// For implements telemetry.SLISink.
func (s *sliSource) For(function, version string) telemetry.SLIEvents {
	return &sliEvents{agg: s.agg, key: s.key(function, version)}
}

// observePools records every deployed version's instance memory (its pool's total
// linear memory now) and the guest CPU time it used since the last call into the open
// interval, and forgets names of versions gone. The CPU time is the growth of the
// version's cumulative counter (telemetry.Metrics.GuestCPU), read once per interval,
// so the request path pays one atomic add for it and takes no aggregator lock.
func (s *sliSource) observePools(now time.Time) {
	if s == nil || s.metrics == nil {
		return
	}
	type entry struct {
		app, version string
		key          sli.Key
	}
	s.mu.Lock()
	all := make([]entry, 0, len(s.names))
	for k, n := range s.names {
		all = append(all, entry{k[0], k[1], sli.Key{Deployment: n.deployment, Version: k[1]}})
	}
	s.mu.Unlock()
	for _, e := range all {
		p, ok := s.metrics.Pool(e.app, e.version) // outside s.mu: it takes the pools' locks
		cpu, hasCPU := s.metrics.GuestCPU(e.app, e.version)
		var used time.Duration
		s.mu.Lock()
		if n, known := s.names[[2]string{e.app, e.version}]; known {
			if hasCPU {
				used = cpu - n.cpu
				if used < 0 { // the version's series were forgotten and made again
					used = cpu
				}
				n.cpu = cpu
			}
			switch {
			case ok:
				n.seen = now
				s.names[[2]string{e.app, e.version}] = n
			case now.Sub(n.seen) > sliNameTTL:
				delete(s.names, [2]string{e.app, e.version})
			default:
				s.names[[2]string{e.app, e.version}] = n
			}
		}
		s.mu.Unlock()
		var mem uint64
		if ok && p.MemoryBytes > 0 {
			mem = uint64(p.MemoryBytes)
		}
		if mem > 0 || used > 0 {
			s.agg.ObserveInstance(e.key, mem, used)
		}
	}
}

// sliEvents records one version's events into the aggregator.
type sliEvents struct {
	agg *sli.Aggregator
	key sli.Key
}

func (e *sliEvents) InstanceStarted(reason string) { e.agg.RecordInstanceStart(e.key, reason) }
func (e *sliEvents) Discarded(reason string)       { e.agg.RecordDiscard(e.key, reason) }
func (e *sliEvents) LimitRejected(limit string)    { e.agg.RecordLimitRejection(e.key, limit) }

// Outbound counts a failed call as an outbound error and one the policy refused (a
// host not allowed) as a policy denial.
func (e *sliEvents) Outbound(result string) {
	switch result {
	case telemetry.OutboundOK:
	case telemetry.OutboundDenied:
		e.agg.RecordPolicyDenial(e.key)
	default:
		e.agg.RecordOutboundError(e.key)
	}
}

// SLIs is the data plane's SLI aggregator (nil with telemetry off and none given).
func (d *DataPlane) SLIs() *sli.Aggregator { return d.slis.aggregator() }
