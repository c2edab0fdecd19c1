package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/logship"
)

type logSearchBody struct {
	Lines     []logship.Line `json:"lines"`
	Truncated bool           `json:"truncated"`
}

// A line the sample app prints arrives, through the host's rsyslog shipper
// and the collector's TCP input, in the real rsyslog's archive with every
// tag (tenant, environment, application, service, instance, host,
// release); the API's search and the service page's search in Chromium
// find it; a line the application writes to a file in its log folder is
// shipped too, and so are berth's own lines.
func TestShippedLogsAreTaggedAndSearchable(t *testing.T) {
	hs := needHarness(t)
	if hs.logArchive == "" {
		t.Fatal("the log collector is not up: run the tests with deploy/local/testenv.sh (make test)")
	}
	tenant := hs.tenant + "-shipped"
	apps := hs.newEnv(t, "shipped")
	hs.deployOK(t, apps, "shop", webCompose("web", 1, ""))
	svc := hs.app(t, apps, "shop").Services[0]
	require.Len(t, svc.Instances, 1)
	inst := svc.Instances[0]

	day := time.Now().UTC().Format("2006-01-02")
	file := filepath.Join(hs.logArchive, inst.Name, day+".log")
	want := fmt.Sprintf(" berth,tenant=%s,env=dev,app=shop,service=web,instance=%s,host=%s,release=v1: ", tenant, inst.Name, inst.Host)
	var archived string
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(file)
		archived = string(b)
		return err == nil && strings.Contains(archived, "sampleapp: listening on")
	}, time.Minute, 200*time.Millisecond, "the app's line reaches the archive %s", file)
	var line string
	for _, l := range strings.Split(archived, "\n") {
		if strings.Contains(l, "sampleapp: listening on") {
			line = l
		}
	}
	require.Contains(t, line, want, "every tag is on the line")
	require.Contains(t, line, " 3 berth,", "the app logs to stderr: severity err")

	var sb logSearchBody
	path := "/api/v1/instances/" + inst.Name + "/logs/search?minutes=10&q=" + url.QueryEscape("listening on")
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", path, nil, &sb))
	require.Len(t, sb.Lines, 1)
	got := sb.Lines[0]
	require.Equal(t, "stderr", got.Stream)
	require.Contains(t, got.Text, "sampleapp: listening on :8080 (version v1)")
	require.Equal(t, map[string]string{"tenant": tenant, "env": "dev", "app": "shop", "service": "web", "instance": inst.Name,
		"host": inst.Host, "release": "v1"}, got.Tags)
	require.WithinDuration(t, time.Now(), got.At, 5*time.Minute)
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/instances/"+inst.Name+"/logs/search?minutes=10&q=nothing-like-this", nil, &sb))
	require.Empty(t, sb.Lines)
	var e struct {
		Error struct{ Code, Message string }
	}
	for _, bad := range []string{"minutes=0", "minutes=1441", "limit=501", "q=" + strings.Repeat("x", 201)} {
		require.Equal(t, http.StatusBadRequest, hs.apiJSON(t, "GET", "/api/v1/instances/"+inst.Name+"/logs/search?"+bad, nil, &e), bad)
	}
	require.Equal(t, http.StatusNotFound, hs.apiJSON(t, "GET", "/api/v1/instances/no-such-instance-1/logs/search", nil, &e))

	// A line the application writes into its log file (/berth/logs) is
	// shipped the same way, filed under the instance, and found with the
	// instance's tags.
	mark := "order-" + hs.tenant + " paid"
	code, body := httpGet(t, instanceURL(t, svc)+"/applog?line="+url.QueryEscape(mark))
	require.Equal(t, http.StatusOK, code, body)
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(file)
		return err == nil && strings.Contains(string(b), "berth,instance="+inst.Name+",file=app.log: ") && strings.Contains(string(b), mark)
	}, time.Minute, 200*time.Millisecond, "the application's log file line reaches the archive")
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/instances/"+inst.Name+"/logs/search?minutes=10&q="+url.QueryEscape(mark), nil, &sb))
	require.Len(t, sb.Lines, 1)
	require.Equal(t, map[string]string{"tenant": tenant, "env": "dev", "app": "shop", "service": "web", "instance": inst.Name,
		"host": inst.Host, "file": "app.log"}, sb.Lines[0].Tags)

	// berth's own processes ship their lines.
	for _, comp := range []string{"server", "worker"} {
		own := filepath.Join(hs.logArchive, "_berth", comp, day+".log")
		require.Eventually(t, func() bool {
			b, err := os.ReadFile(own)
			return err == nil && strings.Contains(string(b), "berth,component="+comp+"[")
		}, time.Minute, 200*time.Millisecond, "berth's %s lines reach %s", comp, own)
	}

	// In Chromium, the service page's search finds the line.
	dev := hs.newPerson(t, "shipped-dev", tenant, berth.RoleDeveloper)
	ctx := window(t, newBrowser(t))
	hs.signIn(t, ctx, dev, fmt.Sprintf("/services/%d", svc.ID))
	do(t, ctx, chromedp.WaitVisible(chromedp.CSS("#log-search")),
		chromedp.SendKeys(chromedp.CSS("#log-search-q"), "listening on"),
		chromedp.Click(chromedp.CSS(`#log-search button[type="submit"]`)))
	waitJS(t, ctx, `document.getElementById("log-search-results").textContent.includes("sampleapp: listening on")`, 30*time.Second)
	status := eval[string](t, ctx, `document.getElementById("log-search-status").textContent`)
	require.Contains(t, status, "1 line found")
	do(t, ctx, chromedp.EmulateViewport(375, 812), chromedp.Reload())
	noSideScroll(t, ctx, "service page with the log search")
}
