package auth

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	mathrand "math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/daoguard/daoguard"
)

type vectorFile struct {
	Request struct {
		Method, Target string
		Headers        [][2]string
		Body           string
	}
	Keys map[string]struct {
		Alg           string
		SecretBase64  string `json:"secret_base64"`
		PublicSPKIPEM string `json:"public_spki_pem"`
	}
	Vectors []struct {
		Name, Label, Keyid string
		SignatureInput     string `json:"signature_input"`
		Signature          string
		SignatureBase      string `json:"signature_base"`
	}
}

// TestRFC9421Vectors passes the RFC's own examples (Appendix B.2.5,
// hmac-sha256, and B.2.6, ed25519) through the parser, the base builder and
// the verifiers, with the RFC's keys in a test key store.
func TestRFC9421Vectors(t *testing.T) {
	b, err := os.ReadFile("testdata/rfc9421-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vf vectorFile
	if err := json.Unmarshal(b, &vf); err != nil {
		t.Fatal(err)
	}
	// A test key store: key id → verify function.
	keys := map[string]func(base, sig []byte) bool{}
	for id, k := range vf.Keys {
		switch k.Alg {
		case "hmac-sha256":
			secret, err := base64.StdEncoding.DecodeString(k.SecretBase64)
			if err != nil {
				t.Fatal(err)
			}
			keys[id] = func(base, sig []byte) bool { return VerifyHMAC(secret, base, sig) }
		case "ed25519":
			blk, _ := pem.Decode([]byte(k.PublicSPKIPEM))
			pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			keys[id] = func(base, sig []byte) bool { return VerifyEd25519(pub.(ed25519.PublicKey), base, sig) }
		}
	}
	if len(vf.Vectors) != 2 {
		t.Fatalf("want the B.2.5 and B.2.6 vectors, have %d", len(vf.Vectors))
	}
	for _, v := range vf.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			// The request as a server receives it, parsed from the wire.
			var raw strings.Builder
			raw.WriteString(vf.Request.Method + " " + vf.Request.Target + " HTTP/1.1\r\n")
			for _, h := range vf.Request.Headers {
				raw.WriteString(h[0] + ": " + h[1] + "\r\n")
			}
			raw.WriteString("Signature-Input: " + v.SignatureInput + "\r\nSignature: " + v.Signature + "\r\n\r\n" + vf.Request.Body)
			r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw.String())))
			if err != nil {
				t.Fatal(err)
			}
			// Both parsers: the RFC's fields are canonical, so the fast
			// path takes them, and httpsfv's general path must agree.
			fast, ok := parseCanonical(r.Header, v.Label)
			if !ok {
				t.Fatal("the fast path refused the RFC's canonical fields")
			}
			slow, err := parseStructured(r.Header, v.Label)
			if err != nil {
				t.Fatal(err)
			}
			var base []byte
			for _, s := range []*Signature{fast, slow} {
				if base, err = s.Base(r); err != nil {
					t.Fatal(err)
				}
				if string(base) != v.SignatureBase {
					t.Fatalf("signature base:\n%s\nwant:\n%s", base, v.SignatureBase)
				}
			}
			sig := fast
			verify := keys[sig.KeyID]
			if verify == nil || !verify(base, sig.Value) {
				t.Fatalf("the RFC's signature does not verify with key %q", sig.KeyID)
			}
			bad := append([]byte{}, sig.Value...)
			bad[0] ^= 1
			if verify(base, bad) {
				t.Fatal("a flipped signature verified")
			}
			if err := CheckContentDigest(r.Header, []byte(vf.Request.Body)); err != nil {
				t.Fatalf("the RFC request's Content-Digest (sha-512): %v", err)
			}
		})
	}
}

func TestSignRequestRoundTrip(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	body := []byte(`{"x":"1"}`)
	r, _ := http.NewRequest("POST", "http://127.0.0.1:8787/v1/actions/act_1/approve?a=b%20c&d", strings.NewReader(string(body)))
	if err := SignRequest(r, body, &Ed25519Signer{ID: "dg_test_k", Key: priv}, time.Unix(1_700_000_000, 0)); err != nil {
		t.Fatal(err)
	}
	sig, ok := parseCanonical(r.Header, Label)
	if !ok {
		t.Fatal("the fast path refused the fields SignRequest writes")
	}
	if err := checkProfile(sig, r.Header); err != nil {
		t.Fatal(err)
	}
	base, _ := sig.Base(r)
	want := `"@method": POST
"@path": /v1/actions/act_1/approve
"@query": ?a=b%20c&d
"content-digest": ` + ContentDigest(body) + `
"@signature-params": ("@method" "@path" "@query" "content-digest");created=1700000000;nonce="` + sig.Nonce + `";keyid="dg_test_k";alg="ed25519";tag="daoguard"`
	if string(base) != want {
		t.Fatalf("base:\n%s\nwant\n%s", base, want)
	}
	if !VerifyEd25519(pub, base, sig.Value) {
		t.Fatal("own signature does not verify")
	}
}

func TestParseSignatureErrors(t *testing.T) {
	good := `sig1=("@method" "@path" "@query" "content-digest");created=1;nonce="n";keyid="k";alg="ed25519";tag="daoguard"`
	for _, tc := range []struct {
		name, input, sig string
		code             daoguard.Code
	}{
		{"ErrNone", "", "", daoguard.CodeSignatureMissing},
		{"ErrOtherLabel", strings.Replace(good, "sig1", "sig2", 1), "sig2=:AA==:", daoguard.CodeSignatureMissing},
		{"ErrNoSignatureValue", good, "", daoguard.CodeSignatureMissing},
		{"ErrNotDictionary", "sig1", "sig1=:AA==:", daoguard.CodeSignatureInvalid},
		{"ErrNotInnerList", `sig1="x"`, "sig1=:AA==:", daoguard.CodeSignatureInvalid},
		{"ErrSignatureNotBytes", good, `sig1="AA"`, daoguard.CodeSignatureInvalid},
		{"ErrComponentParams", `sig1=("content-digest";sf);created=1`, "sig1=:AA==:", daoguard.CodeSignatureInvalid},
		{"ErrUppercaseComponent", `sig1=("Content-Digest");created=1`, "sig1=:AA==:", daoguard.CodeSignatureInvalid},
		{"ErrDuplicateComponent", `sig1=("@path" "@path");created=1`, "sig1=:AA==:", daoguard.CodeSignatureInvalid},
		{"ErrUnknownParam", `sig1=("@path");created=1;foo=1`, "sig1=:AA==:", daoguard.CodeSignatureInvalid},
		{"ErrCreatedNotInteger", `sig1=("@path");created="1"`, "sig1=:AA==:", daoguard.CodeSignatureInvalid},
		{"ErrCreatedNegative", `sig1=("@path");created=-1`, "sig1=:AA==:", daoguard.CodeSignatureInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.input != "" {
				h.Set("Signature-Input", tc.input)
			}
			if tc.sig != "" {
				h.Set("Signature", tc.sig)
			}
			_, err := ParseSignature(h, Label)
			if daoguard.ErrorCode(err) != tc.code {
				t.Fatalf("err = %v, want %s", err, tc.code)
			}
		})
	}
}

func TestContentDigest(t *testing.T) {
	body := []byte("hello")
	for _, tc := range []struct {
		name, field string
		ok          bool
	}{
		{"OK_sha256", ContentDigest(body), true},
		{"OK_UnknownAlgIgnored", "md5=:AAAA:, " + ContentDigest(body), true},
		{"ErrMissing", "", false},
		{"ErrOtherBody", ContentDigest([]byte("hellO")), false},
		{"ErrOnlyUnknownAlg", "md5=:AAAA:", false},
		{"ErrNotBytes", `sha-256="x"`, false},
		{"ErrOneOfTwoWrong", ContentDigest(body) + ", sha-512=:AAAA:", false},
		{"ErrGarbage", "sha-256=:::", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.field != "" {
				h.Set("Content-Digest", tc.field)
			}
			err := CheckContentDigest(h, body)
			if (err == nil) != tc.ok || (err != nil && daoguard.ErrorCode(err) != daoguard.CodeDigestMismatch) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// FuzzParseSignature: any header values either parse into a signature
// whose base can be computed, or fail with one of the two stable codes.
func FuzzParseSignature(f *testing.F) {
	f.Add(`sig1=("@method" "@path" "@query" "content-digest");created=1700000000;nonce="AAECAwQFBgcICQoLDA0ODw";keyid="dg_test_x";alg="ed25519";tag="daoguard"`, `sig1=:AAAA:`)
	f.Add(`sig1=();created=1`, `sig1=::`)
	f.Add(`sig1=("@method" "@path");created=17;expires=18;nonce="a b";keyid="k";alg="x";tag="t"`, `sig1=:AAECAw==:`)
	f.Add(`sig1=("@method");created=017`, `sig1=:AA==:`)
	f.Add(`sig1=("@method");nonce="a\"b"`, `sig1=:AA==:`)
	f.Add(`sig1=("@method" "@method");created=1`, `sig1=:AA==:`)
	f.Add(`sig1=("@method");created=1;created=2`, `sig1=:AA==:`)
	f.Add(`sig1=("@method");created=1, sig1=("@path")`, `sig1=:AA==:`)
	f.Add(`sig1=("@method");created=1`, `sig1=:AA:`)
	f.Add(`sig1=("date" "@authority");created=1`, `sig1=:/w==:, sig2=:AA==:`)
	f.Fuzz(func(t *testing.T, input, sig string) {
		h := http.Header{}
		h.Set("Signature-Input", input)
		h.Set("Signature", sig)
		// Differential: the fast path may only accept what the general
		// parser reads the same way.
		if fast, ok := parseCanonical(h, Label); ok {
			slow, err := parseStructured(h, Label)
			if err != nil {
				t.Fatalf("fast path accepted what httpsfv refuses (%v)", err)
			}
			if !slices.Equal(fast.Components, slow.Components) || !bytes.Equal(fast.Value, slow.Value) || fast.params != slow.params ||
				fast.Created != slow.Created || fast.Expires != slow.Expires || fast.Nonce != slow.Nonce ||
				fast.KeyID != slow.KeyID || fast.Alg != slow.Alg || fast.Tag != slow.Tag || fast.Label != slow.Label {
				t.Fatalf("fast path and httpsfv disagree:\n%+v\n%+v", fast, slow)
			}
		}
		s, err := ParseSignature(h, Label)
		if err != nil {
			if c := daoguard.ErrorCode(err); c != daoguard.CodeSignatureInvalid && c != daoguard.CodeSignatureMissing {
				t.Fatalf("code %s", c)
			}
			return
		}
		r, _ := http.NewRequest("POST", "http://h/p?q", nil)
		r.Header.Set("Date", "x")
		r.Header.Set("Content-Digest", "y")
		if _, err := s.Base(r); err != nil && daoguard.ErrorCode(err) != daoguard.CodeSignatureInvalid {
			t.Fatalf("base: %v", err)
		}
		// The serialized parameters must parse back to the same signature.
		h.Set("Signature-Input", Label+"="+s.params)
		s2, err := ParseSignature(h, Label)
		if err != nil || s2.params != s.params {
			t.Fatalf("re-serialized params do not round-trip: %q → %v", s.params, err)
		}
	})
}

// TestRequestTarget: the base reads the target the router acts on, or the
// request is refused.
func TestRequestTarget(t *testing.T) {
	for _, tc := range []struct {
		name, target, path, query string
		ok                        bool
	}{
		{"OK_Plain", "/v1/actions?state=queued", "/v1/actions", "state=queued", true},
		{"OK_EmptyQuery", "/v1/actions?", "/v1/actions", "", true},
		{"OK_EscapedSegment", "/v1/actions/a%7Cb", "/v1/actions/a%7Cb", "", true},
		{"OK_RawPipe", "/v1/actions/a|b", "/v1/actions/a|b", "", true},
		{"OK_AbsoluteForm", "http://example.com/v1/actions?x=1", "/v1/actions", "x=1", true},
		{"OK_QueryLooksLikeURL", "/v1/actions/A/approve?://x/v1/actions/B/approve", "/v1/actions/A/approve", "://x/v1/actions/B/approve", true},
		// An escaped "/" inside a segment that the router would split.
		{"ErrEscapedSlashWithReescape", "/v1/actions/x|%2Fy", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + tc.target + " HTTP/1.1\r\nHost: h\r\n\r\n")))
			if err != nil {
				t.Fatal(err)
			}
			path, query, err := requestTarget(r)
			if !tc.ok {
				if daoguard.ErrorCode(err) != daoguard.CodeSignatureInvalid {
					t.Fatalf("target %q accepted as %q", tc.target, path)
				}
				return
			}
			q := ""
			if query != nil {
				q = *query
			}
			if err != nil || path != tc.path || q != tc.query {
				t.Fatalf("target %q: path %q query %q err %v", tc.target, path, q, err)
			}
		})
	}
	t.Run("OK_ClientSideForceQuery", func(t *testing.T) {
		r, _ := http.NewRequest("GET", "http://h/v1/actions?", nil)
		path, query, err := requestTarget(r)
		if err != nil || path != "/v1/actions" || query == nil || *query != "" {
			t.Fatalf("%q %v %v", path, query, err)
		}
	})
}

// BenchmarkVerify is the per-request verification work outside the store:
// parse both fields, build the base, recompute the digest, check an
// hmac-sha256 signature.
func BenchmarkVerify(b *testing.B) {
	secret := make([]byte, 32)
	body := []byte(`{"account":"ops","kind":"transfer","asset":"USDC","to":"0x00000000000000000000000000000000000000aa","amount":"12.50","rationale":"pay invoice"}`)
	r, _ := http.NewRequest("POST", "http://127.0.0.1:8787/v1/actions", strings.NewReader(string(body)))
	if err := SignRequest(r, body, &HMACSigner{ID: "dg_test_k", Secret: secret}, time.Unix(1_700_000_000, 0)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		sig, err := ParseSignature(r.Header, Label)
		if err != nil {
			b.Fatal(err)
		}
		if err := CheckContentDigest(r.Header, body); err != nil {
			b.Fatal(err)
		}
		base, err := sig.Base(r)
		if err != nil {
			b.Fatal(err)
		}
		if !VerifyHMAC(secret, base, sig.Value) {
			b.Fatal("does not verify")
		}
	}
}

// TestParseCanonicalMatchesHttpsfv is a grammar-based differential test
// of the fast path: near-canonical fields with random perturbations (far
// denser in inputs the fast path accepts than the byte-level fuzzer), plus
// hand-picked edge cases. Whenever the fast path accepts, httpsfv must
// parse the same signature. (Written by an independent review.)
func TestParseCanonicalMatchesHttpsfv(t *testing.T) {
	accepted := 0
	check := func(inputs, sigs []string) {
		t.Helper()
		h := http.Header{}
		for _, v := range inputs {
			h.Add("Signature-Input", v)
		}
		for _, v := range sigs {
			h.Add("Signature", v)
		}
		fast, ok := parseCanonical(h, Label)
		if !ok {
			return
		}
		accepted++
		slow, err := parseStructured(h, Label)
		if err != nil {
			t.Fatalf("fast path accepted, httpsfv refused (%v): %q %q", err, inputs, sigs)
		}
		if !slices.Equal(fast.Components, slow.Components) || !bytes.Equal(fast.Value, slow.Value) || fast.params != slow.params ||
			fast.Created != slow.Created || fast.Expires != slow.Expires || fast.Nonce != slow.Nonce ||
			fast.KeyID != slow.KeyID || fast.Alg != slow.Alg || fast.Tag != slow.Tag || fast.Label != slow.Label {
			t.Fatalf("disagree on %q %q:\n%+v\n%+v", inputs, sigs, fast, slow)
		}
	}
	for _, c := range [][2]string{
		{`sig1=("@method");created=999999999999999`, `sig1=:AA==:`},
		{`sig1=("@method");created=1000000000000000`, `sig1=:AA==:`},
		{`sig1=("@method");created=0`, `sig1=:AA==:`},
		{`sig1=("@method");created=-1`, `sig1=:AA==:`},
		{`sig1=("@method");created=1.5`, `sig1=:AA==:`},
		{`sig1=("@method");created=1;`, `sig1=:AA==:`},
		{`sig1=("@method");tag;nonce="a=b"`, `sig1=:AA==:`},
		{`sig1=("@method");nonce=" ~!#$%&'()*+,-./:;<=>?@[]^_{|}` + "`" + `"`, `sig1=:AA==:`},
		{`sig1=("")`, `sig1=::`},
		{`sig1=("a"  "b")`, `sig1=::`},
		{`sig1=("a" "b" )`, `sig1=::`},
		{`sig1=("a")`, `sig1=:AA==:;x`},
		{`sig1=("a")`, `sig1=:AB==:`},
		{`sig1=("a")`, "sig1=:AA\n==:"},
		{`sig1=("a")`, `sig1=:-_==:`},
		{`sig1=("a")`, `sig1=:AA==AA==:`},
		{`sig10=("a")`, `sig1=::`},
		{`sig1=("a")`, `sig10=::`},
		{`sig1=("a")`, `sig1=::, sig1=:AA==:`},
		{`sig1=("a");nonce="x", sig1=("b")`, `sig1=::`},
		{`sig1=("a");nonce="é"`, `sig1=::`},
		{`sig1=("a");alg=ed25519`, `sig1=::`},
		{`sig1=("a");KEYID="k"`, `sig1=::`},
		{`sig1=("a";sf)`, `sig1=::`},
		{`sig1=("a") `, `sig1=::`},
		{`sig1=("a");tag="t";alg="a";keyid="k";nonce="n";expires=2;created=1`, `sig1=:AAECAw==:`},
		{`sig1=("a");created=1;*x=1`, `sig1=::`},
	} {
		check([]string{c[0]}, []string{c[1]})
	}
	check([]string{`sig1=("a")`, ``}, []string{`sig1=::`})
	check([]string{`sig1=("a")`}, []string{`sig1=::`, `sig1=:AA==:`})

	r := mathrand.New(mathrand.NewPCG(1, 2))
	pick := func(xs ...string) string {
		if r.IntN(20) != 0 {
			return xs[0]
		}
		return xs[r.IntN(len(xs))]
	}
	comps := []string{`"@method"`, `"@path"`, `"@query"`, `"content-digest"`, `"a"`, `""`, `"A"`, `"a;b"`, `"@"`, `"x-y_z.0"`, `a`, `"a" `, `"\""`}
	str := func() string {
		var b strings.Builder
		b.WriteByte('"')
		for range r.IntN(6) {
			b.WriteByte(byte(0x1f + r.IntN(0x61)))
		}
		if r.IntN(30) == 0 {
			b.WriteString(pick(`\"`, `\\`, `\`, "\t", "é"))
		}
		b.WriteByte('"')
		return b.String()
	}
	num := func() string {
		return pick("1700000000", "1", "0", "01", "-1", "123456789012345", "1234567890123456", "1.0", "9", "999999999999999", "1e3", "") + pick("", "", "", " ", ".", "x")
	}
	keys := []string{"created", "expires", "nonce", "keyid", "alg", "tag", "foo", "Created", "*", "created ", ""}
	for range 200_000 {
		var b strings.Builder
		b.WriteString(pick("sig1=", "sig10=", "sig1 =", "sig2=", " sig1="))
		b.WriteString(pick("(", "( ", ""))
		for j := range r.IntN(5) {
			if j > 0 {
				b.WriteString(pick(" ", "  ", "", "\t"))
			}
			b.WriteString(comps[r.IntN(4)+r.IntN(2)*r.IntN(len(comps)-3)])
		}
		b.WriteString(pick(")", " )", ""))
		for range r.IntN(7) {
			b.WriteString(pick(";", "; ", ""))
			k := keys[r.IntN(6)+r.IntN(2)*r.IntN(2)*r.IntN(len(keys)-5)]
			b.WriteString(k)
			if r.IntN(60) == 0 {
				continue // a boolean parameter
			}
			b.WriteString("=")
			switch {
			case (k == "created" || k == "expires") && r.IntN(30) != 0:
				b.WriteString(num())
			case r.IntN(30) == 0:
				b.WriteString(pick("tok", "?1", "1", ":AA==:", `%"x"`))
			default:
				b.WriteString(str())
			}
		}
		b.WriteString(pick("", " ", ",", ", sig2=()", ", sig1=()", ";"))
		raw := make([]byte, r.IntN(5))
		for k := range raw {
			raw[k] = byte(r.IntN(256))
		}
		enc := pick(base64.StdEncoding.EncodeToString(raw), "A", "AA==", "AAAA", "AB==", "AA=", "AAA=", "AAB=", "-_8=", "AA==AA==", "", "AA\n==", "/+8=")
		sig := pick("sig1=:", "sig10=:", "sig1=") + enc + pick(":", ":;a", ": ", ":, sig2=::", "")
		check([]string{b.String()}, []string{sig})
	}
	if accepted < 10_000 {
		t.Fatalf("the fast path accepted only %d inputs: the test no longer exercises it", accepted)
	}
}

// TestParseSignatureBoundsWork: oversized fields are refused before
// parsing, and the fast path leaves long component lists to httpsfv (its
// duplicate check is quadratic).
func TestParseSignatureBoundsWork(t *testing.T) {
	many := func(n int) string {
		var b strings.Builder
		b.WriteString("sig1=(")
		for i := range n {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, `"h%d"`, i)
		}
		b.WriteString(");created=1")
		return b.String()
	}
	h := http.Header{}
	h.Set("Signature", "sig1=:AAAA:")
	h.Set("Signature-Input", many(maxCanonicalComponents))
	if _, ok := parseCanonical(h, Label); !ok {
		t.Fatalf("the fast path refused %d components", maxCanonicalComponents)
	}
	h.Set("Signature-Input", many(maxCanonicalComponents+1))
	if _, ok := parseCanonical(h, Label); ok {
		t.Fatalf("the fast path took %d components", maxCanonicalComponents+1)
	}
	if s, err := ParseSignature(h, Label); err != nil || len(s.Components) != maxCanonicalComponents+1 {
		t.Fatalf("the general path: %v", err)
	}
	h.Set("Signature-Input", many(2000))
	if _, err := ParseSignature(h, Label); daoguard.ErrorCode(err) != daoguard.CodeSignatureInvalid {
		t.Fatalf("an oversized Signature-Input: %v", err)
	}
	h.Set("Signature-Input", many(1))
	h.Add("Signature", "sig2=:"+strings.Repeat("A", maxSignatureField)+":")
	if _, err := ParseSignature(h, Label); daoguard.ErrorCode(err) != daoguard.CodeSignatureInvalid {
		t.Fatalf("an oversized Signature: %v", err)
	}
}
