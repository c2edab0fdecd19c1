package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// TestUIGrid drives the environment × service grid in Chromium against the
// real berth: a deployed service shows its version and state as text; while
// a release waits for an approver its cell carries the badge; once approved
// the cell shows the new version and the badge is gone; at 375 px the grid
// is a list that does not scroll sideways.
func TestUIGrid(t *testing.T) {
	hs := needHarness(t)
	hs.registerHosts(t)
	tenant := hs.tenant + "-grid"
	require.Equal(t, http.StatusCreated, hs.apiJSON(t, "POST", "/api/v1/tenants", map[string]string{"name": tenant}, nil))
	require.Equal(t, http.StatusCreated, hs.apiJSON(t, "POST", "/api/v1/tenants/"+tenant+"/environments",
		map[string]any{"name": "prod", "approveReleases": true, "separateDuties": false, "requireComment": false}, nil))
	require.Equal(t, http.StatusCreated, hs.apiJSON(t, "POST", "/api/v1/tenants/"+tenant+"/environments", map[string]any{"name": "dev"}, nil))
	names := []string{}
	for _, th := range hs.hosts {
		names = append(names, th.Name)
	}
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "POST", "/api/v1/tenants/"+tenant+"/environments/prod/hosts", map[string][]string{"hosts": names}, nil))
	apps := "/api/v1/tenants/" + tenant + "/environments/prod/applications"
	hs.deployOK(t, apps, "hello", readCompose(t, "single.yaml"))
	svc := hs.app(t, apps, "hello").Services[0]

	viewer := hs.newPerson(t, tenant+"-viewer", tenant, berth.RoleDeveloper, berth.RoleApprover)
	ctx := window(t, newBrowser(t))
	hs.signIn(t, ctx, viewer, "/")
	cell := fmt.Sprintf(`td[data-env="prod"] a.version[href="/services/%d"]`, svc.ID)
	do(t, ctx, chromedp.WaitVisible(chromedp.CSS(cell)))
	require.Equal(t, []string{"dev", "prod"}, eval[[]string](t, ctx, `[...document.querySelectorAll('table.grid thead th')].slice(1).map(e => e.textContent)`))
	cellText := `document.querySelector('` + cell + `').closest('td').textContent`
	text := eval[string](t, ctx, cellText)
	require.Contains(t, text, "v1", "the version")
	require.Contains(t, text, "running", "the state as text")
	require.Contains(t, text, "by admin", "who ran it last")
	require.NotContains(t, text, "waiting for approval")
	require.Equal(t, "sticky", eval[string](t, ctx, `getComputedStyle(document.querySelector('table.grid thead th')).position`), "headers stay fixed")

	// A release that waits for an approver puts the badge on the cell.
	var rs struct {
		RunID uint `json:"runId"`
	}
	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/releases", svc.ID), map[string]any{"image": "berth-sample:v2"}, &rs))
	a := hs.waitApproval(t, rs.RunID)
	do(t, ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(cell)))
	text = eval[string](t, ctx, cellText)
	require.Contains(t, text, "waiting for approval")
	require.Equal(t, fmt.Sprintf("/runs/%d", rs.RunID), eval[string](t, ctx, `document.querySelector('`+cell+`').closest('td').querySelector('.badge.waiting').getAttribute('href')`))
	hs.screenshot(t, ctx, "grid")

	// The row filter keeps matching rows only.
	do(t, ctx, chromedp.SendKeys(chromedp.ID("grid-filter"), "no-such-service"), chromedp.Submit(chromedp.ID("grid-filter")),
		chromedp.WaitVisible(chromedp.CSS(".empty")))
	do(t, ctx, chromedp.Navigate(hs.apiURL+"/?q=hello"), chromedp.WaitVisible(chromedp.CSS(cell)))

	// Phone width: the grid becomes a list with no sideways scroll.
	do(t, ctx, chromedp.EmulateViewport(375, 812), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS(cell)))
	noSideScroll(t, ctx, "grid")
	require.Equal(t, "block", eval[string](t, ctx, `getComputedStyle(document.querySelector('table.grid td:not(.none)')).display`), "cells stack as a list")
	hs.screenshot(t, ctx, "grid-375")
	do(t, ctx, chromedp.EmulateViewport(1280, 900))

	// Approved and released: the new version, no badge.
	code, msg := viewer.post(t, decidePath(a.ID), map[string]string{"decision": "approve", "comment": "grid test"}, nil)
	require.Equal(t, http.StatusOK, code, msg)
	run := hs.waitRun(t, rs.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	do(t, ctx, chromedp.Navigate(hs.apiURL+"/"), chromedp.WaitVisible(chromedp.CSS(cell)))
	text = eval[string](t, ctx, cellText)
	require.Contains(t, text, "v2")
	require.Contains(t, text, "succeeded")
	require.NotContains(t, text, "waiting for approval")
}

// TestUIAdminPages: the hosts and environments pages are for platform
// admins only; the register form (CSRF-protected) creates a host.
func TestUIAdminPages(t *testing.T) {
	hs := needHarness(t)
	hs.registerHosts(t)
	tenant := hs.approvalTenant(t, "adm")
	dev := hs.newPerson(t, tenant+"-dev", tenant, berth.RoleDeveloper, berth.RoleAdmin)
	root := hs.newPerson(t, tenant+"-root", "", berth.RoleAdmin)

	browser := newBrowser(t)
	devWin, adminWin := window(t, browser), window(t, browser)
	hs.signIn(t, devWin, dev, "/")
	for _, p := range []string{"/admin/hosts", "/admin/environments"} {
		do(t, devWin, chromedp.Navigate(hs.apiURL+p), chromedp.WaitVisible(chromedp.CSS("main h1")))
		require.Equal(t, "Forbidden", eval[string](t, devWin, `document.querySelector('main h1').textContent`), p)
		require.Contains(t, eval[string](t, devWin, `document.querySelector('main').textContent`), "needs role admin platform-wide")
	}
	code, _ := dev.post(t, "/admin/hosts", map[string]string{"name": "nope"}, nil)
	require.Equal(t, http.StatusForbidden, code, "a tenant's admin may not register hosts")
	require.False(t, eval[bool](t, devWin, `!!document.querySelector('a[href="/admin/hosts"]')`), "no admin links for non-admins")

	hs.signIn(t, adminWin, root, "/admin/hosts")
	do(t, adminWin, chromedp.WaitVisible(chromedp.CSS("#host-"+hs.hosts[0].Name)))
	row := eval[string](t, adminWin, `document.querySelector('#host-`+hs.hosts[0].Name+`').textContent`)
	require.Contains(t, row, "ready")
	require.Contains(t, row, "Docker ")

	// Register a host through the form; its engine does not exist, so its check will fail.
	name := "uih-" + randHex(3)
	do(t, adminWin,
		chromedp.SendKeys(chromedp.ID("h-name"), name),
		chromedp.SendKeys(chromedp.ID("h-endpoint"), "unix:///run/berth-no-such-engine-"+name+".sock"),
		chromedp.SendKeys(chromedp.ID("h-ip"), "127.0.0.9"),
		chromedp.Click(chromedp.CSS(`form[action="/admin/hosts"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(".notice")))
	require.Contains(t, eval[string](t, adminWin, `document.querySelector('.notice').textContent`), "Host "+name+" registered")
	do(t, adminWin, chromedp.WaitVisible(chromedp.CSS("#host-"+name)))
	var host store.Host
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/hosts/"+name, nil, &host))
	require.Equal(t, "127.0.0.9", host.IP)
	// The check runs in a worker and fails; the page then shows why.
	require.Eventually(t, func() bool {
		var hh store.Host
		hs.apiJSON(t, "GET", "/api/v1/hosts/"+name, nil, &hh)
		return hh.State == berth.HostDown
	}, 90*time.Second, 500*time.Millisecond, "an unreachable host is marked down")
	do(t, adminWin, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#host-"+name)))
	row = eval[string](t, adminWin, `document.querySelector('#host-`+name+`').textContent`)
	require.Contains(t, row, "down")
	require.True(t, eval[bool](t, adminWin, `!!document.querySelector('#host-`+name+` .step-error')`), "the reason is shown: %s", row)
	hs.screenshot(t, adminWin, "hosts")

	do(t, adminWin, chromedp.Navigate(hs.apiURL+"/admin/environments"), chromedp.WaitVisible(chromedp.CSS("#env-"+tenant+"-prod")))
	envRow := eval[string](t, adminWin, `document.querySelector('#env-`+tenant+`-prod').textContent`)
	require.Contains(t, envRow, "the starter may not approve")
	require.Contains(t, envRow, "a comment is required")
	require.Contains(t, envRow, "defaults: memory 512MiB, cpus 1, pids 512", "the environment's resource limits are shown")
	require.Contains(t, envRow, "maximums: none")
	noSideScroll(t, adminWin, "environments")
	do(t, adminWin, chromedp.EmulateViewport(375, 812), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#env-"+tenant+"-prod")))
	noSideScroll(t, adminWin, "environments at 375 px")
}
