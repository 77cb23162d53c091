package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/internal/audit"
	"github.com/daoguard/daoguard/internal/secrets"
)

// Defaults copied into a new Authenticator.
const (
	DefaultWindow     = 60 * time.Second // oldest accepted `created`
	DefaultSkew       = 5 * time.Second  // newest accepted `created` ahead of our clock
	DefaultKeyRate    = 50.0             // requests per second per credential
	DefaultKeyBurst   = 100
	DefaultFailRate   = 1.0 // failed authentications per second per source address
	DefaultFailBurst  = 20
	DefaultFlushEvery = 30 * time.Second // last-used times and nonce purge
	DefaultAuditRate  = 50.0             // failure audit entries per second, all sources together
	DefaultAuditBurst = 200
	// NonceRetention is how long a nonce is kept after its signature's
	// created time: the longest window any gateway may be configured with
	// (10 min), plus a margin for clock differences between gateways. It
	// does not depend on this gateway's window, so a replica with a longer
	// window never meets a nonce another one already purged.
	NonceRetention = 11 * time.Minute
)

// Need is what an endpoint requires of a caller's credential.
type Need struct {
	Scope   string
	Ed25519 bool // money or control moves: a shared secret is not enough
}

// Identity is the authenticated caller.
type Identity struct {
	Credential *daoguard.Credential
	Principal  *daoguard.Principal
	Limit      State // the credential's rate-limit state after this request
	// RequestDigest is the base64 SHA-256 of the request's signature base,
	// once the signature verified.
	RequestDigest string

	nonce                 string
	created, nonceExpires time.Time
	verified              bool // the signature verified: the principal is the actor
}

// Authenticator checks signed requests against daoguard's profile, in an
// order chosen so that cheap, stateless checks run first and the store is
// written (the nonce) only for a request that is authentic, authorized and
// within its rate.
type Authenticator struct {
	// Pseudonyms hashes source addresses for the audit log; nil leaves
	// them out of it.
	Pseudonyms *audit.Pseudonyms

	Store       daoguard.Store
	Keyring     *secrets.Keyring // opens hmac secrets
	Environment string           // "test" | "live"
	Window      time.Duration
	Skew        time.Duration
	KeyLimit    *Limiter // per credential, after verification
	FailLimit   *Limiter // failed authentications per source address
	AuditLimit  *Limiter // failure audit entries per second, all sources together
	Now         func() time.Time
	Logger      *slog.Logger

	mu         sync.Mutex
	used       map[string]time.Time // last use per key, flushed by Flush
	suppressed map[string]int       // rate-limited failures by reason, flushed by Flush
}

// New returns an Authenticator with the defaults.
func New(store daoguard.Store, keyring *secrets.Keyring, env string) *Authenticator {
	return &Authenticator{
		Store: store, Keyring: keyring, Environment: env,
		Window: DefaultWindow, Skew: DefaultSkew,
		KeyLimit:   NewLimiter("key", DefaultKeyRate, DefaultKeyBurst),
		FailLimit:  NewLimiter("failed-auth", DefaultFailRate, DefaultFailBurst),
		AuditLimit: NewLimiter("failed-auth-audit", DefaultAuditRate, DefaultAuditBurst),
		Now:        time.Now, Logger: slog.Default(),
		used: map[string]time.Time{}, suppressed: map[string]int{},
	}
}

// Authenticate verifies r (whose body is body) and checks that the caller
// meets need. Every failure is written to the audit log with its code. It
// does not consume the nonce: see Consume.
//
// Errors (401): SIGNATURE_MISSING, SIGNATURE_INVALID, DIGEST_MISMATCH,
// SIGNATURE_EXPIRED, SIGNATURE_FUTURE, UNKNOWN_KEY, KEY_REVOKED,
// KEY_EXPIRED, ALG_MISMATCH; (403) WRONG_ENVIRONMENT,
// MISSING_SCOPE, ED25519_REQUIRED; (429) RATE_LIMITED; UNAVAILABLE.
//
// The body is read with read only once the signature has verified and the
// key may call this endpoint: the signature covers the Content-Digest
// field, so nobody without a key can make the gateway read (up to the
// route's limit) a body it will refuse; the digest is then checked against
// what was read. An error of read is returned as it is and not audited.
func (a *Authenticator) Authenticate(ctx context.Context, r *http.Request, read func() ([]byte, error), need Need) (*Identity, []byte, error) {
	id, keyID, err := a.authenticate(ctx, r, need)
	var body []byte
	if err == nil {
		if body, err = read(); err != nil {
			return nil, nil, err
		}
		err = CheckContentDigest(r.Header, body)
	}
	if err != nil {
		var le *LimitError
		if !errors.As(err, &le) && daoguard.ErrorCode(err) != daoguard.CodeUnavailable {
			err = a.fail(r, id, keyID, err)
		}
		return nil, nil, err
	}
	a.mu.Lock()
	a.used[id.Credential.KeyID] = a.Now()
	a.mu.Unlock()
	return id, body, nil
}

// authenticate checks everything but the body: the signature over the
// covered fields, the key, its scope and its rate.
func (a *Authenticator) authenticate(ctx context.Context, r *http.Request, need Need) (id *Identity, keyID string, err error) {
	sig, err := ParseSignature(r.Header, Label)
	if err != nil {
		return nil, "", err
	}
	// The environment is in the key id itself, so a key of the other
	// environment is refused before any other work (or store access).
	env, err := ParseKeyID(sig.KeyID)
	if err != nil {
		return nil, "", &daoguard.Error{Code: daoguard.CodeUnknownKey, Message: "keyid is not a daoguard key id"}
	}
	keyID = sig.KeyID
	if env != a.Environment {
		return nil, keyID, &daoguard.Error{Code: daoguard.CodeWrongEnvironment,
			Message: fmt.Sprintf("a %s key was used on a %s deployment", env, a.Environment), Hint: "use a credential issued by this deployment"}
	}
	if err := checkProfile(sig, r.Header); err != nil {
		return nil, keyID, err
	}
	now := a.Now()
	created := time.Unix(sig.Created, 0)
	if now.Sub(created) > a.Window || (sig.Expires != 0 && now.Unix() > sig.Expires) {
		return nil, keyID, &daoguard.Error{Code: daoguard.CodeSignatureExpired, Message: fmt.Sprintf("the signature was created more than %s ago", a.Window), Hint: "sign each request when sending it; check the client's clock"}
	}
	if created.Sub(now) > a.Skew {
		return nil, keyID, &daoguard.Error{Code: daoguard.CodeSignatureFuture, Message: "the signature was created in the future", Hint: "check the client's clock (NTP)"}
	}

	id = &Identity{}
	err = a.Store.View(ctx, func(tx daoguard.Tx) (err error) {
		if id.Credential, err = tx.Credential(ctx, keyID); err != nil {
			return err
		}
		id.Principal, err = tx.Principal(ctx, id.Credential.PrincipalID)
		return err
	})
	if daoguard.IsNotFound(err) {
		return nil, keyID, &daoguard.Error{Code: daoguard.CodeUnknownKey, Message: "no such key"}
	} else if err != nil {
		return nil, keyID, err
	}
	c := id.Credential
	switch {
	case !c.RevokedAt.IsZero() && !now.Before(c.RevokedAt):
		return id, keyID, &daoguard.Error{Code: daoguard.CodeKeyRevoked, Message: "the key was revoked"}
	case !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt) && c.ReplacedBy != "":
		return id, keyID, &daoguard.Error{Code: daoguard.CodeKeyExpired, Message: "the key was rotated and its overlap has ended", Hint: "use the replacing key " + c.ReplacedBy}
	case !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt):
		return id, keyID, &daoguard.Error{Code: daoguard.CodeKeyExpired, Message: "the key has expired"}
	case c.Alg != sig.Alg:
		return id, keyID, &daoguard.Error{Code: daoguard.CodeAlgMismatch, Message: fmt.Sprintf("the signature says alg %q but the key is %s", clip(sig.Alg), c.Alg)}
	case c.Environment != a.Environment:
		return id, keyID, &daoguard.Error{Code: daoguard.CodeWrongEnvironment, Message: "the key belongs to another environment"}
	}
	base, err := sig.Base(r)
	if err != nil {
		return id, keyID, err
	}
	if ok, err := a.verify(c, base, sig.Value); err != nil {
		return id, keyID, err
	} else if !ok {
		return id, keyID, &daoguard.Error{Code: daoguard.CodeSignatureInvalid, Message: "the signature does not verify"}
	}

	// Authentic. Now: may this key do this?
	id.verified = true
	// The base covers method, path, body digest, time and nonce: its hash
	// names this exact request in the audit log, and the client, which
	// built the same base to sign it, can recompute it.
	sum := sha256.Sum256(base)
	id.RequestDigest = base64.StdEncoding.EncodeToString(sum[:])
	if need.Scope != "" && !c.HasScope(need.Scope) {
		return id, keyID, &daoguard.Error{Code: daoguard.CodeMissingScope, Message: fmt.Sprintf("the key lacks the %s scope", need.Scope)}
	}
	if need.Ed25519 && c.Alg != daoguard.AlgEd25519 {
		return id, keyID, &daoguard.Error{Code: daoguard.CodeEd25519Required, Message: "this endpoint moves money or control and needs an ed25519 key; a shared secret is not enough"}
	}
	st, ok, retry := a.KeyLimit.Take(keyID, now)
	if !ok {
		return id, keyID, limited(st, retry, "for this key")
	}
	id.Limit = st
	id.nonce, id.created, id.nonceExpires = sig.Nonce, created, created.Add(NonceRetention)
	return id, keyID, nil
}

// Consume uses up the request's nonce. The caller runs it after
// Authenticate and after decoding the body, just before acting: a forged,
// refused or malformed request never burns a nonce (and so changes
// nothing), and a replay of an accepted one fails here on every gateway
// sharing the store. Errors: NONCE_REUSED, UNAVAILABLE.
func (a *Authenticator) Consume(ctx context.Context, r *http.Request, id *Identity) error {
	err := a.Store.Update(ctx, func(tx daoguard.Tx) error { return a.UseNonce(ctx, tx, id) })
	if daoguard.ErrorCode(err) == daoguard.CodeNonceReused {
		a.Deny(r, id, err)
	}
	return err
}

// UseNonce is Consume inside the caller's own transaction. On
// NONCE_REUSED the caller reports the replay with Deny.
func (a *Authenticator) UseNonce(ctx context.Context, tx daoguard.Tx, id *Identity) error {
	return id.Nonce().Use(ctx, tx)
}

// Nonce is the request's nonce as data, for a handler whose service uses
// it in the same transaction as its work (one durable commit, not two).
// On NONCE_REUSED the caller reports the replay with Deny.
func (id *Identity) Nonce() *daoguard.Nonce {
	return &daoguard.Nonce{KeyID: id.Credential.KeyID, Value: id.nonce, Created: id.created, Expires: id.nonceExpires}
}

// checkProfile enforces API.md's profile on a parsed signature of a
// request with header h.
func checkProfile(s *Signature, h http.Header) error {
	if want := ComponentsFor(h); !slices.Equal(s.Components, want) {
		if len(want) > len(Components) {
			return invalid(`a request with an Idempotency-Key must cover exactly "@method" "@path" "@query" "content-digest" "idempotency-key", in this order`)
		}
		return invalid(`the signature must cover exactly "@method" "@path" "@query" "content-digest", in this order (and "idempotency-key" after them when that header is sent)`)
	}
	if s.Tag != Tag {
		return invalid(`the signature must carry tag="daoguard"`)
	}
	if s.Created == 0 {
		return invalid("the signature must carry created")
	}
	if n, err := base64.RawURLEncoding.DecodeString(s.Nonce); err != nil || len(n) < 16 {
		return invalid("the signature's nonce must be at least 16 random bytes in base64url without padding")
	}
	if s.Alg != daoguard.AlgEd25519 && s.Alg != daoguard.AlgHMACSHA256 {
		return invalid("alg must be ed25519 or hmac-sha256")
	}
	return nil
}

func (a *Authenticator) verify(c *daoguard.Credential, base, sig []byte) (bool, error) {
	switch c.Alg {
	case daoguard.AlgEd25519:
		return VerifyEd25519(c.PublicKey, base, sig), nil
	case daoguard.AlgHMACSHA256:
		secret, err := a.Keyring.Open(c.SealedSecret, daoguard.SealedSecretAD(c.KeyID))
		if err != nil {
			return false, err
		}
		defer clear(secret)
		return VerifyHMAC(secret, base, sig), nil
	}
	return false, nil
}

// Deny records a refusal decided after Authenticate: an authorization
// check that depends on the request's target, or a replay.
func (a *Authenticator) Deny(r *http.Request, id *Identity, err error) {
	a.fail(r, id, id.Credential.KeyID, err)
}

// fail records a refused request: an audit entry with the reason code
// (never the signature, the body or a secret), a warning in the log for
// alerting, and one failure against the source address. It returns the
// error to answer with.
//
// Failures are limited, not requests: a source over its failure budget is
// answered RATE_LIMITED and its further failures are counted, not written
// one by one; failures beyond AuditLimit from all sources within budget are
// answered as usual and counted too (Flush writes one
// auth.failures_suppressed entry with the counts). A correctly signed
// request from the same address is never refused for it, so one bad
// client behind a shared proxy cannot lock the humans out of the kill
// switch, and a flood cannot fill the audit log.
func (a *Authenticator) fail(r *http.Request, id *Identity, keyID string, err error) error {
	code := daoguard.ErrorCode(err)
	src := source(r)
	now := a.Now()
	_, srcOK, retry := a.FailLimit.Take(src, now)
	allOK := false
	if srcOK { // a source over its own budget must not spend everyone's
		_, allOK, _ = a.AuditLimit.Take("all", now)
	}
	if !srcOK || !allOK {
		a.mu.Lock()
		a.suppressed[string(code)]++
		a.mu.Unlock()
		if !srcOK {
			return limited(State{}, retry, "from this address after failed authentications")
		}
		return err
	}
	e := &daoguard.AuditEntry{ActorID: "anonymous", ActorKind: "anonymous", Event: "auth.failed"}
	// Only a request whose signature verified speaks for its principal;
	// before that, anyone who knows a key id (not a secret) could put
	// entries under the key owner's name. A replay verifies too, but was
	// sent by whoever captured it.
	// A body that does not match its signed digest verifies too (the
	// signature covers the digest, not the body): anyone holding a captured
	// request can send it with another body.
	attributable := id != nil && id.Principal != nil && id.verified && code != daoguard.CodeNonceReused && code != daoguard.CodeDigestMismatch
	if attributable || code == daoguard.CodeWrongEnvironment {
		e.Event = "auth.denied" // authentic (or of the wrong environment), but not allowed
	}
	if attributable {
		e.OrgID, e.ActorID, e.ActorKind = id.Principal.OrgID, id.Principal.ID, id.Principal.Kind.String()
	}
	// The source address is personal data, and the log can never be
	// edited: it keeps a keyed hash of it (the operator's log output, which
	// rotates, keeps the address).
	// The route, not the raw path: anyone, unsigned, chooses the path, and
	// the log keeps what it is given forever (the operator's log has it).
	route := r.Pattern
	if route == "" || route == "/" {
		route = "(no route)"
	}
	detail := map[string]string{"reason": string(code), "method": clip(r.Method), "route": route}
	if a.Pseudonyms != nil {
		detail["source"] = a.Pseudonyms.Of("source", src)
	}
	if keyID != "" {
		detail["key_id"] = keyID
	}
	e.Detail = mustJSON(detail)
	args := []any{"reason", code, "source", src, "method", clip(r.Method), "path", clip(r.URL.Path)}
	if keyID != "" {
		args = append(args, "key_id", keyID)
	}
	a.Logger.Warn("authentication failed", args...)
	// The request is refused whatever happens here; a failed audit write
	// is logged loudly rather than turned into a different answer.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Store.Update(ctx, func(tx daoguard.Tx) error { return tx.Append(ctx, e) }); err != nil {
		a.Logger.Error("audit: could not record an authentication failure", "reason", code, "err", err)
	}
	return err
}

// Flush writes the last-used times gathered since the previous flush, and
// one audit entry counting the failures that were rate limited.
func (a *Authenticator) Flush(ctx context.Context) error {
	a.mu.Lock()
	used, suppressed := a.used, a.suppressed
	a.used, a.suppressed = map[string]time.Time{}, map[string]int{}
	a.mu.Unlock()
	if len(suppressed) > 0 {
		total := 0
		for _, n := range suppressed {
			total += n
		}
		a.Logger.Warn("authentication failures over the rate limit", "count", total)
		e := &daoguard.AuditEntry{ActorID: "anonymous", ActorKind: "anonymous", Event: "auth.failures_suppressed",
			Detail: mustJSON(map[string]any{"count": total, "by_reason": suppressed})}
		if err := a.Store.Update(ctx, func(tx daoguard.Tx) error { return tx.Append(ctx, e) }); err != nil {
			a.mu.Lock() // keep everything for the next flush
			for k, n := range suppressed {
				a.suppressed[k] += n
			}
			for k, t := range used {
				if t.After(a.used[k]) {
					a.used[k] = t
				}
			}
			a.mu.Unlock()
			return err
		}
	}
	if len(used) == 0 {
		return nil
	}
	err := a.Store.Update(ctx, func(tx daoguard.Tx) error { return tx.TouchCredentials(ctx, used) })
	if err != nil { // keep them for the next flush
		a.mu.Lock()
		for k, t := range used {
			if t.After(a.used[k]) {
				a.used[k] = t
			}
		}
		a.mu.Unlock()
	}
	return err
}

// Run flushes last-used times, purges expired nonces and sweeps idle rate
// limit buckets every interval until ctx ends, then flushes once more.
func (a *Authenticator) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := a.Flush(fctx); err != nil {
				a.Logger.Error("flush last-used times", "err", err)
			}
			cancel()
			return
		case <-t.C:
		}
		if err := a.Flush(ctx); err != nil {
			a.Logger.Error("flush last-used times", "err", err)
		}
		now := a.Now()
		if err := a.Store.Update(ctx, func(tx daoguard.Tx) error { _, err := tx.PurgeNonces(ctx, now); return err }); err != nil {
			a.Logger.Error("purge nonces", "err", err)
		}
		a.KeyLimit.Sweep(now)
		a.FailLimit.Sweep(now)
	}
}

// source is the request's peer address. Behind a proxy it is the proxy's:
// daoguard does not trust X-Forwarded-For (a client could forge it to
// dodge the failed-authentication limit).
func source(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return CanonicalAddr(host)
}

// CanonicalAddr is the one spelling of an IP address (IPv4-mapped IPv6
// as IPv4), so that its pseudonym does not depend on how it was written.
func CanonicalAddr(s string) string {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("").String()
	}
	return s
}
