package policy

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestDiffExample(t *testing.T) {
	old := "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n"
	new := "a\nb\nc\nD\ne\nf\ng\nh\ni\nj\nk\n"
	want := `--- in force
+++ proposed
@@ -1,10 +1,11 @@
 a
 b
 c
-d
+D
 e
 f
 g
 h
 i
 j
+k
`
	if got := Diff(old, new); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if Diff(old, old) != "" {
		t.Fatal("equal documents have a diff")
	}
}

// applyDiff rebuilds new from old and the hunks: a diff that cannot be
// applied back is wrong, whatever it looks like.
func applyDiff(t *testing.T, old, d string) string {
	t.Helper()
	a := lines(old)
	var out []string
	pos := 0
	ls := lines(d)
	for k := 2; k < len(ls); k++ {
		l := ls[k]
		if strings.HasPrefix(l, "@@") {
			var o, on, n, nn int
			if _, err := fmtSscanf(l, &o, &on, &n, &nn); err != nil {
				t.Fatalf("bad hunk header %q", l)
			}
			for pos < o-1 {
				out = append(out, a[pos])
				pos++
			}
			continue
		}
		switch l[0] {
		case ' ':
			if a[pos] != l[1:] {
				t.Fatalf("context %q does not match %q", l[1:], a[pos])
			}
			out = append(out, a[pos])
			pos++
		case '-':
			if a[pos] != l[1:] {
				t.Fatalf("removed %q does not match %q", l[1:], a[pos])
			}
			pos++
		case '+':
			out = append(out, l[1:])
		}
	}
	out = append(out, a[pos:]...)
	if len(out) == 0 {
		return ""
	}
	return strings.Join(out, "\n") + "\n"
}

func TestDiffRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	words := []string{"a", "b", "c", "d"}
	doc := func() string {
		var sb strings.Builder
		for range r.IntN(30) {
			sb.WriteString(words[r.IntN(len(words))] + "\n")
		}
		return sb.String()
	}
	for range 2000 {
		old, new := doc(), doc()
		d := Diff(old, new)
		if old == new {
			if d != "" {
				t.Fatal("diff of equal documents")
			}
			continue
		}
		if got := applyDiff(t, old, d); got != new {
			t.Fatalf("old %q new %q diff\n%s\napplied %q", old, new, d, got)
		}
	}
}

func fmtSscanf(s string, o, on, n, nn *int) (int, error) {
	return fmt.Sscanf(s, "@@ -%d,%d +%d,%d @@", o, on, n, nn)
}
