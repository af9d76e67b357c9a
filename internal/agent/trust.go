package agent

import (
	"context"
	"slices"
	"sync"

	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/nodecache"
	"fermion.dev/fermion/internal/oci"
)

// trust is the node's trust policy: the PEM keys the control plane last sent, whether
// it requires signatures (without, a bad signature is still refused) and whether a
// signature must name the repository. It is the node cache's Verifier, so a policy the
// control plane changes applies to the next verification without reopening the cache.
type trust struct {
	client *oci.Client

	mu      sync.Mutex // guards the fields below; leaf
	pems    []string
	require bool
	match   bool
	policy  artifact.TrustPolicy
	ids     []string // KeyIDs of policy.Keys
}

var _ nodecache.Verifier = (*trust)(nil)

// set replaces the policy with one built from pems. It reports whether anything changed;
// on a malformed key it keeps the current policy and returns the error.
func (t *trust) set(pems []string, require, match bool) (changed bool, err error) {
	raw := make([][]byte, len(pems))
	for i, p := range pems {
		raw[i] = []byte(p)
	}
	p, err := artifact.LoadTrustPolicy(raw, require && len(pems) > 0)
	if err != nil {
		return false, err
	}
	p.MatchRepository = match
	ids := make([]string, len(p.Keys))
	for i, k := range p.Keys {
		ids[i] = artifact.KeyID(k)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if slices.Equal(t.pems, pems) && t.require == require && t.match == match {
		return false, nil
	}
	t.pems, t.require, t.match, t.policy, t.ids = slices.Clone(pems), require, match, p, ids
	return true, nil
}

func (t *trust) keys() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.pems)
}

// accepts reports whether an artifact the cache verified with signer (a key id, or
// "unsigned") passes the current policy. The cache records the signer of what it
// verified once; a policy that has changed since must be checked again.
func (t *trust) accepts(signer string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.policy.RequireSignature || slices.Contains(t.ids, signer)
}

// Verify implements nodecache.Verifier with the current policy.
func (t *trust) Verify(ctx context.Context, ref nodecache.Ref, manifestDigest string) (string, error) {
	t.mu.Lock()
	src := &oci.CacheSource{Client: t.client, Policy: t.policy}
	t.mu.Unlock()
	return src.Verify(ctx, ref, manifestDigest)
}
