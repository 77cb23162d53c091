package audit

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
)

// Pseudonyms replaces values that must not sit in a log nobody can edit —
// a client's network address is personal data — with keyed hashes
// (HMAC-SHA256). The operator, who holds the key, can still tell that two
// entries came from one address, or check an address they suspect
// (daoguard audit pseudonym); a reader of the log, of an export or of a
// proof learns neither, and cannot test guesses without the key.
type Pseudonyms struct {
	key []byte
}

// NewPseudonyms derives the hashing key from secret (the log's signing
// key): HKDF (RFC 5869) with its own label keeps this use apart from
// signing, and the key lives as long as the log, so that pseudonyms stay
// comparable across its whole history.
func NewPseudonyms(secret []byte) (*Pseudonyms, error) {
	k, err := hkdf.Key(sha256.New, secret, nil, "daoguard audit pseudonyms v1", 32)
	if err != nil {
		return nil, err
	}
	return &Pseudonyms{key: k}, nil
}

// Of returns the pseudonym of value, a value of the given kind ("source"
// for a network address): "hmac:" and 128 bits of the HMAC, base64url.
// The kind is hashed too, so equal values of different kinds differ.
func (p *Pseudonyms) Of(kind, value string) string {
	m := hmac.New(sha256.New, p.key)
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return "hmac:" + base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}
