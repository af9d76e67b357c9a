package controlplane

import (
	"context"
	"fmt"

	"fermion.dev/fermion/internal/sliingest"
)

// openSLIIngest creates the SLI receive path (internal/sliingest) over the server's
// JetStream and assignment table; serveAgents routes v1.SubjectSLIs to it.
func (s *Server) openSLIIngest(ctx context.Context, js jetstreamAPI, replicas int) (*sliingest.Ingest, error) {
	in, err := sliingest.Open(ctx, sliingest.Config{JetStream: js, Replicas: replicas,
		Versions: s.sliVersions, Logger: s.logger, Metrics: s.cfg.Metrics})
	if err != nil {
		return nil, fmt.Errorf("control plane: %w", err)
	}
	return in, nil
}

// sliVersions is what node is assigned, from this replica's table.
func (s *Server) sliVersions(node string) []sliingest.VersionRef {
	set := s.assignmentSet(node)
	out := make([]sliingest.VersionRef, 0, len(set.Assignments))
	for _, a := range set.Assignments {
		out = append(out, sliingest.VersionRef{Deployment: a.Deployment, App: a.Version.App, Version: a.Version.Version})
	}
	return out
}

// handleSLIs answers an agent's SLI batch.
func (s *Server) handleSLIs(ctx context.Context, node string, data []byte) any {
	return s.slis.Handle(ctx, node, data)
}
