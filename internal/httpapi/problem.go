package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/daoguard/daoguard"
)

// statusOf is the one table that turns error codes into HTTP statuses.
var statusOf = map[daoguard.Code]int{
	daoguard.CodeInvalid:             http.StatusBadRequest,
	daoguard.CodeInvalidAmount:       http.StatusBadRequest,
	daoguard.CodeAddressChecksum:     http.StatusBadRequest,
	daoguard.CodeUnknownAccount:      http.StatusUnprocessableEntity,
	daoguard.CodeUnknownAsset:        http.StatusUnprocessableEntity,
	daoguard.CodeNotFound:            http.StatusNotFound,
	daoguard.CodeConflict:            http.StatusConflict,
	daoguard.CodeIllegalTransition:   http.StatusConflict,
	daoguard.CodeIdempotencyMismatch: http.StatusUnprocessableEntity,
	daoguard.CodeDuplicateApproval:   http.StatusConflict,
	daoguard.CodeNotHuman:            http.StatusForbidden,
	daoguard.CodeForbidden:           http.StatusForbidden,
	daoguard.CodeOrgPaused:           http.StatusLocked,
	daoguard.CodeAgentSuspended:      http.StatusForbidden,
	daoguard.CodeAutonomyRaise:       http.StatusForbidden,
	daoguard.CodeExpired:             http.StatusGone,
	daoguard.CodeIncompatibleStore:   http.StatusServiceUnavailable,
	daoguard.CodeInvalidPolicy:       http.StatusUnprocessableEntity,
	daoguard.CodeAuditTampered:       http.StatusServiceUnavailable, // its own log failed verification: the gateway must not go on
	daoguard.CodeOwnerSignature:      http.StatusUnprocessableEntity,
	daoguard.CodeNotSafeOwner:        http.StatusForbidden,
	daoguard.CodeDuplicateSignature:  http.StatusConflict,
	daoguard.CodeThresholdNotMet:     http.StatusConflict,
	daoguard.CodeConfig:              http.StatusInternalServerError,
	daoguard.CodeUnavailable:         http.StatusServiceUnavailable,
	daoguard.CodeInternal:            http.StatusInternalServerError,
	daoguard.CodeSignatureMissing:    http.StatusUnauthorized,
	daoguard.CodeSignatureInvalid:    http.StatusUnauthorized,
	daoguard.CodeDigestMismatch:      http.StatusUnauthorized,
	daoguard.CodeSignatureExpired:    http.StatusUnauthorized,
	daoguard.CodeSignatureFuture:     http.StatusUnauthorized,
	daoguard.CodeNonceReused:         http.StatusUnauthorized,
	daoguard.CodeUnknownKey:          http.StatusUnauthorized,
	daoguard.CodeKeyRevoked:          http.StatusUnauthorized,
	daoguard.CodeKeyExpired:          http.StatusUnauthorized,
	daoguard.CodeAlgMismatch:         http.StatusUnauthorized,
	daoguard.CodeWrongEnvironment:    http.StatusForbidden,
	daoguard.CodeMissingScope:        http.StatusForbidden,
	daoguard.CodeEd25519Required:     http.StatusForbidden,
	daoguard.CodeRateLimited:         http.StatusTooManyRequests,
	daoguard.CodeBodyTooLarge:        http.StatusRequestEntityTooLarge,
	daoguard.CodeUnsupportedMedia:    http.StatusUnsupportedMediaType,
}

// StatusOf returns the HTTP status for an error code.
func StatusOf(c daoguard.Code) int {
	if s, ok := statusOf[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Problem is an RFC 9457 problem details body with daoguard's stable code.
type Problem struct {
	Type     string   `json:"type"`
	Title    string   `json:"title"`
	Status   int      `json:"status"`
	Detail   string   `json:"detail,omitempty"`
	Code     string   `json:"code"`
	Field    string   `json:"field,omitempty"`
	Hint     string   `json:"hint,omitempty"`
	Instance string   `json:"instance,omitempty"`
	Errors   []string `json:"errors,omitempty"` // every problem found, e.g. in a policy document
}

// writeProblem answers with err as problem+json. Internal errors are logged
// with their detail and shown to the caller only as "internal error".
func writeProblem(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	code := daoguard.ErrorCode(err)
	p := Problem{
		Type:     "https://daoguard.dev/problems/" + string(code),
		Status:   StatusOf(code),
		Code:     string(code),
		Detail:   daoguard.ErrorMessage(err),
		Instance: r.URL.Path,
	}
	p.Title = http.StatusText(p.Status)
	if e, ok := err.(*daoguard.Error); ok {
		p.Field, p.Hint, p.Errors = e.Field, e.Hint, e.Details
	}
	if code == daoguard.CodeInternal {
		log.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
