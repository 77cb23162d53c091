package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/daoguard/daoguard"
	"github.com/dunglas/httpsfv"
)

// This file is the generic part of RFC 9421 (HTTP Message Signatures) that
// daoguard needs: parsing Signature-Input and Signature (RFC 9651
// structured fields, parsed by httpsfv), building the signature base from a
// request, and checking ed25519 and hmac-sha256 signatures with the
// standard library. Which components and parameters a request must carry
// is the profile's business (profile.go); this file only computes.
//
// Supported components: @method, @authority, @scheme, @target-uri,
// @request-target, @path, @query, and header fields by lowercase name.
// Component parameters (;sf, ;key, ;bs, ;req, ;name) are refused rather
// than half-implemented.

// Signature is one parsed signature: label, covered components and
// parameters, and the signature bytes.
type Signature struct {
	Label      string
	Components []string
	Created    int64 // 0 if absent
	Expires    int64 // 0 if absent
	Nonce      string
	KeyID      string
	Alg        string
	Tag        string
	Value      []byte // the signature bytes from the Signature field
	params     string // the serialized @signature-params value
}

// invalid is the error for every malformed signature field: the details go
// in the message (they help an honest client), never in a different code.
func invalid(format string, args ...any) error {
	return &daoguard.Error{Code: daoguard.CodeSignatureInvalid, Message: fmt.Sprintf(format, args...),
		Hint: "sign as API.md describes: RFC 9421, label sig1, components \"@method\" \"@path\" \"@query\" \"content-digest\""}
}

// ParseSignature returns the signature with the given label from the
// request's Signature-Input and Signature fields.
// Errors: SIGNATURE_MISSING, SIGNATURE_INVALID.
func ParseSignature(h http.Header, label string) (*Signature, error) {
	// Bound the work done before the key is known: the profile's fields
	// are a few hundred bytes, and parsing tens of kilobytes of components
	// would cost milliseconds of CPU per unauthenticated request.
	if fieldLen(h, "Signature-Input") > maxSignatureField || fieldLen(h, "Signature") > maxSignatureField {
		return nil, invalid("Signature-Input or Signature is longer than %d bytes", maxSignatureField)
	}
	if s, ok := parseCanonical(h, label); ok {
		return s, nil
	}
	return parseStructured(h, label)
}

// maxSignatureField bounds each of Signature-Input and Signature (all lines
// together).
const maxSignatureField = 4096

// maxCanonicalComponents bounds the fast path's duplicate check (quadratic
// in the number of components); the profile covers 4.
const maxCanonicalComponents = 16

func fieldLen(h http.Header, name string) int {
	n := 0
	for _, v := range h.Values(name) {
		n += len(v)
	}
	return n
}

// parseCanonical is ParseSignature's fast path, for what conforming signers
// send: one signature, each field on one line, written exactly as RFC 9651
// serializes it, with only the parameters the profile knows. It reads that
// form with plain string operations and no allocations beyond the result
// (httpsfv's general parser was half of verification's CPU). Anything else
// (other members, whitespace, escapes, other parameter types, duplicates)
// is left to parseStructured, so this path can only agree with it: a
// differential fuzz test (FuzzParseSignature) checks that whenever this
// path accepts, parseStructured returns the same signature.
func parseCanonical(h http.Header, label string) (*Signature, bool) {
	inputs, sigs := h.Values("Signature-Input"), h.Values("Signature")
	if len(inputs) != 1 || len(sigs) != 1 {
		return nil, false
	}
	in, ok := strings.CutPrefix(inputs[0], label+"=")
	if !ok {
		return nil, false
	}
	v, ok := strings.CutPrefix(sigs[0], label+"=:")
	if !ok || !strings.HasSuffix(v, ":") {
		return nil, false
	}
	b64 := v[:len(v)-1]
	value, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || base64.StdEncoding.EncodeToString(value) != b64 {
		return nil, false
	}
	s := &Signature{Label: label, Value: value, params: in}

	// The inner list: ( "name" SP "name" ... ).
	rest, ok := strings.CutPrefix(in, "(")
	if !ok {
		return nil, false
	}
	for !strings.HasPrefix(rest, ")") {
		if len(s.Components) > 0 {
			if rest, ok = strings.CutPrefix(rest, " "); !ok {
				return nil, false
			}
		}
		if len(s.Components) == maxCanonicalComponents {
			return nil, false
		}
		name, after, ok := cutQuoted(rest, isComponentByte)
		if !ok || name == "" || slices.Contains(s.Components, name) {
			return nil, false
		}
		s.Components = append(s.Components, name)
		rest = after
	}
	rest = rest[1:]

	// Its parameters: ;key=value, each known key at most once.
	seen := 0
	for rest != "" {
		key, after, ok := strings.Cut(strings.TrimPrefix(rest, ";"), "=")
		if !ok || !strings.HasPrefix(rest, ";") {
			return nil, false
		}
		bit := 0
		var dst *string
		var num *int64
		switch key {
		case "created":
			bit, num = 1, &s.Created
		case "expires":
			bit, num = 2, &s.Expires
		case "nonce":
			bit, dst = 4, &s.Nonce
		case "keyid":
			bit, dst = 8, &s.KeyID
		case "alg":
			bit, dst = 16, &s.Alg
		case "tag":
			bit, dst = 32, &s.Tag
		default:
			return nil, false
		}
		if seen&bit != 0 {
			return nil, false
		}
		seen |= bit
		if num != nil {
			// A positive integer as RFC 9651 writes it: no sign, no
			// leading zero, at most 15 digits.
			end := 0
			for end < len(after) && end < 16 && after[end] >= '0' && after[end] <= '9' {
				end++
			}
			if end == 0 || end > 15 || after[0] == '0' {
				return nil, false
			}
			*num, _ = strconv.ParseInt(after[:end], 10, 64)
			rest = after[end:]
		} else {
			if *dst, rest, ok = cutQuoted(after, isPlainStringByte); !ok {
				return nil, false
			}
		}
	}
	return s, true
}

// cutQuoted reads a string that needs no escaping ("..." of bytes that
// pass ok) from the start of v and returns it and what follows.
func cutQuoted(v string, ok func(byte) bool) (string, string, bool) {
	if !strings.HasPrefix(v, `"`) {
		return "", "", false
	}
	for i := 1; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"':
			return v[1:i], v[i+1:], true
		case !ok(c):
			return "", "", false
		}
	}
	return "", "", false
}

// isComponentByte: lowercase field names and derived component names.
func isComponentByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '@' || c == '-' || c == '_' || c == '.'
}

// isPlainStringByte: printable ASCII that an sf-string carries unescaped.
func isPlainStringByte(c byte) bool { return c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' }

// parseStructured is ParseSignature's general path: both fields parsed as
// RFC 9651 dictionaries by httpsfv.
func parseStructured(h http.Header, label string) (*Signature, error) {
	inputs, sigs := h.Values("Signature-Input"), h.Values("Signature")
	if len(inputs) == 0 && len(sigs) == 0 {
		return nil, &daoguard.Error{Code: daoguard.CodeSignatureMissing, Message: "the request is not signed (no Signature-Input or Signature field)",
			Hint: "every /v1/ request must be signed; the Go client and the CLI do it for you"}
	}
	in, err := httpsfv.UnmarshalDictionary(inputs)
	if err != nil {
		return nil, invalid("Signature-Input is not a structured-field dictionary")
	}
	sd, err := httpsfv.UnmarshalDictionary(sigs)
	if err != nil {
		return nil, invalid("Signature is not a structured-field dictionary")
	}
	m, ok := in.Get(label)
	if !ok {
		return nil, &daoguard.Error{Code: daoguard.CodeSignatureMissing, Message: fmt.Sprintf("no signature labelled %q in Signature-Input", label)}
	}
	list, ok := m.(httpsfv.InnerList)
	if !ok {
		return nil, invalid("Signature-Input %s is not an inner list", label)
	}
	sm, ok := sd.Get(label)
	if !ok {
		return nil, &daoguard.Error{Code: daoguard.CodeSignatureMissing, Message: fmt.Sprintf("no signature labelled %q in Signature", label)}
	}
	item, ok := sm.(httpsfv.Item)
	if !ok {
		return nil, invalid("Signature %s is not a byte sequence", label)
	}
	value, ok := item.Value.([]byte)
	if !ok || len(item.Params.Names()) != 0 {
		return nil, invalid("Signature %s is not a byte sequence", label)
	}
	s := &Signature{Label: label, Value: value}
	seen := map[string]bool{}
	for _, it := range list.Items {
		name, ok := it.Value.(string)
		if !ok || len(it.Params.Names()) != 0 {
			return nil, invalid("covered components must be plain strings without parameters")
		}
		if name != strings.ToLower(name) || seen[name] {
			return nil, invalid("component %q is not lowercase or appears twice", clip(name))
		}
		seen[name] = true
		s.Components = append(s.Components, name)
	}
	for _, k := range list.Params.Names() {
		v, _ := list.Params.Get(k)
		var ok bool
		switch k {
		case "created":
			s.Created, ok = v.(int64)
			ok = ok && s.Created > 0
		case "expires":
			s.Expires, ok = v.(int64)
			ok = ok && s.Expires > 0
		case "nonce":
			s.Nonce, ok = v.(string)
		case "keyid":
			s.KeyID, ok = v.(string)
		case "alg":
			s.Alg, ok = v.(string)
		case "tag":
			s.Tag, ok = v.(string)
		default:
			return nil, invalid("unknown signature parameter %q", clip(k))
		}
		if !ok {
			return nil, invalid("signature parameter %q has the wrong type", k)
		}
	}
	// The signed @signature-params value is the canonical serialization of
	// the inner list and its parameters (RFC 9421 §2.3).
	if s.params, err = httpsfv.Marshal(list); err != nil {
		return nil, invalid("Signature-Input %s cannot be serialized", label)
	}
	return s, nil
}

// Base returns the signature base of r for s (RFC 9421 §2.5): one line per
// covered component, then the @signature-params line, joined by "\n".
// Errors: SIGNATURE_INVALID when a covered component is absent or unknown.
func (s *Signature) Base(r *http.Request) ([]byte, error) {
	path, query, err := requestTarget(r)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Grow(256)
	for _, c := range s.Components {
		v, err := componentValue(r, c, path, query)
		if err != nil {
			return nil, err
		}
		b.WriteByte('"')
		b.WriteString(c)
		b.WriteString(`": `)
		b.WriteString(v)
		b.WriteByte('\n')
	}
	b.WriteString(`"@signature-params": `)
	b.WriteString(s.params)
	return b.Bytes(), nil
}

// componentValue derives one component's value from the request as the
// server received it: the raw request target, not Go's re-encoding of it,
// because that is what the client signed. path and query are
// requestTarget's.
func componentValue(r *http.Request, c, path string, query *string) (string, error) {
	switch c {
	case "@method":
		return r.Method, nil
	case "@authority":
		return strings.ToLower(r.Host), nil
	case "@scheme":
		return scheme(r), nil
	case "@target-uri":
		return scheme(r) + "://" + strings.ToLower(r.Host) + path + queryPart(query, false), nil
	case "@request-target":
		return path + queryPart(query, false), nil
	case "@path":
		return path, nil
	case "@query":
		return queryPart(query, true), nil
	}
	if strings.HasPrefix(c, "@") {
		return "", invalid("unsupported derived component %q", clip(c))
	}
	var vals []string
	switch c {
	case "host":
		vals = []string{r.Host}
	case "content-length":
		// net/http moves Content-Length out of the header map.
		if r.ContentLength >= 0 {
			vals = []string{strconv.FormatInt(r.ContentLength, 10)}
		}
	default:
		vals = r.Header.Values(c)
	}
	if len(vals) == 0 {
		return "", invalid("covered field %q is not in the request", clip(c))
	}
	if len(vals) == 1 {
		return strings.TrimSpace(vals[0]), nil
	}
	trimmed := make([]string, len(vals)) // vals is the request's own slice: never edit it
	for i, v := range vals {
		trimmed[i] = strings.TrimSpace(v)
	}
	return strings.Join(trimmed, ", "), nil
}

// requestTarget returns the raw path and query (without "?"; nil if
// absent) of the request target, and checks that they are what the router
// acts on. A signature binds what the handler does only if the base and
// the router read the same target: any disagreement is refused.
func requestTarget(r *http.Request) (path string, query *string, err error) {
	t := r.RequestURI
	if t == "" { // a client-side request
		t = r.URL.RequestURI() // ends in "?" when ForceQuery
	}
	if !strings.HasPrefix(t, "/") {
		// Absolute form (RFC 9112 §3.2.2), as a proxy would send it.
		u, perr := url.ParseRequestURI(t)
		if perr != nil || u.Scheme == "" || u.Host == "" {
			return "", nil, invalid("unsupported request target")
		}
		t = u.RequestURI()
	}
	if p, q, ok := strings.Cut(t, "?"); ok {
		path, query = p, &q
	} else {
		path = t
	}
	if path == "" {
		path = "/"
	}
	// The router matches segments of r.URL.EscapedPath() and handlers read
	// r.URL's query: both must be exactly what was signed, segment by
	// segment (so an escaped "/" inside a signed segment can never become
	// a segment boundary for the router).
	rawQuery := ""
	if query != nil {
		rawQuery = *query
	}
	if r.URL != nil {
		routed := r.URL.EscapedPath()
		if routed == "" {
			routed = "/"
		}
		if !sameSegments(path, routed) || rawQuery != r.URL.RawQuery {
			return "", nil, invalid("the request target is ambiguous")
		}
	}
	return path, query, nil
}

// sameSegments reports whether two escaped paths have the same segments
// once each segment is unescaped.
func sameSegments(a, b string) bool {
	if a == b { // the common case: the router reads the path as sent
		return true
	}
	as, bs := strings.Split(a, "/"), strings.Split(b, "/")
	if len(as) != len(bs) {
		return false
	}
	for i := range as {
		x, err1 := url.PathUnescape(as[i])
		y, err2 := url.PathUnescape(bs[i])
		if err1 != nil || err2 != nil || x != y {
			return false
		}
	}
	return true
}

// queryPart renders the query with its "?". RFC 9421 §2.2.7: an absent or
// empty query is "?" for @query.
func queryPart(q *string, always bool) string {
	if q == nil {
		if always {
			return "?"
		}
		return ""
	}
	return "?" + *q
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	if r.URL.Scheme != "" {
		return strings.ToLower(r.URL.Scheme)
	}
	return "http"
}

// VerifyEd25519 reports whether sig is pub's ed25519 signature of base.
func VerifyEd25519(pub, base, sig []byte) bool {
	return len(pub) == ed25519.PublicKeySize && ed25519.Verify(ed25519.PublicKey(pub), base, sig)
}

// VerifyHMAC reports whether sig is HMAC-SHA256(secret, base), comparing
// in constant time so that the comparison leaks nothing about the MAC.
func VerifyHMAC(secret, base, sig []byte) bool {
	m := hmac.New(sha256.New, secret)
	m.Write(base)
	return hmac.Equal(m.Sum(nil), sig)
}

// CheckContentDigest verifies an RFC 9530 Content-Digest field against the
// body received. At least one sha-256 or sha-512 digest must be present and
// every such digest must match; other algorithms are ignored (RFC 9530
// lets a recipient pick the ones it supports).
// Errors: DIGEST_MISMATCH.
func CheckContentDigest(h http.Header, body []byte) error {
	vals := h.Values("Content-Digest")
	if len(vals) == 0 {
		return &daoguard.Error{Code: daoguard.CodeDigestMismatch, Message: "the request has no Content-Digest field", Hint: "send Content-Digest: sha-256=:<base64 of SHA-256 of the body>: (RFC 9530)"}
	}
	d, err := httpsfv.UnmarshalDictionary(vals)
	if err != nil {
		return &daoguard.Error{Code: daoguard.CodeDigestMismatch, Message: "Content-Digest is not a structured-field dictionary"}
	}
	checked := 0
	for _, alg := range d.Names() {
		var want []byte
		switch alg {
		case "sha-256":
			s := sha256.Sum256(body)
			want = s[:]
		case "sha-512":
			s := sha512.Sum512(body)
			want = s[:]
		default:
			continue
		}
		m, _ := d.Get(alg)
		it, ok := m.(httpsfv.Item)
		got, isBytes := it.Value.([]byte)
		if !ok || !isBytes || subtle.ConstantTimeCompare(got, want) != 1 {
			return &daoguard.Error{Code: daoguard.CodeDigestMismatch, Message: "Content-Digest does not match the body received"}
		}
		checked++
	}
	if checked == 0 {
		return &daoguard.Error{Code: daoguard.CodeDigestMismatch, Message: "Content-Digest has no sha-256 or sha-512 digest"}
	}
	return nil
}

// ContentDigest returns the Content-Digest field value for body (sha-256).
func ContentDigest(body []byte) string {
	s := sha256.Sum256(body)
	return "sha-256=:" + base64.StdEncoding.EncodeToString(s[:]) + ":"
}

// clip shortens untrusted input before it is echoed in an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
