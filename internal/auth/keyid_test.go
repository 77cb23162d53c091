package auth

import (
	"strings"
	"testing"

	"github.com/daoguard/daoguard"
)

func TestKeyID(t *testing.T) {
	for _, env := range []string{EnvTest, EnvLive} {
		id := NewKeyID(env)
		if !strings.HasPrefix(id, "dg_"+env+"_") || len(id) != 38 {
			t.Fatalf("id %q", id)
		}
		got, err := ParseKeyID(id)
		if err != nil || got != env {
			t.Fatalf("ParseKeyID(%q) = %q, %v", id, got, err)
		}
		// Any single-character change is caught by the checksum or the form.
		for i := 8; i < len(id); i++ {
			b := []byte(id)
			if b[i] == 'a' {
				b[i] = 'b'
			} else {
				b[i] = 'a'
			}
			if _, err := ParseKeyID(string(b)); daoguard.ErrorCode(err) != daoguard.CodeInvalid {
				t.Fatalf("corrupted id %q accepted", b)
			}
		}
	}
	for _, bad := range []string{"", "dg_test_", "dg_prod_" + strings.Repeat("a", 30), "xx_test_" + strings.Repeat("a", 30), NewKeyID(EnvTest) + "0"} {
		if _, err := ParseKeyID(bad); err == nil {
			t.Errorf("ParseKeyID(%q) accepted", bad)
		}
	}
}

func FuzzParseKeyID(f *testing.F) {
	f.Add(NewKeyID(EnvTest))
	f.Add("dg_live_0000")
	f.Fuzz(func(t *testing.T, s string) {
		env, err := ParseKeyID(s)
		if err == nil && env != EnvTest && env != EnvLive {
			t.Fatalf("accepted %q with env %q", s, env)
		}
	})
}
