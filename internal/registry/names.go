package registry

import (
	_ "crypto/sha256" // go-digest verifies only the algorithms linked in
	_ "crypto/sha512"
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"
)

var (
	// repoPattern is the distribution spec's <name> grammar.
	repoPattern = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagPattern  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
	// versionTag is a tag that names a release; it may never be moved to other content.
	versionTag = regexp.MustCompile(`^v?\d+\.\d+\.\d+([-+].*)?$`)
)

// maxRepoLen keeps <host>/<name> under the 255 characters clients accept.
const maxRepoLen = 255

func validRepo(name string) bool {
	return len(name) <= maxRepoLen && repoPattern.MatchString(name)
}

func validTag(tag string) bool { return tagPattern.MatchString(tag) }

func immutableTag(tag string) bool { return versionTag.MatchString(tag) }

// parseDigest accepts the digests the registry can verify (sha256, sha384, sha512).
func parseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", err
	}
	return d, nil
}

// Keys. NATS KV keys allow [-/_=.a-zA-Z0-9] and use "." to separate subject tokens,
// which is what lets a bucket be listed by prefix ("<repo>.*"). Repository names and
// tags may contain "." (and a tag may end with one or hold "..", which NATS refuses),
// so "." inside a name becomes "=", a character neither grammar allows; a digest
// becomes "<algorithm>-<hex>". Each part is then exactly one token:
//
//	fermion_links      <repo>.<digest>            blob visible in repo
//	fermion_manifests  <repo>.<digest>            manifest record
//	fermion_tags       <repo>.<tag>               digest ("deleted:<digest>": a yanked version)
//	fermion_referrers  <repo>.<subject>.<digest>  referrer of subject
//	fermion_uploads    <uuid>                     upload session

func nameToken(s string) string { return strings.ReplaceAll(s, ".", "=") }

func tokenName(s string) string { return strings.ReplaceAll(s, "=", ".") }

func digestToken(d digest.Digest) string {
	return d.Algorithm().String() + "-" + d.Encoded()
}

func repoKey(repo, part string) string { return nameToken(repo) + "." + part }

func blobKey(repo string, d digest.Digest) string { return repoKey(repo, digestToken(d)) }

func tagKey(repo, tag string) string { return repoKey(repo, nameToken(tag)) }

func repoFilter(repo string) string { return nameToken(repo) + ".*" }

func referrerKey(repo string, subject, d digest.Digest) string {
	return repoKey(repo, digestToken(subject)+"."+digestToken(d))
}

func referrerFilter(repo string, subject digest.Digest) string {
	return repoKey(repo, digestToken(subject)+".*")
}

// objectName names a blob in the object store: the digest with ":" made "." (the name
// is content-addressed, so one object serves every repository linking it).
func objectName(d digest.Digest) string {
	return d.Algorithm().String() + "." + d.Encoded()
}

// keyTail returns the part of key after its repository token.
func keyTail(key string) string {
	_, tail, _ := strings.Cut(key, ".")
	return tail
}
