package controlplane

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/controlplane/state"
)

// Revisions (issue 15). Every admitted change of a deployment's spec or version
// carries a v1.Change in the deployment record, numbered one past the previous; the
// record is written by admission's conditional write (admission.go), so of two
// concurrent changes one gets the number and the other re-runs its dry run.
//
// The revision itself, "<deployment>.<n>" in the revisions bucket, is created right
// after that write. The two buckets cannot be written in one atomic step, so the rule
// is: the deployment record is the truth, and its latest revision can always be
// rebuilt from it (spec, version, change). A replica that dies between the two writes
// leaves the revision missing; the leader's revisions controller (and any history
// read meanwhile) writes it from the record. Revisions are created only, never
// changed, and at most revisionsKept per deployment are kept: the oldest go first.

// revisionsKept bounds each deployment's history.
const revisionsKept = 50

// orphanGrace is how long revisions of a deployment that no longer exists are kept
// before the controller deletes them: this replica's table of deployments may lag the
// revisions written with a new one.
const orphanGrace = time.Minute

func revisionKey(deployment string, n int64) string {
	return deployment + "." + strconv.FormatInt(n, 10)
}

// revisionOf is the revision d's latest change made, rebuilt from the record.
func revisionOf(d *v1.Deployment) v1.Revision {
	return v1.Revision{Deployment: d.Name, Change: *d.Change, Generation: d.Generation, Spec: d.Spec, Version: d.Version}
}

// revisionsOf lists deployment's revisions in the table, the newest first.
func revisionsOf(st *state.Store, deployment string) []v1.Revision {
	var out []v1.Revision
	st.Revisions.EachOfNode(deployment, func(_ string, r *v1.Revision, _ uint64) {
		if r.Deployment == deployment {
			out = append(out, *r)
		}
	})
	slices.SortFunc(out, func(a, b v1.Revision) int { return int(b.Change.Number - a.Change.Number) })
	return out
}

// nextRevision is the number of deployment's next change over cur (nil: absent):
// one past both the record's and any left in the table (of an earlier deployment of
// the same name not yet cleaned up), so a revision key is never reused.
func nextRevision(st *state.Store, deployment string, cur *v1.Deployment) int64 {
	var n int64
	if cur != nil && cur.Change != nil {
		n = cur.Change.Number
	}
	if rs := revisionsOf(st, deployment); len(rs) > 0 && rs[0].Change.Number > n {
		n = rs[0].Change.Number
	}
	return n + 1
}

// recordRevision creates the revision d's latest change made (if it is not there yet)
// and prunes the deployment's history to revisionsKept.
func recordRevision(ctx context.Context, st *state.Store, d *v1.Deployment) error {
	if d.Change == nil || d.Change.Number == 0 {
		return nil
	}
	r := revisionOf(d)
	key := revisionKey(d.Name, r.Change.Number)
	if _, _, ok := st.Revisions.Get(key); !ok {
		created, rev, err := st.Revisions.Create(ctx, key, &r)
		if err != nil {
			return fmt.Errorf("record revision %s: %w", key, err)
		}
		if created {
			if err := st.Revisions.WaitRev(ctx, rev); err != nil {
				return fmt.Errorf("record revision %s: %w", key, err)
			}
		}
	}
	return pruneRevisions(ctx, st, d.Name, r.Change.Number)
}

// pruneRevisions deletes deployment's revisions older than the revisionsKept up to
// newest.
func pruneRevisions(ctx context.Context, st *state.Store, deployment string, newest int64) error {
	var errs []error
	for _, r := range revisionsOf(st, deployment) {
		if r.Change.Number <= newest-revisionsKept {
			if err := st.Revisions.Delete(ctx, revisionKey(deployment, r.Change.Number)); err != nil {
				errs = append(errs, fmt.Errorf("prune revision %s: %w", revisionKey(deployment, r.Change.Number), err))
			}
		}
	}
	return errors.Join(errs...)
}

// who names the caller in a revision: its token id and description.
func who(c cred) string {
	if c.Description != "" {
		return c.ID + " (" + c.Description + ")"
	}
	return c.ID
}

// revisionController backfills the revision a deployment's latest change made where
// the replica that admitted it died before writing it, prunes histories, and deletes
// the revisions of deployments that are gone.
type revisionController struct {
	st *state.Store
}

func (c *revisionController) Name() string { return "revisions" }

func (c *revisionController) Reconcile(ctx context.Context, pass Pass) error {
	var errs []error
	live := map[string]bool{}
	for _, name := range c.st.Deployments.Keys() {
		live[name] = true
		if !pass.Acting() || ctx.Err() != nil {
			return errors.Join(errs...)
		}
		d, _, ok := c.st.Deployments.Get(name)
		if !ok || d.Deleting || d.Change == nil {
			continue
		}
		if err := recordRevision(ctx, c.st, &d); err != nil {
			errs = append(errs, err)
		}
	}
	now := time.Now()
	var orphans []string
	c.st.Revisions.Each(func(key string, r *v1.Revision, _ uint64) {
		dep, _, _ := strings.Cut(key, ".")
		if !live[dep] && now.Sub(r.Change.Time) >= orphanGrace {
			orphans = append(orphans, key)
		}
	})
	for _, key := range orphans {
		if !pass.Acting() || ctx.Err() != nil {
			break
		}
		if err := c.st.Revisions.Delete(ctx, key); err != nil {
			errs = append(errs, fmt.Errorf("delete revision %s of a deleted deployment: %w", key, err))
		}
	}
	return errors.Join(errs...)
}

// maxKeep bounds the earlier digests an assignment names for its node to keep; the
// agent pins as many of them as its --keep-revisions asks.
const maxKeep = 10

// keepDigests lists the digests of a's deployment's revisions before the one a runs,
// the newest first, each once and without a's own: what a node keeps pinned so that a
// rollback to them starts from its cache.
func keepDigests(st *state.Store, a *v1.Assignment) []string {
	var out []string
	seen := map[string]bool{a.Version.Digest: true}
	for _, r := range revisionsOf(st, a.Deployment) {
		if len(out) == maxKeep {
			break
		}
		if d := r.Version.Digest; d != "" && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}
