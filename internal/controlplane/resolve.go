package controlplane

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	v1 "fermion.dev/fermion/api/v1"
	"fermion.dev/fermion/internal/artifact"
	"fermion.dev/fermion/internal/oci"
	"fermion.dev/fermion/internal/policy"
)

// resolvedImage is an image resolved for a deployment: the version every node will
// run, and what admission policies judge of it.
type resolvedImage struct {
	ver      v1.Version
	artifact policy.Artifact
	config   policy.ArtifactConfig // the app manifest and module scan from its config
	manifest json.RawMessage       // SLO hook (sloengine): the normalised manifest, for its [[slo]] tables
}

// imageResolver turns an image reference into the version every node will run: it
// reads the artifact from its registry and checks its signature.
type imageResolver struct {
	oci      *oci.Client
	trust    artifact.TrustPolicy
	keyNames map[string]string // key id → name
}

// resolveImage resolves an image reference to the version every node will run: the
// manifest digest, the app's limits, routes and labels from its config, and its
// signature checked against the trusted keys.
func (s *imageResolver) resolveImage(ctx context.Context, image string) (*resolvedImage, *v1.Error) {
	bad := func(code, format string, args ...any) (*resolvedImage, *v1.Error) {
		return nil, &v1.Error{Code: code, Field: "spec.image", Message: fmt.Sprintf(format, args...)}
	}
	ref, err := oci.ParseRef(image)
	if err != nil {
		return bad(v1.CodeBadRequest, "%v", err)
	}
	p, err := s.oci.Resolve(ctx, ref)
	if err != nil {
		return bad(v1.CodeArtifact, "resolve %s: %v", image, err)
	}
	ver := v1.Version{Repository: ref.Name(), Digest: p.ManifestDigest.String(), Size: p.Parsed.Config.Module.Size}
	if len(s.trust.Keys) > 0 {
		sigs, err := s.oci.Signatures(ctx, ref, p.ManifestDigest)
		if err != nil {
			return bad(v1.CodeArtifact, "read the signatures of %s: %v", image, err)
		}
		vr, err := s.trust.Verify(ref.Name(), p.ManifestDigest, sigs)
		if err != nil {
			return bad(v1.CodeArtifact, "verify %s: %v", image, err)
		}
		ver.Signed, ver.Signer = vr.Signed, vr.KeyID
		if name := s.keyNames[vr.KeyID]; name != "" {
			ver.Signer = name
		}
	}
	m, err := p.Parsed.Config.App()
	if err != nil {
		return bad(v1.CodeArtifact, "%s: read the app manifest in its config: %v", image, err)
	}
	ver.App, ver.Version = m.App.Name, m.App.Version
	ver.MemoryBytes, ver.Instances = int64(min(m.Limits.Memory, math.MaxInt64)), m.Scaling.MaxInstances
	for _, r := range m.Routes {
		ver.Routes = append(ver.Routes, r.Host+r.Path)
	}
	cfg, err := policy.ParseArtifactConfig(p.ConfigBytes)
	if err != nil {
		return bad(v1.CodeArtifact, "%s: %v", image, err)
	}
	if len(cfg.Manifest.App.Labels) > 0 {
		ver.Labels = cfg.Manifest.App.Labels
	}
	return &resolvedImage{ver: ver, config: cfg, manifest: p.Parsed.Config.Manifest, artifact: policy.Artifact{
		Digest: ver.Digest, Size: cfg.Size, Signed: ver.Signed, Signer: ver.Signer,
		Registry: ref.Registry, Repository: ref.Repo, Imports: cfg.Imports, ABI: cfg.ABI,
		Annotations: nonNil(p.Parsed.Manifest.Annotations),
	}}, nil
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
