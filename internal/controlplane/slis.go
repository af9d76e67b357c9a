package controlplane

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/sliingest"
)

// openSLIIngest creates the SLI receive path (internal/sliingest) over the server's
// JetStream and assignment table; serveAgents routes v1.SubjectSLIs to it.
func (s *agentService) openSLIIngest(ctx context.Context, js jetstream.JetStream, replicas int) (*sliingest.Ingest, error) {
	in, err := sliingest.Open(ctx, sliingest.Config{JetStream: js, Replicas: replicas,
		Versions: s.sliVersions, Logger: s.logger, Metrics: s.cfg.Metrics})
	if err != nil {
		return nil, fmt.Errorf("control plane: %w", err)
	}
	return in, nil
}

// sliVersions is what node runs, from this replica's tables: its assignments and the
// versions it last reported running. The reports matter after a partition: a node
// marked lost may have lost its assignments while it kept serving, and its backfill
// reaches the server before the scheduler places them on it again.
func (s *agentService) sliVersions(node string) []sliingest.VersionRef {
	set := s.assignmentSet(node)
	out := make([]sliingest.VersionRef, 0, len(set.Assignments))
	for _, a := range set.Assignments {
		out = append(out, sliingest.VersionRef{Deployment: a.Deployment, App: a.Version.App, Version: a.Version.Version})
		if a.Canary != nil { // a weight step's canary serves beside it (rollouts)
			out = append(out, sliingest.VersionRef{Deployment: a.Deployment, App: a.Canary.Version.App, Version: a.Canary.Version.Version})
		}
	}
	s.st.Statuses.EachOfNode(node, func(_ string, st *v1.InstanceStatus, _ uint64) {
		if st.Version != "" {
			out = append(out, sliingest.VersionRef{Deployment: st.Deployment, App: st.Deployment, Version: st.Version})
		}
		if st.Canary != nil && st.Canary.Version != "" {
			out = append(out, sliingest.VersionRef{Deployment: st.Deployment, App: st.Deployment, Version: st.Canary.Version})
		}
	})
	return out
}

// handleSLIs answers an agent's SLI batch.
func (s *agentService) handleSLIs(ctx context.Context, node string, data []byte) any {
	return s.slis.Handle(ctx, node, data)
}

// SLIStream is the stream accepted SLI summaries are stored in (v1.StreamSLIs), for
// readers in the same process (tests, the fleet store).
func (s *Server) SLIStream(ctx context.Context) (jetstream.Stream, error) {
	st, err := s.st.JS.Stream(ctx, v1.StreamSLIs)
	if err != nil {
		return nil, fmt.Errorf("sli stream: %w", err)
	}
	return st, nil
}
