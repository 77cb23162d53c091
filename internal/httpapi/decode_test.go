package httpapi

import (
	"testing"

	"github.com/daoguard/daoguard"
	"github.com/daoguard/daoguard/client"
)

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		optional   bool
		code       daoguard.Code
		field      string
	}{
		{"OK", `{"account":"ops","kind":"transfer","amount":"1.5"}`, false, "", ""},
		{"OK_EmptyOptional", ``, true, "", ""},
		{"ErrEmptyRequired", `  `, false, daoguard.CodeInvalid, ""},
		{"ErrMalformed", `{"account":`, false, daoguard.CodeInvalid, ""},
		{"ErrNotJSON", `account=ops`, false, daoguard.CodeInvalid, ""},
		{"ErrUnknownField", `{"account":"ops","limit_override":true}`, false, daoguard.CodeInvalid, "limit_override"},
		{"ErrFloatAmount", `{"amount":1.5}`, false, daoguard.CodeInvalidAmount, "amount"},
		{"ErrIntegerAmount", `{"amount":15}`, false, daoguard.CodeInvalidAmount, "amount"},
		{"ErrNumberValue", `{"value":1e18}`, false, daoguard.CodeInvalidAmount, "value"},
		{"ErrWrongType", `{"account":["ops"]}`, false, daoguard.CodeInvalid, "account"},
		{"ErrTrailingData", `{"account":"ops"} {"account":"treasury"}`, false, daoguard.CodeInvalid, ""},
		{"ErrArray", `[{"account":"ops"}]`, false, daoguard.CodeInvalid, ""},
		{"ErrDuplicateKey", `{"amount":"1","amount":"2"}`, false, daoguard.CodeInvalid, "amount"},
		{"ErrDuplicateKeyOtherCase", `{"amount":"1","AMOUNT":"3"}`, false, daoguard.CodeInvalid, "AMOUNT"},
		{"ErrNull", `{"account":"ops","rationale":null}`, false, daoguard.CodeInvalid, ""},
		{"ErrUnicodeFoldedDuplicate", `{"asset":"USDC","aſſet":"EVIL"}`, false, daoguard.CodeInvalid, ""},
		{"ErrEscapedDuplicate", `{"amount":"1","\u0061mount":"2"}`, false, daoguard.CodeInvalid, "amount"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var in daoguard.Intent
			err := decode([]byte(tc.body), &in, tc.optional)
			if daoguard.ErrorCode(err) != tc.code {
				t.Fatalf("err = %v, want %s", err, tc.code)
			}
			if e, ok := err.(*daoguard.Error); ok && e.Field != tc.field {
				t.Fatalf("field %q, want %q", e.Field, tc.field)
			}
		})
	}
	t.Run("OK_SameKeyInSiblingObjects", func(t *testing.T) {
		if err := checkStrict([]byte(`{"a":{"x":"1"},"b":{"x":"2"},"c":[{"x":"3"},{"x":"4"}]}`)); err != nil {
			t.Fatal(err)
		}
		if err := checkStrict([]byte(`{"a":{"x":"1","X":"2"}}`)); daoguard.ErrorCode(err) != daoguard.CodeInvalid {
			t.Fatalf("nested duplicate: %v", err)
		}
	})
	t.Run("ErrBadEnumInBody", func(t *testing.T) {
		var req client.AutonomyRequest
		if err := decode([]byte(`{"level":"godmode"}`), &req, false); daoguard.ErrorCode(err) != daoguard.CodeInvalid {
			t.Fatalf("err = %v", err)
		}
	})
}

// FuzzDecode: any body decodes or fails with one of the two stable codes,
// and never panics.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"account":"ops","kind":"transfer","asset":"USDC","to":"0x1111111111111111111111111111111111111111","amount":"1500.00","rationale":"x"}`))
	f.Add([]byte(`{"amount":1.5}`))
	f.Add([]byte(`{"level":"supervised","reason":"r"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, v := range []any{new(daoguard.Intent), new(client.AutonomyRequest), new(client.KeyRequest), new(client.VoteRequest)} {
			err := decode(body, v, false)
			if c := daoguard.ErrorCode(err); c != "" && c != daoguard.CodeInvalid && c != daoguard.CodeInvalidAmount {
				t.Fatalf("code %s for %q: %v", c, body, err)
			}
		}
	})
}
