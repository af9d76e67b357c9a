package controlplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/backup"
	"fermion.dev/fermion/internal/controlplane/state"
	"fermion.dev/fermion/internal/registry"
	"fermion.dev/fermion/internal/sloctl"
)

// Backup and restore of the state (docs/operations.md): GET /v1/backup streams
// backup.Write's archive; PUT /v1/restore loads one into a fresh control plane.

// maxRestoreBody bounds PUT /v1/restore's body, which holds the registry's artifacts.
const maxRestoreBody = 4 << 30

// routeBodyLimits are the routes whose body may exceed maxBody.
var routeBodyLimits = map[string]int64{"PUT /v1/restore": maxRestoreBody}

// notBackedUp are buckets of transient or derived state: leases and the election are
// about live processes (a restored leader lease would fence the new leader out), the
// agents report their instances again, the SLO engine's state carries its leader's
// term and is recomputed, upload sessions die with their clients.
var notBackedUp = map[string]bool{
	state.BucketLeader: true, state.BucketLeases: true, state.BucketStatus: true,
	sloctl.BucketState: true, registry.UploadsBucket: true,
}

// backupRoutes registers backup and restore: admin only, since an archive holds every
// token record (hashed) and every artifact.
func (s *api) backupRoutes(route routeFunc) {
	route("GET /v1/backup", v1.RoleAdmin, func(w http.ResponseWriter, r *http.Request, _ cred) (any, int, *v1.Error) {
		return s.backup(r.Context(), w)
	})
	route("PUT /v1/restore", v1.RoleAdmin, func(_ http.ResponseWriter, r *http.Request, caller cred) (any, int, *v1.Error) {
		return s.restore(r.Context(), r.Body, caller)
	})
}

// backup writes the archive into a buffer first, so that a failure midway is an API
// error and not a truncated 200 (the client would still catch that: no end entry).
func (s *api) backup(ctx context.Context, w http.ResponseWriter) (any, int, *v1.Error) {
	var buf bytes.Buffer
	sum, err := backup.Write(ctx, s.st.JS, &buf, time.Now(), func(b string) bool { return notBackedUp[b] })
	if err != nil {
		return nil, 0, &v1.Error{Code: v1.CodeUnavailable, Message: err.Error()}
	}
	s.logger.Info("backup taken", "buckets", sum.Buckets, "keys", sum.Keys, "objects", sum.Objects, "bytes", sum.Bytes)
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Length", fmt.Sprint(buf.Len()))
	w.WriteHeader(http.StatusOK)
	w.Write(buf.Bytes())
	return nil, 0, nil
}

func (s *api) restore(ctx context.Context, body io.Reader, caller cred) (any, int, *v1.Error) {
	a, err := backup.Read(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, 0, &v1.Error{Code: v1.CodeTooLarge, Message: fmt.Sprintf("the backup exceeds %d bytes", int64(maxRestoreBody))}
		}
		return nil, 0, &v1.Error{Code: v1.CodeBadRequest, Message: err.Error()}
	}
	// Restore merges into nothing: a control plane that already has work would end up
	// with a mixture of two states that no one ever had.
	if n, p, nodes := len(s.st.Deployments.List()), len(s.st.Policies.List()), len(s.st.Nodes.List()); n+p+nodes > 0 {
		return nil, 0, &v1.Error{Code: v1.CodeConflict, Message: fmt.Sprintf(
			"restore into a fresh control plane: this one has %s, %s and %s; start a new server (or cluster) with an empty --data and restore there",
			v1.Count(n, "deployment"), v1.Count(p, "policy"), v1.Count(nodes, "node"))}
	}
	st, err := s.st.Deployments.KV().Status(ctx)
	if err != nil {
		return nil, 0, &v1.Error{Code: v1.CodeUnavailable, Message: "restore: " + err.Error()}
	}
	replicas := st.Config().Replicas
	dropFenceRecords(a)
	// Artifacts and credentials first, deployments last: the scheduler and the agents
	// react to a deployment at once and must find what it names.
	first := append(append([]string{}, registry.Buckets...), state.BucketTokens, state.BucketPolicies)
	if err := backup.Restore(ctx, s.st.JS, a, replicas, first, []string{state.BucketDeployments}); err != nil {
		return nil, 0, &v1.Error{Code: v1.CodeUnavailable, Message: err.Error() + " (the control plane now holds part of the backup: start again from an empty --data)"}
	}
	s.logger.Info("backup restored", "taken", a.Header.Taken, "buckets", a.Summary.Buckets, "keys", a.Summary.Keys, "objects", a.Summary.Objects, "by", caller.ID)
	return v1.BackupSummary(a.Summary), http.StatusOK, nil
}

// dropFenceRecords removes the fence records (state.FenceKey) from a's buckets. A backup
// holds the fences of the leader it was taken from; restored, they would replace this
// leader's, so its next fenced write would be refused and it would step down, again at
// every term until its own term passed the old cluster's: no controller would run for
// as many lease periods as the old cluster had terms. This leader's fences stay.
func dropFenceRecords(a *backup.Archive) {
	for i := range a.Buckets {
		a.Buckets[i].Keys = slices.DeleteFunc(a.Buckets[i].Keys, func(r backup.Record) bool { return r.Key == state.FenceKey })
	}
}
