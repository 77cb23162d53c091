package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
)

// openapiOp is what the tests read of one documented operation.
type openapiOp struct {
	Scope    *string           `json:"x-daoguard-scope"`
	Ed25519  *bool             `json:"x-daoguard-ed25519"`
	Security *[]map[string]any `json:"security"`
}

func parseOpenAPI(t *testing.T) (version string, ops map[string]openapiOp) {
	t.Helper()
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatalf("openapi.json does not parse: %v", err)
	}
	methods := map[string]bool{"get": true, "put": true, "post": true, "delete": true, "options": true, "head": true, "patch": true, "trace": true}
	ops = map[string]openapiOp{}
	for path, item := range doc.Paths {
		for m, raw := range item {
			if !methods[m] {
				continue // parameters, summary, description, servers
			}
			var op openapiOp
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", m, path, err)
			}
			ops[strings.ToUpper(m)+" "+path] = op
		}
	}
	return doc.OpenAPI, ops
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	version, ops := parseOpenAPI(t)
	if version != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", version)
	}
	routes := map[string]route{}
	for _, rt := range (&Server{}).routes() {
		routes[rt.method+" "+rt.path] = rt
	}

	var missing, extra []string
	for k := range routes {
		if _, ok := ops[k]; !ok {
			missing = append(missing, k)
		}
	}
	for k := range ops {
		if _, ok := routes[k]; !ok {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	for _, k := range missing {
		t.Errorf("route %s is not in openapi.json", k)
	}
	for _, k := range extra {
		t.Errorf("openapi.json documents %s, which has no route", k)
	}

	for k, rt := range routes {
		op, ok := ops[k]
		if !ok {
			continue
		}
		scope, ed := "", false
		if op.Scope != nil {
			scope = *op.Scope
		}
		if op.Ed25519 != nil {
			ed = *op.Ed25519
		}
		if strings.HasPrefix(rt.path, "/v1/") {
			if scope != rt.need.Scope {
				t.Errorf("%s: x-daoguard-scope = %q, the route needs %q", k, scope, rt.need.Scope)
			}
			if ed != rt.need.Ed25519 {
				t.Errorf("%s: x-daoguard-ed25519 = %v, the route needs %v", k, ed, rt.need.Ed25519)
			}
			if op.Security == nil || len(*op.Security) == 0 {
				t.Errorf("%s: a signed route must declare the rfc9421 security requirement", k)
			} else if _, ok := (*op.Security)[0]["rfc9421"]; !ok {
				t.Errorf("%s: security = %v, want rfc9421", k, *op.Security)
			}
		}
		if !rt.signed {
			if op.Security == nil || len(*op.Security) != 0 {
				t.Errorf("%s: an unsigned route must have security: []", k)
			}
			if scope != "" || ed {
				t.Errorf("%s: an unsigned route has no scope or ed25519 requirement", k)
			}
		}
	}
}

func TestOpenAPIRefsResolve(t *testing.T) {
	var doc any
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatalf("openapi.json does not parse: %v", err)
	}
	n := 0
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				if k == "$ref" {
					s, ok := c.(string)
					if !ok {
						t.Errorf("%s: $ref is not a string", at)
						continue
					}
					n++
					if !strings.HasPrefix(s, "#/components/") {
						t.Errorf("%s: $ref %q does not point into #/components/", at, s)
					} else if resolve(doc, s) == nil {
						t.Errorf("%s: $ref %q does not resolve", at, s)
					}
					continue
				}
				walk(c, at+"/"+k)
			}
		case []any:
			for _, c := range v {
				walk(c, at+"/[]")
			}
		}
	}
	walk(doc, "#")
	if n == 0 {
		t.Error("openapi.json has no $ref at all")
	}
}

// resolve follows a local JSON pointer (RFC 6901) from the document root.
func resolve(doc any, ref string) any {
	cur := doc
	for _, tok := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = m[tok]; !ok {
			return nil
		}
	}
	return cur
}

func TestOpenAPIServed(t *testing.T) {
	s := &Server{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", res.StatusCode, body)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if !bytes.Equal(body, openapiDoc) {
		t.Errorf("the served document (%d bytes) differs from the embedded one (%d bytes)", len(body), len(openapiDoc))
	}
}
