package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

const chromiumPath = "/usr/bin/chromium"

// newBrowser starts Debian's Chromium headless with a fresh profile; every
// tab or window of the test shares it.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("BERTH_REQUIRE_E2E") != "" {
			t.Fatalf("browser tests need %s: deploy/local/deps.sh test installs it", chromiumPath)
		}
		t.Skipf("no %s; deploy/local/deps.sh test installs it", chromiumPath)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// Two people's windows are open at once; neither may be throttled as a background one.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true))
	ctx, cancel := chromedp.NewContext(alloc)
	// The first Run starts the browser; it must not carry a timeout.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("about:blank")))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return ctx
}

// window opens a window with its own cookies (a browser context), as a
// second person on another machine would have.
func window(t *testing.T, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("about:blank")))
	t.Cleanup(cancel)
	return ctx
}

// do runs browser steps with a bound, so a broken page fails the test
// instead of hanging it.
func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	require.NoError(t, chromedp.Do(tctx, steps...))
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Evaluate[T](js))
	require.NoError(t, err, js)
	return v
}

// waitJS waits until a JavaScript expression is truthy, checking every 10 ms.
func waitJS(t *testing.T, ctx context.Context, js string, within time.Duration) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, within+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(tctx, chromedp.Poll[chromedp.Void](js,
		chromedp.WithPollingInterval(10*time.Millisecond), chromedp.WithPollingTimeout(within)))
	require.NoError(t, err, "waiting for %s", js)
}

func (hs *harness) signIn(t *testing.T, ctx context.Context, p *person, next string) {
	t.Helper()
	do(t, ctx,
		chromedp.Navigate(hs.apiURL+"/login?next="+next),
		chromedp.WaitVisible(chromedp.CSS("#name")),
		chromedp.SendKeys(chromedp.CSS("#name"), p.name),
		chromedp.SendKeys(chromedp.CSS("#password"), p.password),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(".who .user")))
}

func (hs *harness) screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := filepath.Join(hs.logDir, "screens")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644))
}

// noSideScroll checks the page fits its viewport's width.
func noSideScroll(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	w := eval[[]int](t, ctx, `[document.documentElement.scrollWidth, document.documentElement.clientWidth]`)
	require.LessOrEqual(t, w[0], w[1], "%s scrolls sideways at %d px", page, w[1])
}

// TestUIApproval drives the web UI in Chromium against the real berth: a
// developer opens a run that waits for approval; an approver signs in, finds
// it in the inbox, is refused without a comment, approves with one; the
// developer's open run page moves from waiting to done without a reload.
func TestUIApproval(t *testing.T) {
	hs := needHarness(t)
	tenant := hs.approvalTenant(t, "apui")
	dana := hs.newPerson(t, "ui-dana", tenant, berth.RoleDeveloper, berth.RoleApprover)
	bob := hs.newPerson(t, "ui-bob", tenant, berth.RoleApprover)
	carol := hs.newPerson(t, "ui-carol", tenant, berth.RoleApprover)

	summary := "web: registry/web:1.4.1 → registry/web:1.4.2\n2 instances on h1, h2 <script>window.__xss='summary'</script>"
	runID := dana.startGate(t, tenant, "prod", map[string]any{"name": "web", "summary": summary})
	a := hs.waitApproval(t, runID)

	browser := newBrowser(t)
	devWin, approverWin := window(t, browser), window(t, browser)

	// The developer watches the run live.
	hs.signIn(t, devWin, dana, fmt.Sprintf("/runs/%d", runID))
	waitJS(t, devWin, `document.getElementById('live-state').textContent === 'Live'`, 10*time.Second)
	waitJS(t, devWin, `!!document.querySelector('.step.step-waiting')`, 10*time.Second)
	// Their own approval is offered disabled, saying why.
	why := eval[string](t, devWin, `document.querySelector('.actions .why').textContent`)
	require.Contains(t, why, "You started this run")
	require.True(t, eval[bool](t, devWin, `document.querySelector('.actions button.approve').disabled`))
	code, msg := dana.post(t, decidePath(a.ID), map[string]string{"decision": "approve", "comment": "my own"}, nil)
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, msg, "separation of duties")

	// The approver finds it in the inbox, with what will change.
	hs.signIn(t, approverWin, bob, "/inbox")
	card := fmt.Sprintf("#approval-%d", a.ID)
	do(t, approverWin, chromedp.WaitVisible(chromedp.CSS(card)))
	require.Contains(t, eval[string](t, approverWin, `document.querySelector('`+card+` .summary').textContent`), "registry/web:1.4.2")
	label := eval[string](t, approverWin, `document.querySelector('`+card+` button.approve').getAttribute('aria-label')`)
	require.Equal(t, fmt.Sprintf("Approve run %d gate web to prod", runID), label)
	hs.screenshot(t, approverWin, "inbox")

	// An empty comment is refused, the error tied to the field.
	do(t, approverWin, chromedp.Click(chromedp.CSS(card+" button.approve")))
	waitJS(t, approverWin, `!document.querySelector('`+card+` .field-error').hidden`, 5*time.Second)
	ta := fmt.Sprintf("comment-%d", a.ID)
	require.Equal(t, "true", eval[string](t, approverWin, `document.getElementById('`+ta+`').getAttribute('aria-invalid')`))
	require.Equal(t, ta+"-error", eval[string](t, approverWin, `document.getElementById('`+ta+`').getAttribute('aria-describedby')`))
	require.Equal(t, ta, eval[string](t, approverWin, `document.activeElement.id`), "focus moves to the field")

	// Approve with a comment that tries markup; time the click to the developer's page.
	comment := `ship it <img src=x onerror="window.__xss='comment'"><script>window.__xss='comment'</script>`
	do(t, approverWin, chromedp.SendKeys(chromedp.ID(ta), comment))
	clicked := time.Now()
	do(t, approverWin, chromedp.Click(chromedp.CSS(card+" button.approve")))
	waitJS(t, devWin, `document.getElementById('live').textContent.includes('Approved by ui-bob')`, 5*time.Second)
	approvedIn := time.Since(clicked)
	waitJS(t, devWin, `[...document.querySelectorAll('.step')].some(s => s.classList.contains('step-done') && s.querySelector('.step-name').textContent === 'approval') && !!document.querySelector('.step .step-name') && document.getElementById('live').textContent.includes('released')`, 5*time.Second)
	resumedIn := time.Since(clicked)
	t.Logf("click → \"Approved by ui-bob\" on the developer's open page: %s; → approval step done and next step shown: %s", approvedIn.Round(time.Millisecond), resumedIn.Round(time.Millisecond))
	require.LessOrEqual(t, approvedIn, 1500*time.Millisecond)
	require.LessOrEqual(t, resumedIn, 1500*time.Millisecond)
	waitJS(t, approverWin, `document.querySelector('`+card+` .result').textContent.startsWith('Approved by ui-bob')`, 5*time.Second)

	// The run page (history) shows the approval with name and comment, as text.
	run := hs.waitRun(t, runID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	do(t, devWin, chromedp.Navigate(fmt.Sprintf("%s/runs/%d", hs.apiURL, runID)), chromedp.WaitVisible(chromedp.CSS(".decision")))
	dec := eval[string](t, devWin, `document.querySelector('.decision').textContent`)
	require.Contains(t, dec, "Approved by ui-bob")
	require.Contains(t, dec, `<script>window.__xss='comment'</script>`, "the comment is shown as text")
	require.True(t, eval[bool](t, devWin, `window.__xss === undefined && !document.querySelector('#live img')`), "no markup from a comment ran")
	hs.screenshot(t, devWin, "run")
	do(t, devWin, chromedp.Navigate(hs.apiURL+"/runs?tenant="+tenant), chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`a[href="/runs/%d"]`, runID))))
	hs.screenshot(t, devWin, "runs")

	// A second approver's late click is refused.
	code, msg = carol.post(t, decidePath(a.ID), map[string]string{"decision": "reject", "comment": "too late"}, nil)
	require.Equal(t, http.StatusConflict, code)
	require.Contains(t, msg, "already approved (by ui-bob)")

	// A forged cross-origin POST from another site, in the approver's signed-in browser, is refused.
	run2 := dana.startGate(t, tenant, "prod", map[string]any{"name": "api", "summary": "api 2.0 → 2.1"})
	a2 := hs.waitApproval(t, run2)
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!doctype html><form id=f method=post action="%s%s"><input name=decision value=approve><input name=comment value=forged></form><script>document.getElementById('f').submit()</script>`,
			hs.apiURL, decidePath(a2.ID))
	}))
	defer evil.Close()
	do(t, approverWin, chromedp.Navigate(evil.URL))
	waitJS(t, approverWin, `location.href.startsWith('`+hs.apiURL+`') && document.body.textContent.includes('forbidden')`, 10*time.Second)
	require.Contains(t, eval[string](t, approverWin, `document.body.textContent`), "cross-origin request refused")
	var ab approvalBody
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", fmt.Sprintf("/api/v1/approvals/%d", a2.ID), nil, &ab))
	require.Equal(t, berth.ApprovalPending, ab.State, "the forged decision changed nothing")
	require.Empty(t, ab.Decisions)

	// Phone width: the inbox and the run page fit; the buttons are big enough to hit.
	do(t, approverWin, chromedp.EmulateViewport(375, 812), chromedp.Navigate(hs.apiURL+"/inbox"), chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf("#approval-%d", a2.ID))))
	noSideScroll(t, approverWin, "inbox")
	size := eval[[]float64](t, approverWin, fmt.Sprintf(`(r => [r.width, r.height])(document.querySelector('#approval-%d button.approve').getBoundingClientRect())`, a2.ID))
	require.GreaterOrEqual(t, size[0], 44.0)
	require.GreaterOrEqual(t, size[1], 44.0)
	hs.screenshot(t, approverWin, "inbox-375")
	do(t, approverWin, chromedp.Navigate(fmt.Sprintf("%s/runs/%d", hs.apiURL, runID)), chromedp.WaitVisible(chromedp.CSS(".timeline")))
	noSideScroll(t, approverWin, "run page")
	hs.screenshot(t, approverWin, "run-375")

	// Keyboard only: Tab to the comment, type, Tab to Approve, Enter. Focus is visible all the way.
	do(t, approverWin, chromedp.EmulateViewport(1280, 900), chromedp.Navigate(hs.apiURL+"/inbox"), chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf("#approval-%d", a2.ID))))
	ta2 := fmt.Sprintf("comment-%d", a2.ID)
	tabs := 0
	for ; tabs < 30 && eval[string](t, approverWin, `document.activeElement.id`) != ta2; tabs++ {
		do(t, approverWin, chromedp.KeyEvent(kb.Tab))
	}
	require.Less(t, tabs, 30, "the comment field is reachable with Tab")
	do(t, approverWin, chromedp.KeyEvent("keyboard only"), chromedp.KeyEvent(kb.Tab))
	require.Equal(t, fmt.Sprintf("Approve run %d gate api to prod", run2), eval[string](t, approverWin, `document.activeElement.getAttribute('aria-label')`))
	require.NotEqual(t, "none", eval[string](t, approverWin, `getComputedStyle(document.activeElement).outlineStyle`), "focus is visible")
	do(t, approverWin, chromedp.KeyEvent(kb.Enter))
	waitJS(t, approverWin, fmt.Sprintf(`document.querySelector('#approval-%d .result').textContent.startsWith('Approved by ui-bob')`, a2.ID), 5*time.Second)
	require.Equal(t, berth.RunSucceeded, hs.waitRun(t, run2).Status)
}

// TestUILiveLatency measures how fast a step's change reaches an open run
// page: the step is written to the store as a worker would write it.
func TestUILiveLatency(t *testing.T) {
	hs := needHarness(t)
	tenant := hs.approvalTenant(t, "aplive")
	viewer := hs.newPerson(t, "live-rm", tenant, berth.RoleReleaseManager)
	tn, err := hs.store.TenantByName(context.Background(), tenant)
	require.NoError(t, err)
	run := &store.Run{Kind: "gate", WorkflowID: "gate/" + tenant + "/dev/latency", TenantID: tn.ID, Subject: tenant + "/dev/latency",
		StartedBy: "live-rm", Status: berth.RunRunning}
	require.NoError(t, hs.store.CreateRun(context.Background(), run, ""))

	ctx := window(t, newBrowser(t))
	hs.signIn(t, ctx, viewer, fmt.Sprintf("/runs/%d", run.ID))
	waitJS(t, ctx, `document.getElementById('live-state').textContent === 'Live'`, 10*time.Second)
	var worst time.Duration
	for i := 1; i <= 5; i++ {
		name := fmt.Sprintf("step-%d", i)
		at := time.Now()
		require.NoError(t, hs.store.RecordStep(context.Background(), berth.StepEvent{RunID: run.ID, Name: name, State: berth.StepRunning, At: at.UTC()}))
		waitJS(t, ctx, `[...document.querySelectorAll('.step-name')].some(e => e.textContent === '`+name+`')`, 2*time.Second)
		if d := time.Since(at); d > worst {
			worst = d
		}
	}
	t.Logf("a step's change reached the open run page within %s (worst of 5)", worst.Round(time.Millisecond))
	require.LessOrEqual(t, worst, 500*time.Millisecond)
	require.NoError(t, hs.store.FinishRun(context.Background(), run.ID, berth.RunSucceeded, ""))
	waitJS(t, ctx, `document.getElementById('live-state').textContent === 'Finished'`, 5*time.Second)
}

// TestUIServicePage shows a deployed service: instances with host, IP,
// mappings, state and version, and the load-balancer pool with weights.
func TestUIServicePage(t *testing.T) {
	hs := needHarness(t)
	appsPath := hs.newEnv(t, "svc")
	tenant := strings.Split(strings.TrimPrefix(appsPath, "/api/v1/tenants/"), "/")[0]
	code, out := hs.deploy(t, appsPath, "hello", readCompose(t, "single.yaml"))
	require.Equal(t, http.StatusAccepted, code)
	run := hs.waitRun(t, out.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	ab := hs.app(t, appsPath, "hello")
	require.NotEmpty(t, ab.Services)
	svc := ab.Services[0]
	require.NotEmpty(t, svc.Instances)

	viewer := hs.newPerson(t, "svc-dev", tenant, berth.RoleDeveloper)
	ctx := window(t, newBrowser(t))
	hs.signIn(t, ctx, viewer, fmt.Sprintf("/services/%d", svc.ID))
	do(t, ctx, chromedp.WaitVisible(chromedp.CSS("table.runs")))
	text := eval[string](t, ctx, `document.querySelector('main').textContent`)
	inst := svc.Instances[0]
	require.Contains(t, text, inst.Name)
	require.Contains(t, text, inst.Host)
	require.Contains(t, text, inst.Mappings[0])
	hs.screenshot(t, ctx, "service")
	do(t, ctx, chromedp.EmulateViewport(375, 812), chromedp.Reload())
	noSideScroll(t, ctx, "service page")
}

// Every accepted compose file is a numbered version with who, when, its run
// and a diff against the one before; the API shows them, and the service
// page in a real browser shows the newest diff with + and − lines.
func TestComposeVersionsAndTheirDiff(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "vers")
	tenant := strings.Split(strings.TrimPrefix(apps, "/api/v1/tenants/"), "/")[0]
	hs.deployOK(t, apps, "shop", webCompose("web", 1, `GREETING: "hello"`))
	hs.deleteOK(t, apps, "shop")
	run2 := hs.deployOK(t, apps, "shop", webCompose("web", 1, `GREETING: "bonjour"`))

	var list struct {
		Versions []struct {
			Number         int
			CreatedBy      string
			RunID          uint
			Added, Removed int
			Compose, Diff  string
		}
	}
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", apps+"/shop/versions", nil, &list))
	require.Len(t, list.Versions, 2)
	require.Equal(t, 2, list.Versions[0].Number)
	require.Equal(t, run2.ID, list.Versions[0].RunID)
	require.Equal(t, 1, list.Versions[0].Added)
	require.Equal(t, 1, list.Versions[0].Removed)
	require.Empty(t, list.Versions[0].Compose, "the list is light")

	var v2 struct{ Compose, Diff string }
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", apps+"/shop/versions/2", nil, &v2))
	require.Contains(t, v2.Compose, "bonjour")
	require.Contains(t, v2.Diff, `-    environment: {LISTEN: ":8080", GREETING: "hello"}`)
	require.Contains(t, v2.Diff, `+    environment: {LISTEN: ":8080", GREETING: "bonjour"}`)
	require.Equal(t, http.StatusNotFound, hs.apiJSON(t, "GET", apps+"/shop/versions/3", nil, nil))
	require.Equal(t, http.StatusBadRequest, hs.apiJSON(t, "GET", apps+"/shop/versions/x", nil, nil))

	svc := hs.app(t, apps, "shop").Services[0]
	viewer := hs.newPerson(t, "vers-dev", tenant, berth.RoleDeveloper)
	ctx := window(t, newBrowser(t))
	hs.signIn(t, ctx, viewer, fmt.Sprintf("/services/%d", svc.ID))
	do(t, ctx, chromedp.WaitVisible(chromedp.CSS("section.versions details[open] pre.diff")))
	added := eval[string](t, ctx, `document.querySelector('section.versions details[open] pre.diff .add').textContent`)
	removed := eval[string](t, ctx, `document.querySelector('section.versions details[open] pre.diff .del').textContent`)
	require.Contains(t, added, "bonjour")
	require.Contains(t, removed, "hello")
	require.Equal(t, 2, eval[int](t, ctx, `document.querySelectorAll('section.versions details.version').length`))
	hs.screenshot(t, ctx, "versions")
}

// TestUIUpdateApplication changes a running application from its service
// page in Chromium: an edited environment variable is previewed (the plan
// names the service and its changed field, the diff shows the line removed
// and added) without changing anything; Update opens the run's page, the
// run succeeds, and the application has version 2 with the new value in
// its container. A file that does not parse is refused in the form.
func TestUIUpdateApplication(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "uiupd")
	tenant := hs.tenant + "-uiupd"
	hs.deployOK(t, apps, "shop", webCompose("web", 1, `GREETING: "hello"`))
	svc := hs.app(t, apps, "shop").Services[0]
	dev := hs.newPerson(t, "uiupd-dev", tenant, berth.RoleDeveloper)

	ctx := window(t, newBrowser(t))
	hs.signIn(t, ctx, dev, fmt.Sprintf("/services/%d", svc.ID))
	do(t, ctx, chromedp.WaitVisible(chromedp.CSS("form.update-form textarea")))
	file := eval[string](t, ctx, `document.getElementById('update-compose').value`)
	require.Contains(t, file, `GREETING: "hello"`, "the form holds the running file")
	edited := strings.Replace(file, `GREETING: "hello"`, `GREETING: "bonjour"`, 1)
	do(t, ctx, chromedp.SetValue(chromedp.ID("update-compose"), edited),
		chromedp.Click(chromedp.CSS("form.update-form button:not([data-update])")))
	waitJS(t, ctx, `!!document.querySelector('.update-plan li.change[data-service="web"]')`, 20*time.Second)
	require.Equal(t, "spec", eval[string](t, ctx, `document.querySelector('.update-plan li.change[data-service="web"]').dataset.kind`))
	require.Contains(t, eval[string](t, ctx, `document.querySelector('.update-plan li.change[data-service="web"]').textContent`), "web: spec (env)")
	added := eval[[]string](t, ctx, `[...document.querySelectorAll('.update-plan pre.diff .add')].map(e => e.textContent)`)
	removed := eval[[]string](t, ctx, `[...document.querySelectorAll('.update-plan pre.diff .del')].map(e => e.textContent)`)
	require.Equal(t, []string{`+    environment: {LISTEN: ":8080", GREETING: "bonjour"}`}, added)
	require.Equal(t, []string{`-    environment: {LISTEN: ":8080", GREETING: "hello"}`}, removed)
	require.True(t, eval[bool](t, ctx, `document.getElementById('update-error').hidden`))
	hs.screenshot(t, ctx, "update-preview")
	require.Len(t, hs.versionNumbers(t, apps, "shop"), 1, "a preview changes nothing")

	// WaitVisible rides out the navigation, which a polled script would not.
	do(t, ctx, chromedp.Click(chromedp.CSS("form.update-form button[data-update]")), chromedp.WaitVisible(chromedp.ID("live-state")))
	var runID uint
	_, err := fmt.Sscanf(eval[string](t, ctx, `location.pathname`), "/runs/%d", &runID)
	require.NoError(t, err)
	run := hs.waitRun(t, runID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	require.Equal(t, berth.KindUpdate, run.Kind)
	require.Equal(t, []int{2, 1}, hs.versionNumbers(t, apps, "shop"))
	after := hs.app(t, apps, "shop").Services[0]
	require.NotEmpty(t, after.Instances)
	for _, in := range after.Instances {
		insp, err := hs.engineOf(t, in.Host).ContainerInspect(context.Background(), in.Name, client.ContainerInspectOptions{})
		require.NoError(t, err)
		require.Contains(t, insp.Container.Config.Env, "GREETING=bonjour", in.Name)
	}

	// A file that does not parse: the API's 400 message, in the form's alert.
	bad := "services: ["
	var e struct{ Error struct{ Message string } }
	require.Equal(t, http.StatusBadRequest, hs.apiJSON(t, "PUT", apps+"/shop?dryRun=true", map[string]string{"compose": bad}, &e))
	require.NotEmpty(t, e.Error.Message)
	do(t, ctx, chromedp.Navigate(fmt.Sprintf("%s/services/%d", hs.apiURL, after.ID)), chromedp.WaitVisible(chromedp.CSS("form.update-form textarea")),
		chromedp.SetValue(chromedp.ID("update-compose"), bad),
		chromedp.Click(chromedp.CSS("form.update-form button:not([data-update])")))
	waitJS(t, ctx, `!document.querySelector('form.update-form [role=alert]').hidden`, 20*time.Second)
	require.Equal(t, e.Error.Message, eval[string](t, ctx, `document.querySelector('form.update-form [role=alert]').textContent`))
	require.Equal(t, "true", eval[string](t, ctx, `document.getElementById('update-compose').getAttribute('aria-invalid')`))
	require.Zero(t, eval[int](t, ctx, `document.querySelectorAll('.update-plan li').length`), "no plan for a refused file")
	hs.screenshot(t, ctx, "update-refused")
	require.Len(t, hs.versionNumbers(t, apps, "shop"), 2)
}

// versionNumbers are an application's compose versions, newest first.
func (hs *harness) versionNumbers(t testing.TB, apps, app string) []int {
	t.Helper()
	var vs struct {
		Versions []struct {
			Number int `json:"number"`
		} `json:"versions"`
	}
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", apps+"/"+app+"/versions", nil, &vs))
	out := make([]int, len(vs.Versions))
	for i, v := range vs.Versions {
		out[i] = v.Number
	}
	return out
}

// TestUIScaleReleaseRollback: a developer scales, releases an image and
// rolls back from the service page alone; each form opens the run it
// started, and the engines show the result. A refused release shows the
// API's message beside its form and starts nothing. An approver, who may
// formOpenedRun waits until a run form has taken the browser to its run's
// page (WaitVisible rides out the navigation), and until the run succeeds.
func (hs *harness) formOpenedRun(t *testing.T, ctx context.Context, what string) store.Run {
	t.Helper()
	do(t, ctx, chromedp.WaitVisible(chromedp.ID("live-state")))
	var runID uint
	_, err := fmt.Sscanf(eval[string](t, ctx, `location.pathname`), "/runs/%d", &runID)
	require.NoError(t, err, "the %s form opens its run", what)
	run := hs.waitRun(t, runID)
	require.Equal(t, berth.RunSucceeded, run.Status, "%s: %s", what, run.Error)
	return run
}

// do none of it, is told why instead of getting the forms.
func TestUIScaleReleaseRollback(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "uirun")
	tenant := hs.tenant + "-uirun"
	hs.deployOK(t, apps, "shop", webCompose("web", 1, ""))
	svc := hs.app(t, apps, "shop").Services[0]
	dev := hs.newPerson(t, "uirun-dev", tenant, berth.RoleDeveloper)
	page := fmt.Sprintf("%s/services/%d", hs.apiURL, svc.ID)

	browser := newBrowser(t)
	ctx := window(t, browser)
	hs.signIn(t, ctx, dev, fmt.Sprintf("/services/%d", svc.ID))
	submit := func(form, field, value string) store.Run {
		t.Helper()
		sel := fmt.Sprintf(`form.run-form[action$="/%s"]`, form)
		do(t, ctx, chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS(sel+" button")))
		if field != "" {
			do(t, ctx, chromedp.SetValue(chromedp.ID(field), value))
		}
		do(t, ctx, chromedp.Click(chromedp.CSS(sel+" button")))
		return hs.formOpenedRun(t, ctx, form)
	}
	images := func() []string {
		t.Helper()
		var out []string
		for _, in := range hs.app(t, apps, "shop").Services[0].Instances {
			insp, err := hs.engineOf(t, in.Host).ContainerInspect(context.Background(), in.Name, client.ContainerInspectOptions{})
			require.NoError(t, err)
			out = append(out, insp.Container.Config.Image)
		}
		return out
	}

	run := submit("scale", "scale-replicas", "2")
	require.Equal(t, berth.KindScale, run.Kind)
	require.Equal(t, []string{sampleImage, sampleImage}, images())

	run = submit("releases", "release-image", "berth-sample:v2")
	require.Equal(t, berth.KindRelease, run.Kind)
	require.Equal(t, []string{"berth-sample:v2", "berth-sample:v2"}, images())

	// The rollback form offers the releases that went well, the deploy's
	// first; choosing it returns every instance to v1.
	do(t, ctx, chromedp.Navigate(page), chromedp.WaitVisible(chromedp.ID("rollback-release")))
	options := eval[[]string](t, ctx, `[...document.querySelectorAll('#rollback-release option')].map(o => o.textContent)`)
	require.Len(t, options, 1, "only the deploy's release is earlier than the running one: %v", options)
	require.Contains(t, options[0], sampleImage)
	hs.screenshot(t, ctx, "run-forms")
	run = submit("rollback", "", "")
	require.Equal(t, berth.KindRollback, run.Kind)
	require.Equal(t, []string{sampleImage, sampleImage}, images())

	// Restart from the instance's row: confirmed, it opens its run, which
	// drains, restarts and puts the instance back.
	first := hs.app(t, apps, "shop").Services[0].Instances[0].Name
	restart := fmt.Sprintf(`tr[data-instance=%q] form[action$="/restart"] button`, first)
	do(t, ctx, chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS(restart)))
	require.Equal(t, 2, eval[int](t, ctx, `document.querySelectorAll('td.inst-actions form[action$="/restart"]').length`))
	eval[bool](t, ctx, `window.confirm = () => true, true`)
	do(t, ctx, chromedp.Click(chromedp.CSS(restart)))
	run = hs.formOpenedRun(t, ctx, "restart")
	require.Equal(t, berth.KindRestart, run.Kind)
	require.Contains(t, run.Subject, first)

	// A refused release: the API's own message, beside the form; no run.
	var e struct{ Error struct{ Message string } }
	require.Equal(t, http.StatusBadRequest, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/releases", svc.ID),
		map[string]any{"image": "Not An Image"}, &e))
	require.NotEmpty(t, e.Error.Message)
	runCount := func() int64 {
		t.Helper()
		var n int64
		require.NoError(t, hs.store.DB().Model(&store.Run{}).Joins("JOIN tenants ON tenants.id = runs.tenant_id").
			Where("tenants.name = ?", tenant).Count(&n).Error)
		return n
	}
	before := runCount()
	sel := `form.run-form[action$="/releases"]`
	do(t, ctx, chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS(sel+" button")),
		chromedp.SetValue(chromedp.ID("release-image"), "Not An Image"), chromedp.Click(chromedp.CSS(sel+" button")))
	waitJS(t, ctx, `!document.getElementById('release-error').hidden`, 20*time.Second)
	require.Equal(t, e.Error.Message, eval[string](t, ctx, `document.getElementById('release-error').textContent`))
	require.Equal(t, before, runCount(), "a refused release starts no run")

	// An approver may not scale, release or roll back: told why, no forms.
	approver := hs.newPerson(t, "uirun-appr", tenant, berth.RoleApprover)
	actx := window(t, browser)
	hs.signIn(t, actx, approver, fmt.Sprintf("/services/%d", svc.ID))
	do(t, actx, chromedp.WaitVisible(chromedp.CSS("section.run-forms")))
	require.Zero(t, eval[int](t, actx, `document.querySelectorAll('form.run-form').length`))
	why := eval[[]string](t, actx, `[...document.querySelectorAll('section.run-forms .why')].map(e => e.textContent)`)
	require.Len(t, why, 2)
	require.Contains(t, why[0], "Scaling and releasing")
	require.Contains(t, why[1], "Rolling back")
	require.Zero(t, eval[int](t, actx, `document.querySelectorAll('td.inst-actions').length`), "no instance actions for an approver")
}

// TestUIDeployAndPackageRelease: a developer deploys an application from
// the home page's form (the environment chosen from their tenants'), then
// uploads a package from the service page's form; each opens its run,
// which succeeds on the real hosts. A refused deploy shows the API's
// message beside the form and starts nothing.
func TestUIDeployAndPackageRelease(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "uideploy")
	tenant := hs.tenant + "-uideploy"
	dev := hs.newPerson(t, "uideploy-dev", tenant, berth.RoleDeveloper)
	browser := newBrowser(t)
	ctx := window(t, browser)
	hs.signIn(t, ctx, dev, "/")

	// The form is open on an empty home page and offers this tenant's
	// environment only.
	do(t, ctx, chromedp.WaitVisible(chromedp.ID("deploy-compose")))
	envs := eval[[]string](t, ctx, `[...document.querySelectorAll('#deploy-env option')].map(o => o.textContent)`)
	require.Equal(t, []string{tenant + "/dev"}, envs)
	do(t, ctx, chromedp.SetValue(chromedp.ID("deploy-name"), "Bad Name"),
		chromedp.SetValue(chromedp.ID("deploy-compose"), string(webCompose("web", 1, ""))),
		chromedp.Click(chromedp.CSS("form.deploy-form button")))
	waitJS(t, ctx, `!document.getElementById('deploy-error').hidden`, 20*time.Second)
	require.NotEmpty(t, eval[string](t, ctx, `document.getElementById('deploy-error').textContent`))
	var runs struct{ Total int }
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/runs?tenant="+tenant, nil, &runs))
	require.Zero(t, runs.Total, "a refused deploy starts no run")

	do(t, ctx, chromedp.SetValue(chromedp.ID("deploy-name"), "shop"), chromedp.Click(chromedp.CSS("form.deploy-form button")))
	run := hs.formOpenedRun(t, ctx, "deploy")
	require.Equal(t, berth.KindDeploy, run.Kind)
	svc := hs.app(t, apps, "shop").Services[0]
	require.Len(t, svc.Instances, 1)

	do(t, ctx, chromedp.Navigate(fmt.Sprintf("%s/services/%d", hs.apiURL, svc.ID)), chromedp.WaitVisible(chromedp.ID("upload-package")))
	pkg := filepath.Join(repoRoot(), "testdata", "packages", "good.tar.gz")
	do(t, ctx, chromedp.SetValue(chromedp.ID("upload-version"), "9.0.0"), chromedp.SetUploadFiles(chromedp.ID("upload-package"), []string{pkg}))
	hs.screenshot(t, ctx, "package-release-form")
	do(t, ctx, chromedp.Click(chromedp.CSS("form.upload-form button")))
	run = hs.formOpenedRun(t, ctx, "package release")
	require.Equal(t, berth.KindRelease, run.Kind)
	rb := hs.releases(t, svc.ID)
	require.Equal(t, berth.ReleaseFile, rb.Releases[0].Kind)
	require.Equal(t, "9.0.0", rb.Releases[0].Version)
	require.Equal(t, fileSHA(t, "good.tar.gz"), rb.Releases[0].PackageSHA256)
	require.Equal(t, []string{"v9"}, hs.versions(t, apps), "the instance serves the package")

	// Stopping the only instance is refused beside its button, with the
	// API's reason, and starts nothing.
	stop := `td.inst-actions form[action$="/stop"]`
	do(t, ctx, chromedp.Navigate(fmt.Sprintf("%s/services/%d", hs.apiURL, svc.ID)), chromedp.WaitVisible(chromedp.CSS(stop+" button")))
	eval[bool](t, ctx, `window.confirm = () => true, true`)
	do(t, ctx, chromedp.Click(chromedp.CSS(stop+" button")))
	waitJS(t, ctx, `!document.querySelector('`+stop+` [role=alert]').hidden`, 20*time.Second)
	require.Contains(t, eval[string](t, ctx, `document.querySelector('`+stop+` [role=alert]').textContent`), "last running instance")
	require.Equal(t, berth.StateRunning, hs.app(t, apps, "shop").Services[0].Instances[0].State)
}
