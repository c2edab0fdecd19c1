package berth_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/berth-dev/berth"

// goList runs `go list` with args and returns its lines.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list"}, args...)...).CombinedOutput()
	require.NoError(t, err, "go list %v: %s", args, out)
	return strings.Fields(string(out))
}

// forbidden returns the packages of list that match any of the prefixes.
func forbidden(list []string, prefixes ...string) []string {
	var bad []string
	for _, p := range list {
		for _, f := range prefixes {
			if p == f || strings.HasPrefix(p, f+"/") {
				bad = append(bad, p)
			}
		}
	}
	return bad
}

// TestLayers keeps the rooms of the house apart: what goes into workflow
// histories depends on no database, HTTP or ORM code, the domain depends on
// nothing of berth's, and the API never reaches into the side-effect layer
// itself.
func TestLayers(t *testing.T) {
	t.Run("workflows depend on no store, server, gin or gorm", func(t *testing.T) {
		deps := goList(t, "-deps", "./workflows/...")
		require.Empty(t, forbidden(deps, module+"/store", module+"/server", "github.com/gin-gonic/gin", "gorm.io/gorm"))
	})
	t.Run("the domain imports nothing of berth", func(t *testing.T) {
		deps := goList(t, "-deps", ".")
		var inner []string
		for _, d := range deps {
			if strings.HasPrefix(d, module+"/") {
				inner = append(inner, d)
			}
		}
		require.Empty(t, inner)
	})
	t.Run("the server does not import activities", func(t *testing.T) {
		imports := goList(t, "-f", `{{join .Imports " "}} {{join .TestImports " "}}`, "./server/...")
		require.Empty(t, forbidden(imports, module+"/activities"))
	})
	t.Run("workflow tests use no store types", func(t *testing.T) {
		imports := goList(t, "-f", `{{join .TestImports " "}}`, "./workflows/...")
		require.Empty(t, forbidden(imports, module+"/store"))
	})
}
