package probe

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/auth"
)

// Key is daoguard's probe signing key as agents see it: they check every
// question against it and answer nothing else.
type Key struct {
	KeyID     string `json:"key_id"`
	Alg       string `json:"alg"`
	PublicKey string `json:"public_key"` // base64 of the 32-byte ed25519 key
}

// NewSigner derives daoguard's probe signing key from secret (the audit
// key file's text, which every replica holds). A key of its own, derived
// with HKDF under its own label, keeps probe questions and audit
// checkpoints apart: a signature of one can never pass for the other.
func NewSigner(secret []byte) (auth.Signer, Key, error) {
	return derive(secret, "daoguard probe signing v1", "daoguard-probe-")
}

// NewAlertSigner derives the key alerts are signed with: another label,
// another key, so that a signed alert can never pass for a probe
// question at an agent's endpoint (nor a question for an alert).
func NewAlertSigner(secret []byte) (auth.Signer, Key, error) {
	return derive(secret, "daoguard alert signing v1", "daoguard-alert-")
}

func derive(secret []byte, label, prefix string) (auth.Signer, Key, error) {
	seed, err := hkdf.Key(sha256.New, secret, nil, label, ed25519.SeedSize)
	if err != nil {
		return nil, Key{}, err
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	sum := sha256.Sum256(pub)
	k := Key{KeyID: prefix + hex.EncodeToString(sum[:8]), Alg: daoguard.AlgEd25519, PublicKey: base64.StdEncoding.EncodeToString(pub)}
	return &auth.Ed25519Signer{ID: k.KeyID, Key: priv}, k, nil
}
