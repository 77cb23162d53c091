package httpapi

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/daoguard/daoguard"
)

// repoRoot is the module's root, from this package's directory.
const repoRoot = "../.."

// The error codes clients branch on cannot drift: every Code constant the
// root package declares is in daoguard.Codes (the list the edges
// translate), in the OpenAPI ErrorCode enum, and in docs/ERRORS.md — and
// the enum names no code that does not exist.
func TestErrorCodesDocumented(t *testing.T) {
	declared := codeConsts(t, filepath.Join(repoRoot, "error.go"))
	listed := make([]string, len(daoguard.Codes))
	for i, c := range daoguard.Codes {
		listed[i] = string(c)
	}
	for _, c := range declared {
		if !slices.Contains(listed, c) {
			t.Errorf("code %s is declared in error.go but not in daoguard.Codes", c)
		}
	}
	var doc struct {
		Components struct {
			Schemas struct {
				ErrorCode struct {
					Enum []string `json:"enum"`
				} `json:"ErrorCode"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatal(err)
	}
	enum := doc.Components.Schemas.ErrorCode.Enum
	errorsMD := readDoc(t, "docs/ERRORS.md")
	for _, c := range listed {
		if !slices.Contains(enum, c) {
			t.Errorf("code %s is missing from the OpenAPI ErrorCode enum", c)
		}
		if !strings.Contains(errorsMD, "| `"+c+"` |") {
			t.Errorf("code %s has no row in docs/ERRORS.md", c)
		}
	}
	for _, c := range enum {
		if !slices.Contains(listed, c) {
			t.Errorf("the OpenAPI ErrorCode enum names %s, which the server never returns", c)
		}
	}
}

// Every reason code a decision can carry (the Reason… string constants of
// every package) has its row in docs/ERRORS.md.
func TestReasonCodesDocumented(t *testing.T) {
	errorsMD := readDoc(t, "docs/ERRORS.md")
	n := 0
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != repoRoot && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		for name, v := range stringConsts(t, path) {
			if !strings.HasPrefix(name, "Reason") {
				continue
			}
			n++
			if !strings.Contains(errorsMD, "`"+v+"`") {
				t.Errorf("%s: reason %s (%s) is not in docs/ERRORS.md", path, v, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 40 {
		t.Fatalf("found only %d reason constants: the walk missed the packages", n)
	}
}

func readDoc(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// codeConsts returns the values of the constants of type Code in a file.
func codeConsts(t *testing.T, path string) []string {
	t.Helper()
	var out []string
	eachConst(t, path, func(_ string, typ ast.Expr, v string) {
		if id, ok := typ.(*ast.Ident); ok && id.Name == "Code" {
			out = append(out, v)
		}
	})
	if len(out) < 40 {
		t.Fatalf("%s: found only %d Code constants", path, len(out))
	}
	return out
}

// stringConsts returns a file's constants whose value is a string literal.
func stringConsts(t *testing.T, path string) map[string]string {
	out := map[string]string{}
	eachConst(t, path, func(name string, _ ast.Expr, v string) { out[name] = v })
	return out
}

func eachConst(t *testing.T, path string, f func(name string, typ ast.Expr, value string)) {
	t.Helper()
	file, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	for _, decl := range file.Decls {
		g, ok := decl.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				f(name.Name, vs.Type, v)
			}
		}
	}
}
