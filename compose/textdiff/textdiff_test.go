package textdiff

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// apply rebuilds b from a script, so that any script can be checked.
func apply(t *testing.T, a []string, script []Line) []string {
	t.Helper()
	var out []string
	i := 0
	for _, l := range script {
		switch l.Op {
		case Keep:
			require.Equal(t, a[i], l.Text)
			out = append(out, l.Text)
			i++
		case Delete:
			require.Equal(t, a[i], l.Text)
			i++
		case Insert:
			out = append(out, l.Text)
		}
	}
	require.Equal(t, len(a), i)
	return out
}

func TestLinesIsAMinimalEditScript(t *testing.T) {
	for _, c := range []struct {
		a, b  string
		edits int
	}{
		{"", "", 0},
		{"a b c", "a b c", 0},
		{"a b c", "a x c", 2},
		{"", "a b", 2},
		{"a b", "", 2},
		{"a b c a b b a", "c b a b a c", 5},
		{"x y z", "y z x", 2},
	} {
		a, b := strings.Fields(c.a), strings.Fields(c.b)
		script := Lines(a, b)
		require.Equal(t, strings.Join(b, " "), strings.Join(apply(t, a, script), " "), "%q -> %q", c.a, c.b)
		added, removed := Stats(script)
		require.Equal(t, c.edits, added+removed, "%q -> %q", c.a, c.b)
	}
}

func TestUnified(t *testing.T) {
	a := "services:\n  web:\n    image: web:1\n    environment:\n      A: 1\n      B: 2\n      C: 3\n      D: 4\n      E: 5\n      F: 6\n      G: 7\n"
	b := strings.Replace(strings.Replace(a, "web:1", "web:2", 1), "G: 7", "G: 8", 1)
	require.Equal(t, "", Unified("v1", "v2", a, a))
	got := Unified("v1", "v2", a, b)
	require.Equal(t, `--- v1
+++ v2
@@ -1,6 +1,6 @@
 services:
   web:
-    image: web:1
+    image: web:2
     environment:
       A: 1
       B: 2
@@ -8,4 +8,4 @@
       D: 4
       E: 5
       F: 6
-      G: 7
+      G: 8
`, got)
}

func TestFarApartTextsStayCheap(t *testing.T) {
	var a, b []string
	for i := 0; i < 5000; i++ {
		a = append(a, "a"+strings.Repeat("x", i%7))
		b = append(b, "b"+strings.Repeat("y", i%5))
	}
	script := Lines(a, b)
	require.Equal(t, b, apply(t, a, script))
}

func BenchmarkUnifiedComposeChange(b *testing.B) {
	var sb strings.Builder
	for i := 0; i < 400; i++ {
		sb.WriteString("  svc")
		sb.WriteString(strings.Repeat("x", i%13))
		sb.WriteString(":\n    image: web:1\n")
	}
	a := sb.String()
	c := strings.Replace(a, "web:1", "web:2", 20)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = Unified("v1", "v2", a, c)
	}
}
