package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/workflows"
)

// The service page's live figures and log tail, read through the region's
// worker from the real engine, and the service's history after a release.
func TestUIServiceLiveAndHistory(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "live5")
	tenant := hs.tenant + "-live5"
	// The version is logged at start: markup in it must show as text.
	xss := `<img src=x onerror="window.__xss=1">`
	deploy := hs.deployOK(t, apps, "live", webCompose("web", 1, `APP_VERSION: '`+xss+`'`))
	svc := hs.app(t, apps, "live").Services[0]
	require.Len(t, svc.Instances, 1)
	inst := svc.Instances[0].Name

	// The API: one sample with memory in use, and the tail with the start line.
	var stats struct {
		Running     bool    `json:"running"`
		MemoryBytes uint64  `json:"memoryBytes"`
		MemoryLimit uint64  `json:"memoryLimit"`
		CPUPercent  float64 `json:"cpuPercent"`
		NetRxBytes  uint64  `json:"netRxBytes"`
	}
	start := time.Now()
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/instances/"+inst+"/stats", nil, &stats))
	t.Logf("stats of %s through the region's worker in %s: %+v", inst, time.Since(start).Round(time.Millisecond), stats)
	require.True(t, stats.Running)
	require.NotZero(t, stats.MemoryBytes)
	hs.recordHistory(t, workflows.InstanceStatsID(inst), "", "instance-stats")
	type logsBody struct {
		Lines []struct{ At, Stream, Text string } `json:"lines"`
		Next  string                              `json:"next"`
	}
	var logs logsBody
	start = time.Now()
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/instances/"+inst+"/logs?tail=50", nil, &logs))
	t.Logf("log tail of %s in %s: %d line(s)", inst, time.Since(start).Round(time.Millisecond), len(logs.Lines))
	hs.recordHistory(t, workflows.InstanceLogsID(inst, 50, time.Time{}), "", "instance-logs")
	found := false
	for _, l := range logs.Lines {
		found = found || strings.Contains(l.Text, "sampleapp: listening on")
	}
	require.True(t, found, "the tail holds the start line: %+v", logs.Lines)
	require.NotEmpty(t, logs.Next)
	var after logsBody
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/instances/"+inst+"/logs?since="+url.QueryEscape(logs.Next), nil, &after))
	for _, l := range after.Lines {
		require.NotContains(t, l.Text, "sampleapp: listening on", "a poll with since does not repeat lines")
	}
	require.Equal(t, http.StatusBadRequest, hs.apiJSON(t, "GET", "/api/v1/instances/"+inst+"/logs?tail=501", nil, nil))
	require.Equal(t, http.StatusNotFound, hs.apiJSON(t, "GET", "/api/v1/instances/no-such-instance/stats", nil, nil))

	// Reads are scoped: a developer of another tenant may not read them.
	hs.newEnv(t, "live5o")
	outsider := hs.newPerson(t, "live5-out", hs.tenant+"-live5o", berth.RoleDeveloper)
	req, _ := http.NewRequest("GET", hs.apiURL+"/api/v1/instances/"+inst+"/logs", nil)
	resp, err := outsider.client.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode)

	// The page: charts with memory above zero and the log tail, as text.
	viewer := hs.newPerson(t, "live5-dev", tenant, berth.RoleDeveloper, berth.RoleReleaseManager)
	ctx := window(t, newBrowser(t))
	hs.signIn(t, ctx, viewer, fmt.Sprintf("/services/%d", svc.ID))
	box := fmt.Sprintf(`document.querySelector('.live-inst[data-instance="%s"]')`, inst)
	waitJS(t, ctx, box+`.querySelector('.chart[data-metric=mem]').dataset.last > 0`, 20*time.Second)
	waitJS(t, ctx, box+`.querySelector('pre.log').textContent.includes('sampleapp: listening on')`, 20*time.Second)
	require.Contains(t, eval[string](t, ctx, box+`.querySelector('pre.log').textContent`), xss, "the logged markup is shown as text")
	require.True(t, eval[bool](t, ctx, `window.__xss === undefined && !document.querySelector('pre.log img')`), "no markup from a log ran")
	// Some traffic for the network chart.
	port := svc.Instances[0].Ports[0]
	for i := 0; i < 20; i++ {
		code, _ := httpGet(t, fmt.Sprintf("http://%s:%d/version", port.HostIP, port.HostPort))
		require.Equal(t, http.StatusOK, code)
	}
	// Three samples: the memory chart has a line, the rate charts a line of two rates.
	waitJS(t, ctx, box+`.querySelector('.chart[data-metric=mem] polyline.a').getAttribute('points').split(' ').length >= 3 && `+
		box+`.querySelector('.chart[data-metric=net] polyline.a').getAttribute('points').split(' ').length >= 2`, 30*time.Second)
	mem := eval[string](t, ctx, box+`.querySelector('.chart[data-metric=mem] .value').textContent`)
	require.Contains(t, mem, "iB")
	t.Logf("service page memory figure: %q; status %q", mem, eval[string](t, ctx, box+`.querySelector('.live-status').textContent`))
	hs.screenshot(t, ctx, "service-live")

	// A release, then the service's history lists it with the runs.
	rs, run := hs.release(t, svc.ID, map[string]any{"image": "berth-sample:v2", "batchSize": 1})
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	do(t, ctx, chromedp.Navigate(fmt.Sprintf("%s/services/%d", hs.apiURL, svc.ID)), chromedp.WaitVisible(chromedp.CSS("a.history-link")),
		chromedp.Click(chromedp.CSS("a.history-link")), chromedp.WaitVisible(chromedp.CSS("table.releases")))
	rows := eval[string](t, ctx, `document.querySelector('table.releases tbody').textContent`)
	require.Contains(t, rows, "v2")
	require.Contains(t, rows, "succeeded")
	require.Contains(t, rows, "rolling")
	require.Contains(t, rows, run.StartedBy)
	require.True(t, eval[bool](t, ctx, fmt.Sprintf(`!!document.querySelector('a[href="/runs/%d"]') && !!document.querySelector('a[href="/runs/%d"]')`, rs.RunID, deploy.ID)),
		"the release's run and the deploy are linked")
	hs.screenshot(t, ctx, "service-history")
}

// A deploy that fails its health check: its event history reads in domain
// words and links to the Temporal UI; its retry starts a new run that says
// which run it retries; only a developer may retry it.
func TestUIRunHistoryAndRetry(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "retry5")
	tenant := hs.tenant + "-retry5"
	dev := hs.newPerson(t, "retry5-dev", tenant, berth.RoleDeveloper)
	rm := hs.newPerson(t, "retry5-rm", tenant, berth.RoleReleaseManager)
	compose := `services:
  db:
    image: berth-sample:v1
    ports: ["8080"]
    environment: {LISTEN: ":8080"}
    x-berth: {health: {http: /healthz}}
  app:
    image: berth-sample:v1
    depends_on: [db]
    ports: ["8080"]
    environment: {LISTEN: ":8080"}
    healthcheck:
      test: ["CMD", "/sampleapp", "-probe", "http://127.0.0.1:8080/fail"]
      interval: 200ms
      retries: 2
`
	var started runStartedBody
	code, msg := dev.post(t, apps, map[string]string{"name": "flaky", "compose": compose}, &started)
	require.Equal(t, http.StatusAccepted, code, msg)
	failed := hs.waitRun(t, started.RunID)
	require.Equal(t, berth.RunFailed, failed.Status)

	// The run's record closes a moment before its workflow does: wait for the
	// workflow's own end, so the count below is of the whole history.
	wctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = hs.tc.GetWorkflow(wctx, failed.WorkflowID, failed.TemporalRunID).Get(wctx, nil) // it failed, as checked above
	require.NoError(t, wctx.Err(), "the workflow ended")

	// The history through the API, page by page: every event once, in order.
	total := 0
	it := hs.tc.GetWorkflowHistory(context.Background(), failed.WorkflowID, failed.TemporalRunID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		_, err := it.Next()
		require.NoError(t, err)
		total++
	}
	type page struct {
		Events []struct {
			ID     int64  `json:"id"`
			Text   string `json:"text"`
			Failed bool   `json:"failed"`
		} `json:"events"`
		NextPageToken string `json:"nextPageToken"`
		TemporalURL   string `json:"temporalUrl"`
	}
	var texts []string
	token, pages, next := "", 0, int64(1)
	for {
		var p page
		path := fmt.Sprintf("/api/v1/runs/%d/history?size=25", failed.ID)
		if token != "" {
			path += "&pageToken=" + url.QueryEscape(token)
		}
		require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", path, nil, &p))
		pages++
		require.LessOrEqual(t, len(p.Events), 25)
		for _, e := range p.Events {
			require.Equal(t, next, e.ID)
			next++
			texts = append(texts, e.Text)
		}
		require.True(t, strings.HasPrefix(p.TemporalURL, "http://127.0.0.1:8233/namespaces/default/workflows/deploy%2F"), p.TemporalURL)
		if token = p.NextPageToken; token == "" {
			break
		}
	}
	require.Equal(t, total, len(texts), "the pages hold the whole history")
	t.Logf("history of run %d: %d events in %d pages of 25", failed.ID, total, pages)
	all := strings.Join(texts, "\n")
	require.Regexp(t, `activity StartInstance for instance \S+ on host \S+ completed \(\d+(\.\d+)? m?s\)`, all)
	require.Contains(t, all, "workflow DeployStack started for retry5-dev")
	require.Contains(t, all, "local activity RecordStep completed")
	require.Regexp(t, `activity StartInstance for instance \S+-app-\d+ on host \S+ failed: `, all)

	// The run page links the history; the history page reads in domain words.
	browser := newBrowser(t)
	ctx := window(t, browser)
	hs.signIn(t, ctx, dev, fmt.Sprintf("/runs/%d", failed.ID))
	do(t, ctx, chromedp.WaitVisible(chromedp.CSS("a.history-link")), chromedp.Click(chromedp.CSS("a.history-link")),
		chromedp.WaitVisible(chromedp.CSS("ol.events")))
	page1 := eval[string](t, ctx, `document.querySelector('ol.events').textContent`)
	require.Regexp(t, `activity \S+ (for instance \S+ )?(on host \S+ )?completed`, page1)
	href := eval[string](t, ctx, `document.querySelector('a.temporal-link').href`)
	require.True(t, strings.HasPrefix(href, "http://127.0.0.1:8233/namespaces/default/workflows/"), href)
	require.Contains(t, href, failed.TemporalRunID)
	hs.screenshot(t, ctx, "run-history")

	// A release manager may not retry a deploy; the developer may, from the run page.
	code, msg = rm.post(t, fmt.Sprintf("/api/v1/runs/%d/retry", failed.ID), map[string]any{}, nil)
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, msg, "needs role developer")
	do(t, ctx, chromedp.Navigate(fmt.Sprintf("%s/runs/%d", hs.apiURL, failed.ID)), chromedp.WaitVisible(chromedp.CSS("form.retry-form button")))
	label := eval[string](t, ctx, `document.querySelector('form.retry-form button').getAttribute('aria-label')`)
	require.Equal(t, fmt.Sprintf("Retry run %d deploy %s/dev/flaky", failed.ID, tenant), label)
	// The answer names the new run, and the page goes there.
	do(t, ctx, chromedp.Click(chromedp.CSS("form.retry-form button")),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`a.retry-of[href="/runs/%d"]`, failed.ID))))
	var newID uint
	_, err := fmt.Sscanf(eval[string](t, ctx, `location.pathname`), "/runs/%d", &newID)
	require.NoError(t, err)
	require.Contains(t, eval[string](t, ctx, `document.querySelector('.meta').textContent`), fmt.Sprintf("retry of run #%d", failed.ID))
	retried := hs.waitRun(t, newID)
	require.Equal(t, failed.ID, retried.RetryOf)
	require.Equal(t, "retry5-dev", retried.StartedBy)
	require.Equal(t, berth.RunFailed, retried.Status, "the same request fails the same way")
	require.Equal(t, 0, countAll(hs.containersOf(t, tenant)), "each failed try undid its work")
}
