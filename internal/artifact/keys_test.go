package artifact

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"regexp"
	"strings"
	"testing"
)

// Each encrypted-key operation runs scrypt (32 MiB, tens of milliseconds), so the tests
// share one encrypted key.
func TestPrivateKeyEncrypted(t *testing.T) {
	priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pass := []byte("correct horse")
	encPEM, err := MarshalPrivateKey(priv, pass)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("cosign envelope", func(t *testing.T) {
		block, rest := pem.Decode(encPEM)
		if block == nil || block.Type != "ENCRYPTED SIGSTORE PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
			t.Fatalf("PEM = %q", encPEM)
		}
		var env struct {
			KDF struct {
				Name   string         `json:"name"`
				Params map[string]int `json:"params"`
				Salt   []byte         `json:"salt"`
			} `json:"kdf"`
			Cipher struct {
				Name  string `json:"name"`
				Nonce []byte `json:"nonce"`
			} `json:"cipher"`
			Ciphertext []byte `json:"ciphertext"`
		}
		dec := json.NewDecoder(bytes.NewReader(block.Bytes))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&env); err != nil {
			t.Fatalf("envelope %s: %v", block.Bytes, err)
		}
		if env.KDF.Name != "scrypt" || env.KDF.Params["N"] != 32768 || env.KDF.Params["r"] != 8 || env.KDF.Params["p"] != 1 ||
			len(env.KDF.Params) != 3 || len(env.KDF.Salt) != 32 || env.Cipher.Name != "nacl/secretbox" || len(env.Cipher.Nonce) != 24 ||
			len(env.Ciphertext) == 0 {
			t.Errorf("envelope = %s", block.Bytes)
		}
		if !strings.HasPrefix(string(block.Bytes), `{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"`) {
			t.Errorf("envelope field order differs from go-securesystemslib's: %s", block.Bytes)
		}
	})

	t.Run("right passphrase", func(t *testing.T) {
		got, err := ParsePrivateKey(encPEM, pass)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(priv) {
			t.Error("parsed key differs from the generated one")
		}
	})

	t.Run("wrong passphrase", func(t *testing.T) {
		_, err := ParsePrivateKey(encPEM, []byte("battery staple"))
		if !errors.Is(err, ErrWrongPassphrase) || !strings.Contains(err.Error(), "decrypt private key: wrong passphrase?") {
			t.Fatalf("err = %v, want ErrWrongPassphrase", err)
		}
	})

	t.Run("older cosign label", func(t *testing.T) {
		block, _ := pem.Decode(encPEM)
		relabeled := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED COSIGN PRIVATE KEY", Bytes: block.Bytes})
		got, err := ParsePrivateKey(relabeled, pass)
		if err != nil || !got.Equal(priv) {
			t.Fatalf("COSIGN-labelled key: %v", err)
		}
	})

	t.Run("costly scrypt parameters refused", func(t *testing.T) {
		block, _ := pem.Decode(encPEM)
		body := strings.Replace(string(block.Bytes), `"N":32768`, `"N":1073741824`, 1)
		_, err := ParsePrivateKey(pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: []byte(body)}), pass)
		if err == nil || !strings.Contains(err.Error(), "unsupported scrypt parameters") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestPrivateKeyEmptyPassphrase(t *testing.T) {
	priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	encPEM, err := MarshalPrivateKey(priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParsePrivateKey(encPEM, []byte{})
	if err != nil || !got.Equal(priv) {
		t.Fatalf("empty passphrase round trip: %v", err)
	}
}

func TestPrivateKeyPlainFormats(t *testing.T) {
	priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(priv)
	sec1, _ := x509.MarshalECPrivateKey(priv)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384der, _ := x509.MarshalPKCS8PrivateKey(p384)
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKCS8PrivateKey(edPriv)
	pub, _ := MarshalPublicKey(&priv.PublicKey)

	tests := []struct {
		name string
		pem  []byte
		want string // "" for success
	}{
		{"pkcs8", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), ""},
		{"sec1", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), ""},
		{"p384", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p384der}), "key is ECDSA P-384"},
		{"ed25519", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: edDER}), "key is Ed25519"},
		{"public key", pub, "this is a public key"},
		{"not pem", []byte("hunter2"), "no PEM block"},
		{"other block", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), `unsupported PEM block "CERTIFICATE"`},
		{"bad envelope", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED SIGSTORE PRIVATE KEY", Bytes: []byte("{")}), "not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePrivateKey(tt.pem, nil)
			if tt.want == "" {
				if err != nil || !got.Equal(priv) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestPublicKey(t *testing.T) {
	priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := MarshalPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(pemBytes, []byte("-----BEGIN PUBLIC KEY-----\n")) {
		t.Errorf("PEM = %q", pemBytes)
	}
	pub, err := ParsePublicKey(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(&priv.PublicKey) {
		t.Error("public key round trip changed the key")
	}
	id := KeyID(pub)
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(id) {
		t.Errorf("KeyID = %q", id)
	}
	if KeyID(&priv.PublicKey) != id || KeyID(pub) != id {
		t.Error("KeyID is not stable")
	}
	other, _ := GenerateKey()
	if KeyID(&other.PublicKey) == id {
		t.Error("two keys share a KeyID")
	}
	if KeyID(nil) != "" {
		t.Error("KeyID(nil) is not empty")
	}

	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKIXPublicKey(edPub)
	for name, tt := range map[string]struct {
		pem  []byte
		want string
	}{
		"ed25519":     {pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: edDER}), "key is Ed25519"},
		"private key": {pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED SIGSTORE PRIVATE KEY", Bytes: []byte("{}")}), "is this the private key?"},
		"empty":       {nil, "no PEM block"},
		"bad der":     {pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{0x30, 0x01}}), "parse public key"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParsePublicKey(tt.pem); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
