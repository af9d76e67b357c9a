package controlplane

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/controlplane/state"
)

// cred is a record of the tokens bucket: an API or join token ("token.<id>") or a
// joined node's credentials ("node.<name>"). Only a hash of the secret is kept.
type cred = state.Cred

const tokenPrefix = "fmn_"

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func hashSecret(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func hashEqual(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// splitToken splits "fmn_<id>_<secret>".
func splitToken(tok string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(tok, tokenPrefix)
	if !ok {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, "_")
	return id, secret, ok && id != "" && secret != ""
}

// tokenStore issues and verifies API tokens and node credentials (the tokens
// bucket). It keeps nothing itself: the table is the truth, on every replica.
type tokenStore struct {
	st *state.Store
}

// createToken stores a new token and returns it with its secret.
func (s *tokenStore) createToken(ctx context.Context, role, description string, ttl time.Duration) (v1.Token, error) {
	return s.storeToken(ctx, randomHex(6), randomHex(24), role, description, ttl)
}

func (s *tokenStore) storeToken(ctx context.Context, id, secret, role, description string, ttl time.Duration) (v1.Token, error) {
	now := time.Now().UTC()
	c := cred{Kind: "token", ID: id, Role: role, Description: description, Hash: hashSecret(secret), Created: now}
	if ttl > 0 {
		exp := now.Add(ttl)
		c.Expires = &exp
	}
	// putJSON's error names the key ("write token.<id>: …"), and the caller its own
	// operation: adding "create token" here would repeat it.
	rev, err := s.st.Creds.Put(ctx, "token."+id, &c)
	if err != nil {
		return v1.Token{}, err
	}
	// The NATS authenticator and the API read the table: wait until it has the token.
	if err := s.st.Creds.WaitRev(ctx, rev); err != nil {
		return v1.Token{}, fmt.Errorf("wait until token %s is readable: %w", id, err)
	}
	t := tokenOf(&c)
	t.Secret = tokenPrefix + id + "_" + secret
	return t, nil
}

// tokenOf is how the API shows a token record (never its hash).
func tokenOf(c *cred) v1.Token {
	return v1.Token{ID: c.ID, Role: c.Role, Description: c.Description, Created: c.Created, Expires: c.Expires}
}

// verifyToken returns the token's record if tok is a valid, unexpired token.
func (s *tokenStore) verifyToken(tok string) (cred, bool) {
	id, secret, ok := splitToken(tok)
	if !ok {
		return cred{}, false
	}
	c, _, ok := s.st.Creds.Get("token." + id)
	if !ok || c.Kind != "token" || !hashEqual(c.Hash, hashSecret(secret)) {
		return cred{}, false
	}
	if c.Expires != nil && time.Now().After(*c.Expires) {
		return cred{}, false
	}
	return c, true
}

// verifyNode checks a joined node's credentials.
func (s *tokenStore) verifyNode(name, secret string) bool {
	c, _, ok := s.st.Creds.Get("node." + name)
	return ok && c.Kind == "node" && hashEqual(c.Hash, hashSecret(secret))
}

// issueNodeCreds stores new credentials for a node, replacing any it had.
func (s *tokenStore) issueNodeCreds(ctx context.Context, name string) (string, error) {
	secret := randomHex(24)
	rev, err := s.st.Creds.Put(ctx, "node."+name, &cred{Kind: "node", Node: name, Hash: hashSecret(secret), Created: time.Now().UTC()})
	if err != nil {
		return "", fmt.Errorf("issue credentials for node %s: %w", name, err)
	}
	if err := s.st.Creds.WaitRev(ctx, rev); err != nil {
		return "", err
	}
	return secret, nil
}

// roleRank orders roles by power; node tokens have no API access.
func roleRank(role string) int {
	switch role {
	case v1.RoleAdmin:
		return 3
	case v1.RoleDeployer:
		return 2
	case v1.RoleViewer:
		return 1
	}
	return 0
}

// bootstrapAdminKey is the tokens bucket's record of the cluster's bootstrap admin
// token. Unlike every other record it holds a secret, not a hash: each replica writes
// the token to its data directory, so every replica must be able to read it. Only the
// servers can read the bucket (agents' NATS permissions stop at their own subjects), and
// whoever can read it can also write any token record, so the secret gives nobody more.
const bootstrapAdminKey = "bootstrap.admin"

type bootstrapRecord struct {
	Kind    string    `json:"kind"` // "bootstrap": never a token or node credential
	Secret  string    `json:"secret"`
	Created time.Time `json:"created"`
}

// clusterAdminToken returns the cluster's bootstrap admin token: the one recorded in the
// tokens bucket, or mine, recorded now if none is. Replicas starting together race with
// KV Create: the first wins and the others read its token.
func (s *tokenStore) clusterAdminToken(ctx context.Context, mine string) (string, error) {
	for range 3 {
		e, err := s.st.Creds.KV().Get(ctx, bootstrapAdminKey)
		switch {
		case err == nil:
			var r bootstrapRecord
			if jerr := json.Unmarshal(e.Value(), &r); jerr != nil || r.Kind != "bootstrap" {
				return "", fmt.Errorf("read the cluster's admin token: record %s in bucket %s is not one (%v); delete it to have it recorded again", bootstrapAdminKey, state.BucketTokens, jerr)
			}
			if _, _, ok := splitToken(r.Secret); !ok {
				return "", fmt.Errorf("read the cluster's admin token: record %s in bucket %s holds no Fermion token; delete it to have it recorded again", bootstrapAdminKey, state.BucketTokens)
			}
			return r.Secret, nil
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			return "", fmt.Errorf("read the cluster's admin token: %w", err)
		}
		b, err := json.Marshal(bootstrapRecord{Kind: "bootstrap", Secret: mine, Created: time.Now().UTC()})
		if err != nil {
			return "", fmt.Errorf("encode the cluster's admin token: %w", err)
		}
		_, err = s.st.Creds.KV().Create(ctx, bootstrapAdminKey, b)
		if err == nil {
			return mine, nil
		}
		if !state.IsCASConflict(err) && !errors.Is(err, jetstream.ErrKeyExists) {
			return "", fmt.Errorf("record the cluster's admin token: %w", err)
		}
		// Another replica recorded its token first: read it.
	}
	return "", errors.New("record the cluster's admin token: the record keeps changing; is another cluster writing this bucket?")
}
