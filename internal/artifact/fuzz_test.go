package artifact

import (
	"crypto/ecdsa"
	"errors"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// FuzzParse checks that Parse never panics, that what it refuses carries a Reason, and
// that what it accepts is consistent: the config matches its descriptor and names the
// layer.
func FuzzParse(f *testing.F) {
	a := mustPackage(f, tinyReactor(), testMeta)
	f.Add(a.Manifest, a.Config)
	f.Add(a.Manifest, []byte("{}"))
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}`), []byte(nil))
	f.Add([]byte("null"), []byte("null"))
	f.Add([]byte(""), []byte(""))
	f.Fuzz(func(t *testing.T, manifestJSON, configJSON []byte) {
		p, err := Parse(manifestJSON, configJSON)
		if err != nil {
			if r := Reason(err); r != "bad_manifest" && r != "tampered_layer" {
				t.Fatalf("Reason(%v) = %q", err, r)
			}
			return
		}
		if p.ConfigDescriptor.Digest != digest.FromBytes(configJSON) || p.Config.Module.Digest != p.Layer.Digest ||
			p.Layer.MediaType != LayerMediaType {
			t.Fatalf("accepted an inconsistent artifact: %+v", p)
		}
		if _, err := ParseManifest(manifestJSON); err != nil {
			t.Fatalf("Parse accepted what ParseManifest refuses: %v", err)
		}
	})
}

// FuzzScan checks that Scan never panics on arbitrary bytes and that an accepted module
// has an ABI and only satisfiable imports.
func FuzzScan(f *testing.F) {
	m := testManifest(f, "", "https://api.example.com")
	f.Add(tinyReactor())
	f.Add(tinyModule([]testImport{funcImport(WASIModule, "sock_accept"), {"env", "t", 0x01, []byte{0x70, 0x01, 0x00, 0x10}},
		{"env", "g", 0x03, []byte{0x7f, 0x01}}, {"env", "x", 0x04, []byte{0x00, 0x00}}, {"env", "m", 0x02, []byte{0x05, 0x01, 0x02}}}, commandExports, false))
	f.Add(tinyModule([]testImport{funcImport("fermion", "http_send")}, reactorExports, true))
	f.Add([]byte("\x00asm\x01\x00\x00\x00"))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x02\x85\x80\x80\x80\x00\x01\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, wasm []byte) {
		info, res, err := Scan(m, wasm)
		if err != nil {
			var serr *ScanError
			if errors.As(err, &serr) && len(serr.Problems) == 0 {
				t.Fatal("ScanError without problems")
			}
			return
		}
		if info.ABI != ABIReactor && info.ABI != ABICommand {
			t.Fatalf("accepted a module with ABI %q", info.ABI)
		}
		for _, imp := range info.Imports {
			if imp.Kind != KindFunc || (imp.Module != WASIModule && imp.Module != "fermion") {
				t.Fatalf("accepted import %+v", imp)
			}
		}
		if res.Capabilities == nil || res.Findings == nil {
			t.Fatal("nil slices in an accepted scan")
		}
	})
}

// FuzzParseSignatures checks that ParseSignatures never panics, whatever the manifest
// and the blob the fetcher returns, and that each signature returned matches its layer.
func FuzzParseSignatures(f *testing.F) {
	priv, err := GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	payload, sig, err := Sign(priv, testRepo, digest.FromString("m"))
	if err != nil {
		f.Fatal(err)
	}
	m, _, err := SignatureManifest(nil, payload, sig)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(m, payload)
	f.Add(m, []byte("x"))
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":-1,"digest":"sha256:00","annotations":{"dev.cosignproject.cosign/signature":""}}]}`), []byte{})
	f.Add([]byte(`[]`), []byte(nil))
	policy := TrustPolicy{Keys: []*ecdsa.PublicKey{&priv.PublicKey}}
	f.Fuzz(func(t *testing.T, manifestJSON, blob []byte) {
		sigs, err := ParseSignatures(manifestJSON, func(ocispec.Descriptor) ([]byte, error) { return blob, nil })
		if err != nil {
			return
		}
		for _, s := range sigs {
			if err := VerifyLayer(s.Layer, s.Payload); err != nil {
				t.Fatalf("returned a signature that does not match its layer: %v", err)
			}
		}
		// Verification of whatever came back must not panic either, and agrees with
		// itself: Verify is VerifyAll's first signer, every signer is the trusted key,
		// and matching repositories never verifies more.
		strict := policy
		strict.MatchRepository = true
		d := digest.FromString("m")
		all, errAll := policy.VerifyAll(testRepo, d, sigs)
		one, errOne := policy.Verify(testRepo, d, sigs)
		if (errAll == nil) != (errOne == nil) || (len(all) > 0) != one.Signed || (len(all) > 0 && all[0] != one) {
			t.Fatalf("Verify = %+v, %v; VerifyAll = %+v, %v", one, errOne, all, errAll)
		}
		for _, v := range all {
			if v.KeyID != KeyID(&priv.PublicKey) {
				t.Fatalf("verified by %s, not the trusted key", v.KeyID)
			}
		}
		if matched, _ := strict.VerifyAll("127.0.0.1:1/other", d, sigs); len(matched) > len(all) {
			t.Fatalf("matching repositories verified %d signers, not matching %d", len(matched), len(all))
		}
	})
}
