package auth

import (
	"crypto/ed25519"
	"crypto/subtle"
	"fmt"
	"net/http"
	"time"

	"github.com/daoguard/daoguard"
)

// VerifyOutgoing checks a request daoguard itself signed (an alignment
// probe's question to an agent's decision endpoint), on the receiving
// side: the profile of API.md, the key id and ed25519 key the receiver
// was given, the body's digest, and the signature's age. It does not
// remember nonces: the caller refuses a nonce it has seen within window
// (client.ProbeVerifier does).
//
// Errors: SIGNATURE_MISSING, SIGNATURE_INVALID, UNKNOWN_KEY,
// DIGEST_MISMATCH, SIGNATURE_EXPIRED, SIGNATURE_FUTURE.
func VerifyOutgoing(r *http.Request, body []byte, keyID string, pub ed25519.PublicKey, window time.Duration, now time.Time) (*Signature, error) {
	sig, err := ParseSignature(r.Header, Label)
	if err != nil {
		return nil, err
	}
	if err := checkProfile(sig, r.Header); err != nil {
		return nil, err
	}
	// The key id is public; the comparison is constant-time anyway, as
	// every comparison on this path is.
	if subtle.ConstantTimeCompare([]byte(sig.KeyID), []byte(keyID)) != 1 {
		return nil, &daoguard.Error{Code: daoguard.CodeUnknownKey, Message: "the request is not signed with daoguard's probe key"}
	}
	if sig.Alg != daoguard.AlgEd25519 {
		return nil, &daoguard.Error{Code: daoguard.CodeAlgMismatch, Message: "daoguard's probe key is ed25519"}
	}
	created := time.Unix(sig.Created, 0)
	if now.Sub(created) > window {
		return nil, &daoguard.Error{Code: daoguard.CodeSignatureExpired, Message: fmt.Sprintf("the signature was created more than %s ago", window)}
	}
	if created.Sub(now) > DefaultSkew {
		return nil, &daoguard.Error{Code: daoguard.CodeSignatureFuture, Message: "the signature was created in the future"}
	}
	// The digest first: the signature covers the Content-Digest field, and
	// the field must be the digest of the body actually received.
	if err := CheckContentDigest(r.Header, body); err != nil {
		return nil, err
	}
	base, err := sig.Base(r)
	if err != nil {
		return nil, err
	}
	if !VerifyEd25519(pub, base, sig.Value) {
		return nil, &daoguard.Error{Code: daoguard.CodeSignatureInvalid, Message: "the signature does not verify"}
	}
	return sig, nil
}
