package daoguard

import (
	"errors"
	"fmt"
)

// Code is a stable, UPPER_SNAKE_CASE error code. Clients branch on codes,
// never on messages. Every code is listed in Codes and translated to an HTTP
// status and a CLI exit code in exactly one table per edge.
type Code string

// Error codes. Append only: a published code never changes meaning.
const (
	CodeInvalid             Code = "INVALID_ARGUMENT"          // a field is malformed or missing
	CodeInvalidAmount       Code = "INVALID_AMOUNT"            // an amount is not a decimal string the asset can hold
	CodeAddressChecksum     Code = "ADDRESS_CHECKSUM"          // a mixed-case address fails its EIP-55 checksum (a typo or a tampered address)
	CodeUnknownAccount      Code = "UNKNOWN_ACCOUNT"           // the account name is not configured
	CodeUnknownAsset        Code = "UNKNOWN_ASSET"             // the asset symbol or address is not configured
	CodeNotFound            Code = "NOT_FOUND"                 // the object does not exist or is not visible to the caller
	CodeConflict            Code = "CONFLICT"                  // a concurrent change won; retry with fresh state
	CodeIllegalTransition   Code = "ILLEGAL_TRANSITION"        // the action's state does not allow this operation
	CodeIdempotencyMismatch Code = "IDEMPOTENCY_MISMATCH"      // an Idempotency-Key was reused with a different request
	CodeDuplicateApproval   Code = "DUPLICATE_APPROVAL"        // this human already approved or rejected the action
	CodeNotHuman            Code = "NOT_HUMAN"                 // only a human principal may do this
	CodeForbidden           Code = "FORBIDDEN"                 // the principal lacks the role or permission
	CodeOrgPaused           Code = "ORG_PAUSED"                // the kill switch is on: no agent submissions, no execution
	CodeAgentSuspended      Code = "AGENT_SUSPENDED"           // the agent's autonomy is suspended
	CodeAutonomyRaise       Code = "AUTONOMY_RAISE_FORBIDDEN"  // only a human may raise an agent's autonomy
	CodeExpired             Code = "ACTION_EXPIRED"            // the action's approval or execution window has passed
	CodeIncompatibleStore   Code = "INCOMPATIBLE_STORE"        // the store's data version is not one this binary reads
	CodeConfig              Code = "INVALID_CONFIG"            // the configuration failed validation
	CodeUnavailable         Code = "UNAVAILABLE"               // a dependency is down; safe to retry
	CodeInternal            Code = "INTERNAL"                  // a bug or an unexpected failure; details are logged, not shown
	CodeOwnerSignature      Code = "OWNER_SIGNATURE_INVALID"   // a Safe owner's signature is malformed or does not sign this Safe transaction
	CodeNotSafeOwner        Code = "NOT_SAFE_OWNER"            // the signer is not an owner of the Safe
	CodeDuplicateSignature  Code = "DUPLICATE_OWNER_SIGNATURE" // two signatures of one owner
	CodeThresholdNotMet     Code = "THRESHOLD_NOT_MET"         // fewer valid owner signatures than the Safe's threshold
	CodeInvalidPolicy       Code = "INVALID_POLICY"            // a policy document failed validation; Details lists every problem with its line
	CodeAuditTampered       Code = "AUDIT_TAMPERED"            // the audit log does not verify: an entry or a tree hash was changed, removed or moved

	// Authentication (401) and authorization (403) of signed requests.
	CodeSignatureMissing Code = "SIGNATURE_MISSING" // no Signature / Signature-Input for label sig1
	CodeSignatureInvalid Code = "SIGNATURE_INVALID" // malformed, not daoguard's profile, or does not verify
	CodeDigestMismatch   Code = "DIGEST_MISMATCH"   // Content-Digest missing or not the digest of the body received
	CodeSignatureExpired Code = "SIGNATURE_EXPIRED" // created is older than the signature window
	CodeSignatureFuture  Code = "SIGNATURE_FUTURE"  // created is too far in the future (clock skew)
	CodeNonceReused      Code = "NONCE_REUSED"      // the nonce was already used with this key: a replay
	CodeUnknownKey       Code = "UNKNOWN_KEY"       // no such key id
	CodeKeyRevoked       Code = "KEY_REVOKED"       // the key was revoked
	CodeKeyExpired       Code = "KEY_EXPIRED"       // the key expired, or its rotation overlap ended
	CodeAlgMismatch      Code = "ALG_MISMATCH"      // the signature's alg is not the key's
	CodeWrongEnvironment Code = "WRONG_ENVIRONMENT" // a test key on a live deployment, or the reverse
	CodeMissingScope     Code = "MISSING_SCOPE"     // the key lacks the scope the endpoint needs
	CodeEd25519Required  Code = "ED25519_REQUIRED"  // the endpoint moves money or control: a shared secret is not enough
	CodeRateLimited      Code = "RATE_LIMITED"      // too many requests; see Retry-After
	CodeBodyTooLarge     Code = "BODY_TOO_LARGE"    // the request body exceeds the limit
	CodeUnsupportedMedia Code = "UNSUPPORTED_MEDIA" // the body is not application/json
)

// Codes lists every code, for the edge tables and their completeness tests.
var Codes = []Code{
	CodeInvalid, CodeInvalidAmount, CodeAddressChecksum, CodeUnknownAccount, CodeUnknownAsset,
	CodeNotFound, CodeConflict, CodeIllegalTransition, CodeIdempotencyMismatch,
	CodeDuplicateApproval, CodeNotHuman, CodeForbidden, CodeOrgPaused,
	CodeAgentSuspended, CodeAutonomyRaise, CodeExpired, CodeIncompatibleStore,
	CodeConfig, CodeUnavailable, CodeInternal, CodeInvalidPolicy, CodeAuditTampered,
	CodeOwnerSignature, CodeNotSafeOwner, CodeDuplicateSignature, CodeThresholdNotMet,
	CodeSignatureMissing, CodeSignatureInvalid, CodeDigestMismatch, CodeSignatureExpired,
	CodeSignatureFuture, CodeNonceReused, CodeUnknownKey, CodeKeyRevoked, CodeKeyExpired,
	CodeAlgMismatch, CodeWrongEnvironment, CodeMissingScope, CodeEd25519Required,
	CodeRateLimited, CodeBodyTooLarge, CodeUnsupportedMedia,
}

// Error is the one error type that crosses package boundaries. Message is
// safe to show to the caller; Hint tells an operator what to do; Field names
// the offending input field, if any.
type Error struct {
	Code    Code
	Message string
	Hint    string
	Field   string
	Details []string // caller-safe specifics, e.g. each problem of a policy document
}

func (e *Error) Error() string {
	s := string(e.Code) + ": " + e.Message
	if e.Field != "" {
		s = string(e.Code) + ": " + e.Field + ": " + e.Message
	}
	if e.Hint != "" {
		s += " (hint: " + e.Hint + ")"
	}
	return s
}

// Errorf returns an *Error with a formatted, caller-safe message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError returns an *Error that names the input field at fault.
func FieldError(code Code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err: the Code of the first *Error in its
// chain, CodeInternal for any other non-nil error, "" for nil.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns the caller-safe message of err. Errors that are not
// *Error may carry internal detail (SQL, paths), so they are never shown.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// clip shortens untrusted input before it is echoed in an error message.
func clip(s string) string {
	const n = 40
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
