package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/tickets/ticketstest"
)

// ticketWhen waits for the one ticket under prefix to satisfy ok.
func (hs *harness) ticketWhen(t testing.TB, prefix, what string, ok func(ticketstest.Held) bool) ticketstest.Held {
	t.Helper()
	var last []ticketstest.Held
	require.Eventually(t, func() bool {
		last = hs.tickets.Find(prefix)
		return len(last) == 1 && ok(last[0])
	}, time.Minute, 200*time.Millisecond, "%s; tickets under %s: %+v", what, prefix, last)
	return last[0]
}

// A failing release opens one ticket; a second failure of the same service
// updates it (two occurrences, the newest run's link); a successful
// release resolves it, naming the run. The ticket system being down
// delays delivery but loses nothing, and never fails a run.
func TestReleaseFailuresAreOneTicketResolvedByASuccess(t *testing.T) {
	hs := needHarness(t)
	tenant := hs.tenant + "-ticketed"
	apps, svc := hs.deployForRelease(t, "ticketed")
	_ = apps
	key := "run-failed/release:" + tenant + "/dev/shop/web#"

	_, first := hs.release(t, svc.ID, map[string]any{"image": "berth-sample:nope"})
	require.Equal(t, berth.RunFailed, first.Status)
	tk := hs.ticketWhen(t, key, "the failed release opened a ticket", func(h ticketstest.Held) bool { return h.State == "open" })
	require.Equal(t, key+"1", tk.Key)
	require.Equal(t, "release of "+tenant+"/dev/shop/web failed", tk.Title)
	require.Contains(t, tk.Body, "no configured registry")
	require.Equal(t, berth.SeverityMajor, tk.Severity)
	require.Equal(t, fmt.Sprintf("%s/runs/%d", hs.apiURL, first.ID), tk.Link)
	require.Equal(t, 1, tk.Occurrences)

	// The ticket system goes down; the second failure waits for it.
	hs.tickets.SetDown(true)
	_, second := hs.release(t, svc.ID, map[string]any{"image": "berth-sample:nope2"})
	require.Equal(t, berth.RunFailed, second.Status)
	require.Eventually(t, func() bool {
		var ib struct {
			Incidents []struct {
				store.Incident
				Delivered bool `json:"delivered"`
			} `json:"incidents"`
		}
		hs.apiJSON(t, "GET", "/api/v1/incidents?state=open&kind=run-failed", nil, &ib)
		for _, in := range ib.Incidents {
			if in.Subject == tenant+"/dev/shop/web" {
				return in.Occurrences == 2 && !in.Delivered && in.Attempts > 0 && strings.Contains(in.LastError, "503")
			}
		}
		return false
	}, time.Minute, 200*time.Millisecond, "a delivery to a ticket system that is down is shown failed and kept")
	hs.tickets.SetDown(false)
	tk = hs.ticketWhen(t, key, "the second failure updated the ticket", func(h ticketstest.Held) bool { return h.Occurrences == 2 })
	require.Equal(t, key+"1", tk.Key, "updated, not a second ticket")
	require.Equal(t, "open", tk.State)
	require.GreaterOrEqual(t, tk.Updates, 1)
	require.Equal(t, fmt.Sprintf("%s/runs/%d", hs.apiURL, second.ID), tk.Link)

	_, good := hs.release(t, svc.ID, map[string]any{"image": "berth-sample:v2", "batchSize": 4})
	require.Equal(t, berth.RunSucceeded, good.Status, good.Error)
	tk = hs.ticketWhen(t, key, "the successful release resolved the ticket", func(h ticketstest.Held) bool { return h.State == "resolved" })
	require.Contains(t, tk.Resolution.Note, fmt.Sprintf("run %d", good.ID))
	require.NotEmpty(t, tk.Resolution.ResolvedAt)
}

// An alert fired through Alertmanager's real HTTP API reaches berth by
// Alertmanager's own webhook and becomes a ticket; resolved in
// Alertmanager, the ticket is resolved. The hook refuses a caller without
// the token and a body that is not Alertmanager's.
func TestAlertmanagerAlertBecomesATicket(t *testing.T) {
	hs := needHarness(t)
	bin, err := exec.LookPath("prometheus-alertmanager")
	require.NoError(t, err, "Alertmanager comes from Debian's prometheus-alertmanager (deploy/local/deps.sh test)")

	var e struct {
		Error struct{ Code, Message string }
	}
	body := map[string]any{"version": "4", "status": "firing", "alerts": []map[string]any{{"status": "firing", "labels": map[string]string{"alertname": "X"}}}}
	require.Equal(t, http.StatusUnauthorized, hs.apiJSONAs(t, "wrong-token", "POST", "/api/v1/hooks/alertmanager", body, &e))
	require.Equal(t, http.StatusBadRequest, hs.apiJSONAs(t, hs.alertmanagerToken, "POST", "/api/v1/hooks/alertmanager",
		map[string]any{"version": "3", "alerts": []any{}}, &e))
	require.Contains(t, e.Error.Message, "version 4")
	require.Equal(t, http.StatusBadRequest, hs.apiJSONAs(t, hs.alertmanagerToken, "POST", "/api/v1/hooks/alertmanager",
		map[string]any{"version": "4", "alerts": []map[string]any{{"status": "firing", "labels": map[string]string{}}}}, &e))

	port, err := freePort()
	require.NoError(t, err)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`route:
  receiver: berth
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: berth
    webhook_configs:
      - url: %s/api/v1/hooks/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: %s
`, hs.apiURL, hs.alertmanagerToken)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "alertmanager.yml"), []byte(cfg), 0o600))
	am := exec.Command(bin, "--config.file="+filepath.Join(dir, "alertmanager.yml"), "--storage.path="+dir,
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port), "--cluster.listen-address=")
	logf, err := os.Create(filepath.Join(hs.logDir, "alertmanager.log"))
	require.NoError(t, err)
	am.Stdout, am.Stderr = logf, logf
	require.NoError(t, am.Start())
	t.Cleanup(func() {
		_ = am.Process.Kill()
		_ = am.Wait()
		_ = logf.Close()
	})
	amURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	require.Eventually(t, func() bool {
		resp, err := http.Get(amURL + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "Alertmanager is ready")

	name := "BerthDiskFull" + strings.ReplaceAll(hs.tenant, "-", "")
	post := func(ends time.Time) {
		t.Helper()
		alert := []map[string]any{{"labels": map[string]string{"alertname": name, "severity": "critical", "instance": "h1"},
			"annotations":  map[string]string{"summary": "disk almost full", "description": "/var/lib/docker is 97% full on h1"},
			"generatorURL": "http://prometheus.example/graph?g0.expr=disk", "endsAt": ends.UTC().Format(time.RFC3339)}}
		b, err := json.Marshal(alert)
		require.NoError(t, err)
		resp, err := http.Post(amURL+"/api/v2/alerts", "application/json", bytes.NewReader(b))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	post(time.Now().Add(time.Hour))
	var tk ticketstest.Held
	require.Eventually(t, func() bool {
		for _, h := range hs.tickets.Find("alert:") {
			if h.Labels["alertname"] == name {
				tk = h
				return true
			}
		}
		return false
	}, time.Minute, 200*time.Millisecond, "the alert became a ticket")
	require.Equal(t, "open", tk.State)
	require.Equal(t, name+": disk almost full", tk.Title)
	require.Equal(t, "/var/lib/docker is 97% full on h1", tk.Body)
	require.Equal(t, berth.SeverityCritical, tk.Severity)
	require.Equal(t, "http://prometheus.example/graph?g0.expr=disk", tk.Link)

	post(time.Now().Add(-time.Second))
	tk = hs.ticketWhen(t, tk.Key, "Alertmanager's resolution resolved the ticket", func(h ticketstest.Held) bool { return h.State == "resolved" })
	require.Contains(t, tk.Resolution.Note, "resolved")
}
