package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// prometheus is a real Prometheus (Debian's) scraping the harness's berth
// server, worker and HAProxy every second, with berth's alert rules.
type prometheus struct{ url string }

func (hs *harness) startPrometheus(t *testing.T) prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		skipOrFail(t, "no prometheus: deploy/local/deps.sh test installs it")
	}
	dir := t.TempDir()
	rules, err := os.ReadFile(filepath.Join(hs.root, "deploy", "prometheus", "berth-rules.yml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "berth-rules.yml"), rules, 0o644))
	api := strings.TrimPrefix(hs.apiURL, "http://")
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [berth-rules.yml]
scrape_configs:
  - job_name: berth-server
    static_configs: [{targets: [%q]}]
  - job_name: berth-worker
    static_configs: [{targets: [%q], labels: {region: local}}]
  - job_name: berth-haproxy
    static_configs: [{targets: [%q], labels: {region: local}}]
`, api, hs.workerMetrics, hs.haproxyStats)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644))
	port, err := freePort()
	require.NoError(t, err)
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
	cmd.Dir = dir
	hs.spawnFor(t, "prometheus", cmd)
	return prometheus{url: fmt.Sprintf("http://127.0.0.1:%d", port)}
}

// query runs an instant PromQL query and returns each series' labels and
// value.
func (p prometheus) query(t *testing.T, q string) []promSample {
	t.Helper()
	resp, err := http.Get(p.url + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil // not up yet; the caller waits
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&body) != nil {
		return nil
	}
	var out []promSample
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		require.NoError(t, err, "value of %s", q)
		out = append(out, promSample{labels: r.Metric, value: v})
	}
	return out
}

type promSample struct {
	labels map[string]string
	value  float64
}

// scalar is the value of a query that yields one series, or -1.
func (p prometheus) scalar(t *testing.T, q string) float64 {
	t.Helper()
	s := p.query(t, q)
	if len(s) != 1 {
		return -1
	}
	return s[0].value
}

// A real Prometheus scrapes the berth server, the worker and the region's
// HAProxy, loads berth's alert rules, and sees a deploy counted: started by
// the server, ended with its duration by the worker, its requests by route,
// and the Temporal SDK's own activity metrics.
func TestPrometheusSeesADeploy(t *testing.T) {
	hs := needHarness(t)
	prom := hs.startPrometheus(t)
	require.Eventually(t, func() bool {
		up := prom.query(t, "up")
		if len(up) != 3 {
			return false
		}
		for _, s := range up {
			if s.value != 1 {
				return false
			}
		}
		return true
	}, 60*time.Second, 250*time.Millisecond, "Prometheus scrapes the server, the worker and HAProxy; see %s/prometheus.log", hs.logDir)

	before := prom.scalar(t, `sum(berth_runs_ended_total{kind="deploy",outcome="succeeded"})`)
	if before < 0 {
		before = 0
	}
	apps := hs.newEnv(t, "prom")
	hs.deployOK(t, apps, "shop", webCompose("web", 1, ""))

	require.Eventually(t, func() bool {
		return prom.scalar(t, `sum(berth_runs_ended_total{kind="deploy",outcome="succeeded"})`) >= before+1
	}, 30*time.Second, 250*time.Millisecond, "the worker's count of ended deploys")
	require.Positive(t, prom.scalar(t, `sum(berth_runs_started_total{component="server",kind="deploy"})`))
	require.Positive(t, prom.scalar(t, `sum(berth_run_duration_seconds_count{kind="deploy"})`))
	require.Positive(t, prom.scalar(t,
		`sum(berth_http_requests_total{method="POST",route="/api/v1/tenants/:tenant/environments/:env/applications",status="202"})`),
		"the deploy request, counted by route pattern")
	require.Positive(t, prom.scalar(t, `sum(temporal_activity_execution_latency_count{job="berth-worker"})`), "the SDK's own metrics")
	require.GreaterOrEqual(t, prom.scalar(t, `sum(berth_approvals_waiting)`), 0.0)
	require.NotEmpty(t, prom.query(t, `haproxy_process_start_time_seconds{job="berth-haproxy"}`), "HAProxy's exporter")

	// The alert rules are loaded and none fires on a healthy system.
	resp, err := http.Get(prom.url + "/api/v1/rules")
	require.NoError(t, err)
	defer resp.Body.Close()
	var rules struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name  string `json:"name"`
					State string `json:"state"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&rules))
	require.Len(t, rules.Data.Groups, 1)
	names := map[string]string{}
	for _, r := range rules.Data.Groups[0].Rules {
		names[r.Name] = r.State
	}
	for _, n := range []string{"BerthRunsFailing", "BerthApprovalStuck", "BerthRegionWorkerDown", "BerthServerDown", "BerthHAProxyDown", "BerthAPIErrors"} {
		require.Contains(t, names, n)
	}
	require.Equal(t, "inactive", names["BerthRegionWorkerDown"])
	require.Equal(t, "inactive", names["BerthHAProxyDown"])
}
