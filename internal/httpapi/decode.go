package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"

	"github.com/daoguard/daoguard"
)

// amountFields hold token amounts: they are decimal strings with explicit
// units, and a JSON number there is refused as INVALID_AMOUNT (floats lose
// precision, and "1e3" is not an amount anybody should sign off on).
var amountFields = map[string]bool{"amount": true, "value": true}

// decode parses body into v strictly: exactly one JSON object, no unknown
// fields, no trailing data, the right types. An empty body is allowed only
// when optional is set (v keeps its zero value).
// Errors: INVALID_ARGUMENT, INVALID_AMOUNT.
func decode(body []byte, v any, optional bool) error {
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return nil
		}
		return daoguard.Errorf(daoguard.CodeInvalid, "a JSON body is required")
	}
	if err := checkStrict(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return daoguard.Errorf(daoguard.CodeInvalid, "the body must hold exactly one JSON object")
	}
	return nil
}

func decodeError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	var de *daoguard.Error
	switch {
	case errors.As(err, &de): // from a field's UnmarshalText
		return de
	case errors.As(err, &te):
		field := te.Field
		if i := strings.LastIndexByte(field, '.'); i >= 0 {
			field = field[i+1:]
		}
		if amountFields[field] && te.Value == "number" {
			return daoguard.FieldError(daoguard.CodeInvalidAmount, field, "amounts are decimal strings such as \"1500.00\", never JSON numbers")
		}
		return daoguard.FieldError(daoguard.CodeInvalid, field, "wrong type: got a JSON %s", te.Value)
	case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF):
		return daoguard.Errorf(daoguard.CodeInvalid, "the body is not valid JSON")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return daoguard.FieldError(daoguard.CodeInvalid, clip(field), "unknown field")
	}
	return daoguard.Errorf(daoguard.CodeInvalid, "the body could not be decoded")
}

// checkStrict refuses what encoding/json would silently accept: a key that
// appears twice in one object (the last would win, while a proxy or a log
// reader may take the first) — compared without case, because
// encoding/json matches field names without case — and null values.
func checkStrict(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type frame struct {
		object bool
		keys   map[string]bool
		key    bool // the next token in this object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return nil // malformed: the decoder reports it precisely
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if k, isKey := tok.(string); isKey && top != nil && top.object && top.key {
			// Field names are ASCII; refusing anything else also shuts out
			// Unicode case folding (encoding/json takes "ſ" for "s").
			for i := 0; i < len(k); i++ {
				if k[i] >= 0x80 {
					return daoguard.Errorf(daoguard.CodeInvalid, "field names are ASCII")
				}
			}
			lk := strings.ToLower(k)
			if top.keys[lk] {
				return daoguard.FieldError(daoguard.CodeInvalid, clip(k), "the field appears more than once")
			}
			top.keys[lk] = true
			top.key = false
			continue
		}
		if top != nil && top.object {
			top.key = true // this token is a value; a key comes next
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, keys: map[string]bool{}, key: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		case nil:
			return daoguard.Errorf(daoguard.CodeInvalid, "null is not a value here; leave the field out")
		}
	}
}
