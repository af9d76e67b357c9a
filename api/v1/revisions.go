package v1

import (
	"encoding/json"
	"time"
)

// Revisions (issue 15): every change of a deployment's spec or version is an
// immutable, numbered revision; a rollback is a change like any other, to the spec and
// the exact artifact (by digest) of an earlier revision.

// Change causes.
const (
	CauseDeploy   = "deploy"
	CauseRollback = "rollback"
)

// MaxRevisionMessage bounds a change's message in bytes.
const MaxRevisionMessage = 1024

// Change is who changed a deployment, why and into which revision. The deployment
// record carries its latest change, so the revision it made can always be rebuilt
// from the record.
type Change struct {
	// Number is the revision's number, 1 for a deployment's first, increasing by one.
	Number int64  `json:"number"`
	Cause  string `json:"cause"` // deploy or rollback
	// RollbackOf is the revision a rollback returned to.
	RollbackOf int64     `json:"rollbackOf,omitempty"`
	Who        string    `json:"who,omitempty"` // the token id (and its description)
	Message    string    `json:"message,omitempty"`
	Time       time.Time `json:"time"`
	// Rollout is reserved for the rollout controller: the strategy (its Spec as JSON)
	// the change was rolled out with; empty for an all-at-once change.
	Rollout json.RawMessage `json:"rollout,omitempty"`
}

// Revision is one revision of a deployment: GET /v1/deployments/{name}/revisions/{n}.
type Revision struct {
	Deployment string         `json:"deployment"`
	Change     Change         `json:"change"`
	Generation int64          `json:"generation"`
	Spec       DeploymentSpec `json:"spec"`
	Version    Version        `json:"version"`
}

// RevisionList is the body of GET /v1/deployments/{name}/revisions: the revisions
// kept (the newest first) and the one in force.
type RevisionList struct {
	Deployment string     `json:"deployment"`
	Current    int64      `json:"current"`
	Revisions  []Revision `json:"revisions"`
}

// RollbackRequest is the body of POST /v1/deployments/{name}/rollback.
type RollbackRequest struct {
	// To is the revision to return to; 0 is the one before the current.
	To      int64  `json:"to,omitempty"`
	Message string `json:"message,omitempty"`
}

// Validate checks a rollback request.
func (r *RollbackRequest) Validate() *Error {
	if r.To < 0 {
		return &Error{Code: CodeBadRequest, Field: "to", Message: "want a revision number (from fermion history), or 0 for the previous one"}
	}
	if len(r.Message) > MaxRevisionMessage {
		return &Error{Code: CodeBadRequest, Field: "message", Message: "too long: keep it under 1024 bytes"}
	}
	return nil
}
