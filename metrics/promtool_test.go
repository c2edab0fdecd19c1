package metrics_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// The shipped Prometheus configuration and alert rules are what Prometheus
// itself accepts, and each alert fires on the series meant to fire it
// (deploy/prometheus/berth-rules.test.yml), checked by Debian's promtool.
func TestPrometheusConfigAndRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("BERTH_REQUIRE_E2E") != "" {
			t.Fatalf("promtool is missing: deploy/local/deps.sh test installs prometheus")
		}
		t.Skip("no promtool; deploy/local/deps.sh test installs prometheus")
	}
	dir, err := filepath.Abs(filepath.Join("..", "deploy", "prometheus"))
	require.NoError(t, err)
	for _, args := range [][]string{
		{"check", "config", "prometheus.yml"},
		{"check", "rules", "berth-rules.yml"},
		{"test", "rules", "berth-rules.test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "promtool %v:\n%s", args, out)
	}
}
