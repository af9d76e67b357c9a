package artifact

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"

	"golang.org/x/crypto/nacl/secretbox"
	"golang.org/x/crypto/scrypt"
)

// Why cosign's key format? Teams that sign containers already hold cosign keys and run
// `cosign verify`; with the same format and signature layout, one key pair and one tool
// chain serve both, and nothing Fermion-specific is needed to audit a signature. The
// format is go-securesystemslib's "encrypted" envelope: scrypt derives a secretbox key
// from the passphrase, and the sealed plaintext is the PKCS#8 DER of the key.

// PEM block types of private keys.
const (
	PrivateKeyPEMType       = "ENCRYPTED SIGSTORE PRIVATE KEY" // written by Fermion and cosign v2+
	CosignPrivateKeyPEMType = "ENCRYPTED COSIGN PRIVATE KEY"   // written by older cosign; read only
	PublicKeyPEMType        = "PUBLIC KEY"
)

// ErrWrongPassphrase means an encrypted private key did not open with the passphrase
// (or was corrupted). Prompting again is the usual fix.
var ErrWrongPassphrase = errors.New("decrypt private key: wrong passphrase?")

const (
	kdfScrypt       = "scrypt"
	cipherSecretbox = "nacl/secretbox"
	saltSize        = 32
	nonceSize       = 24
	boxKeySize      = 32
)

// scryptParams are the cost parameters recorded in a key file.
type scryptParams struct {
	N int `json:"N"`
	R int `json:"r"`
	P int `json:"p"`
}

// The parameter sets go-securesystemslib accepts; anything else is refused before
// scrypt runs, so a crafted key file cannot make it allocate gigabytes. Fermion writes
// the first: every cosign release reads it (later ones also read the others).
var scryptAccepted = []scryptParams{
	{N: 1 << 15, R: 8, P: 1},
	{N: 1 << 16, R: 8, P: 1},
	{N: 1 << 17, R: 8, P: 1},
}

// encryptedKey is the JSON inside an encrypted PEM block. []byte fields encode as
// standard base64, as the format requires.
type encryptedKey struct {
	KDF struct {
		Name   string       `json:"name"`
		Params scryptParams `json:"params"`
		Salt   []byte       `json:"salt"`
	} `json:"kdf"`
	Cipher struct {
		Name  string `json:"name"`
		Nonce []byte `json:"nonce"`
	} `json:"cipher"`
	Ciphertext []byte `json:"ciphertext"`
}

// GenerateKey returns a new ECDSA P-256 signing key.
func GenerateKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return k, nil
}

// MarshalPublicKey encodes pub as a PEM "PUBLIC KEY" block (PKIX), the format of
// cosign.pub.
func MarshalPublicKey(pub *ecdsa.PublicKey) ([]byte, error) {
	der, err := publicDER(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: PublicKeyPEMType, Bytes: der}), nil
}

// ParsePublicKey decodes a PEM "PUBLIC KEY" block holding an ECDSA P-256 key.
func ParsePublicKey(pemBytes []byte) (*ecdsa.PublicKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("parse public key: no PEM block found; a public key file starts with -----BEGIN PUBLIC KEY-----")
	}
	if block.Type != PublicKeyPEMType {
		return nil, fmt.Errorf("parse public key: PEM block is %q, want %q (is this the private key? use the .pub file)", block.Type, PublicKeyPEMType)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	pub, ok := k.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("parse public key: key is %s; Fermion verifies ECDSA P-256 keys (cosign generate-key-pair makes them)", keyKind(k))
	}
	return pub, nil
}

// KeyID identifies a public key: "sha256:" and the hex SHA-256 of its PKIX DER. It is
// stable across PEM re-encodings. It returns "" for a key that is not a valid P-256 key.
func KeyID(pub *ecdsa.PublicKey) string {
	der, err := publicDER(pub)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func publicDER(pub *ecdsa.PublicKey) ([]byte, error) {
	if pub == nil || pub.Curve != elliptic.P256() {
		return nil, errors.New("not an ECDSA P-256 key")
	}
	return x509.MarshalPKIXPublicKey(pub)
}

// MarshalPrivateKey encrypts priv with passphrase in cosign's format (PEM block
// PrivateKeyPEMType). An empty passphrase is allowed, as with cosign, but leaves the key
// protected only by the file's permissions.
func MarshalPrivateKey(priv *ecdsa.PrivateKey, passphrase []byte) ([]byte, error) {
	if priv == nil || priv.Curve != elliptic.P256() {
		return nil, errors.New("marshal private key: not an ECDSA P-256 key")
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	var ek encryptedKey
	ek.KDF.Name = kdfScrypt
	ek.KDF.Params = scryptAccepted[0]
	ek.KDF.Salt = make([]byte, saltSize)
	ek.Cipher.Name = cipherSecretbox
	ek.Cipher.Nonce = make([]byte, nonceSize)
	if _, err := rand.Read(ek.KDF.Salt); err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	if _, err := rand.Read(ek.Cipher.Nonce); err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	key, err := boxKey(&ek, passphrase)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	ek.Ciphertext = secretbox.Seal(nil, der, (*[nonceSize]byte)(ek.Cipher.Nonce), key)
	body, err := json.Marshal(ek)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: PrivateKeyPEMType, Bytes: body}), nil
}

// ParsePrivateKey decodes an ECDSA P-256 private key: cosign's encrypted format (either
// PEM type), or an unencrypted PKCS#8 "PRIVATE KEY" or SEC 1 "EC PRIVATE KEY" block, for
// which passphrase is ignored. A passphrase that does not open the key gives
// ErrWrongPassphrase.
func ParsePrivateKey(pemBytes, passphrase []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("parse private key: no PEM block found; a key file starts with -----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")
	}
	var k any
	var err error
	switch block.Type {
	case PrivateKeyPEMType, CosignPrivateKeyPEMType:
		der, derr := decryptKey(block.Bytes, passphrase)
		if derr != nil {
			return nil, fmt.Errorf("parse private key: %w", derr)
		}
		k, err = x509.ParsePKCS8PrivateKey(der)
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	case PublicKeyPEMType:
		return nil, errors.New("parse private key: this is a public key; pass the private key file (cosign.key), not the .pub")
	default:
		return nil, fmt.Errorf("parse private key: unsupported PEM block %q; want %q, %q, \"PRIVATE KEY\" or \"EC PRIVATE KEY\"", block.Type, PrivateKeyPEMType, CosignPrivateKeyPEMType)
	}
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	priv, ok := k.(*ecdsa.PrivateKey)
	if !ok || priv.Curve != elliptic.P256() {
		return nil, fmt.Errorf("parse private key: key is %s; Fermion signs with ECDSA P-256 keys (cosign generate-key-pair makes them)", keyKind(k))
	}
	return priv, nil
}

// decryptKey opens go-securesystemslib's encrypted envelope.
func decryptKey(body, passphrase []byte) ([]byte, error) {
	var ek encryptedKey
	if err := decodeJSON(body, &ek, false); err != nil {
		return nil, fmt.Errorf("encrypted key envelope is not valid JSON: %v", err)
	}
	if ek.KDF.Name != kdfScrypt {
		return nil, fmt.Errorf("unsupported key derivation %q, want %q", ek.KDF.Name, kdfScrypt)
	}
	if ek.Cipher.Name != cipherSecretbox {
		return nil, fmt.Errorf("unsupported cipher %q, want %q", ek.Cipher.Name, cipherSecretbox)
	}
	if len(ek.Cipher.Nonce) != nonceSize {
		return nil, fmt.Errorf("cipher nonce is %d bytes, want %d", len(ek.Cipher.Nonce), nonceSize)
	}
	key, err := boxKey(&ek, passphrase)
	if err != nil {
		return nil, err
	}
	plain, ok := secretbox.Open(nil, ek.Ciphertext, (*[nonceSize]byte)(ek.Cipher.Nonce), key)
	if !ok {
		return nil, ErrWrongPassphrase
	}
	return plain, nil
}

func boxKey(ek *encryptedKey, passphrase []byte) (*[boxKeySize]byte, error) {
	p := ek.KDF.Params
	accepted := false
	for _, a := range scryptAccepted {
		accepted = accepted || a == p
	}
	if !accepted {
		return nil, fmt.Errorf("unsupported scrypt parameters N=%d r=%d p=%d", p.N, p.R, p.P)
	}
	k, err := scrypt.Key(passphrase, ek.KDF.Salt, p.N, p.R, p.P, boxKeySize)
	if err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	return (*[boxKeySize]byte)(k), nil
}

// keyKind names a key's type for error messages.
func keyKind(k any) string {
	switch k := k.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *ecdsa.PrivateKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey, *rsa.PrivateKey:
		return "RSA"
	case ed25519.PublicKey, ed25519.PrivateKey:
		return "Ed25519"
	default:
		return fmt.Sprintf("%T", k)
	}
}
