package auth

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/dunglas/httpsfv"
)

// Label, Tag and Components are daoguard's RFC 9421 profile (API.md).
const (
	Label = "sig1"
	Tag   = "daoguard"
)

// Components are the covered components, in order.
var Components = []string{"@method", "@path", "@query", "content-digest"}

// IdempotencyComponent is covered after Components whenever a request
// carries an Idempotency-Key: otherwise anyone on the path could rewrite a
// retry's key into a fresh one and have a signed payment made twice.
const IdempotencyComponent = "idempotency-key"

// ComponentsFor returns the components a request with header h must cover.
func ComponentsFor(h http.Header) []string {
	if len(h.Values("Idempotency-Key")) > 0 {
		return withIdempotency
	}
	return Components
}

var withIdempotency = append(append([]string{}, Components...), IdempotencyComponent)

// Signer signs signature bases with one credential's key.
//
// Warning: a Signer is a signing oracle. Give it only bases built by
// SignRequest from a request you mean to send: anything it signs is a
// request daoguard will accept as yours.
type Signer interface {
	KeyID() string
	Alg() string
	Sign(base []byte) []byte
}

// Ed25519Signer signs with an ed25519 private key.
type Ed25519Signer struct {
	ID  string
	Key ed25519.PrivateKey
}

func (s *Ed25519Signer) KeyID() string           { return s.ID }
func (s *Ed25519Signer) Alg() string             { return daoguard.AlgEd25519 }
func (s *Ed25519Signer) Sign(base []byte) []byte { return ed25519.Sign(s.Key, base) }

// HMACSigner signs with a shared secret.
type HMACSigner struct {
	ID     string
	Secret []byte
}

func (s *HMACSigner) KeyID() string { return s.ID }
func (s *HMACSigner) Alg() string   { return daoguard.AlgHMACSHA256 }
func (s *HMACSigner) Sign(base []byte) []byte {
	m := hmac.New(sha256.New, s.Secret)
	m.Write(base)
	return m.Sum(nil)
}

// NewNonce returns a fresh nonce: a 6-byte millisecond timestamp then 16
// random bytes, base64url without padding (30 characters). The random bytes
// make it unique, as the profile requires; the timestamp only orders it.
// The server's nonce index is ordered by (created, key, nonce), so nonces a
// client sends one after another land next to each other and the index
// takes appends instead of inserts on random pages: one written page per
// batch of submissions instead of about one per submission. The server
// accepts any nonce of at least 16 random bytes.
func NewNonce(now time.Time) string {
	var b [22]byte
	ms := uint64(now.UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	rand.Read(b[6:]) // never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// SignRequest adds Content-Digest, Signature-Input and Signature to r as
// the profile requires. body must be exactly the bytes r will send.
func SignRequest(r *http.Request, body []byte, s Signer, now time.Time) error {
	r.Header.Set("Content-Digest", ContentDigest(body))
	params := httpsfv.NewParams()
	params.Add("created", now.Unix())
	params.Add("nonce", NewNonce(now))
	params.Add("keyid", s.KeyID())
	params.Add("alg", s.Alg())
	params.Add("tag", Tag)
	list := httpsfv.InnerList{Params: params}
	for _, c := range ComponentsFor(r.Header) {
		list.Items = append(list.Items, httpsfv.NewItem(c))
	}
	input := httpsfv.NewDictionary()
	input.Add(Label, list)
	in, err := httpsfv.Marshal(input)
	if err != nil {
		return err
	}
	r.Header.Set("Signature-Input", in)
	// Parse back what was just written, with an empty signature for now:
	// the signer and the verifier build the base on one code path.
	r.Header.Set("Signature", Label+"=::")
	sig, err := ParseSignature(r.Header, Label)
	if err != nil {
		return err
	}
	base, err := sig.Base(r)
	if err != nil {
		return err
	}
	out := httpsfv.NewDictionary()
	out.Add(Label, httpsfv.NewItem(s.Sign(base)))
	v, err := httpsfv.Marshal(out)
	if err != nil {
		return err
	}
	r.Header.Set("Signature", v)
	return nil
}
