package e2e

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// The configuration map of a tenant with 500 instances (records in the
// real MariaDB, spread over both hosts) renders in Chromium as a graph
// whose services show their instances as counts per host; + lists one
// service's 100 instances, − folds them back; at 375 px the page does not
// scroll sideways. How long the page took is logged (speed is measured in
// benchmarks: BenchmarkMapLayout).
func TestMapOf500Instances(t *testing.T) {
	hs := needHarness(t)
	tenant := hs.tenant + "-mapped"
	hs.newEnv(t, "mapped")
	db := hs.store.DB()
	var env store.Environment
	require.NoError(t, db.Joins("JOIN tenants ON tenants.id = environments.tenant_id").Where("tenants.name = ? AND environments.name = ?", tenant, "dev").First(&env).Error)
	var hosts []store.Host
	require.NoError(t, db.Where("name IN ?", hs.hostNames()).Order("name").Find(&hosts).Error)
	require.Len(t, hosts, 2)
	// Stopped instances of a failed application: self-healing and the
	// top-up leave them alone, and no container is needed to draw them.
	app := store.Application{EnvironmentID: env.ID, Name: "fleet", State: berth.StateFailed}
	require.NoError(t, db.Create(&app).Error)
	var svcIDs []uint
	for s := 1; s <= 5; s++ {
		svc := store.Service{ApplicationID: app.ID, Name: fmt.Sprintf("svc%d", s), Image: "berth-sample:v1", Replicas: 100, State: berth.StateFailed}
		require.NoError(t, db.Create(&svc).Error)
		svcIDs = append(svcIDs, svc.ID)
		var insts []store.Instance
		for i := 1; i <= 100; i++ {
			name := fmt.Sprintf("%s-dev-fleet-svc%d-%d", tenant, s, i)
			insts = append(insts, store.Instance{ServiceID: svc.ID, Name: name, UID: fmt.Sprintf("map%d%03d", s, i), Service: svc.Name,
				Ordinal: i, HostID: hosts[i%2].ID, State: berth.StateStopped, Version: "v1"})
		}
		require.NoError(t, db.CreateInBatches(&insts, 100).Error)
	}
	t.Cleanup(func() {
		now := time.Now()
		db.Model(&store.Instance{}).Where("service_id IN ?", svcIDs).Update("removed_at", &now)
		db.Model(&store.Service{}).Where("id IN ?", svcIDs).Update("deleted_at", &now)
		db.Model(&store.Application{}).Where("id = ?", app.ID).Update("deleted_at", &now)
	})

	dev := hs.newPerson(t, "map-dev", tenant, berth.RoleDeveloper)
	ctx := window(t, newBrowser(t))
	hs.signIn(t, ctx, dev, "/map")
	do(t, ctx, chromedp.WaitVisible(chromedp.CSS("svg.topo-map")))
	t.Logf("map of 500 instances: navigation took %.0f ms", eval[float64](t, ctx, `performance.getEntriesByType("navigation")[0].duration`))
	require.Contains(t, eval[string](t, ctx, `document.querySelector("h1").textContent`), "500 live instances on 2 hosts")
	require.Equal(t, 5, eval[int](t, ctx, `document.querySelectorAll("g.node.service").length`))
	require.Equal(t, 2, eval[int](t, ctx, `document.querySelectorAll("g.node.host").length`))
	require.Zero(t, eval[int](t, ctx, `document.querySelectorAll("g.node.instance").length`), "collapsed: counts, not 500 boxes")
	labels := eval[[]string](t, ctx, `[...document.querySelectorAll(".edge-label")].map(e => e.textContent)`)
	require.Len(t, labels, 10, "each service to each host, with its count")
	for _, l := range labels {
		require.Equal(t, "50", l)
	}
	require.Contains(t, eval[string](t, ctx, `document.querySelector("g.node.service .sub").textContent`), "0/100 running, 100 other")
	require.Contains(t, eval[string](t, ctx, `document.querySelector(".topo-list").textContent`), "svc3")

	// + on svc1 lists its 100 instances; − folds them.
	do(t, ctx, chromedp.Click(chromedp.CSS(`g.node.service a.toggle`)), chromedp.WaitReady(chromedp.CSS(`g.node.instance`)))
	// The first box shows while the page still streams in (CI once counted
	// 43): the count is read once the document has loaded.
	waitJS(t, ctx, `document.readyState === "complete"`, 10*time.Second)
	require.Equal(t, 100, eval[int](t, ctx, `document.querySelectorAll("g.node.instance").length`))
	u := eval[string](t, ctx, `location.search`)
	q, err := url.ParseQuery(strings.TrimPrefix(u, "?"))
	require.NoError(t, err)
	require.Equal(t, fmt.Sprint(svcIDs[0]), q.Get("expand"))
	require.Contains(t, eval[string](t, ctx, `document.querySelector("g.node.instance title").textContent`), "on "+hosts[1].Name)
	hs.screenshot(t, ctx, "map-expanded")
	do(t, ctx, chromedp.Click(chromedp.CSS(`a.toggle[aria-label^="Hide"]`)), chromedp.WaitNotPresent(chromedp.CSS(`g.node.instance`)))
	require.Equal(t, 5, eval[int](t, ctx, `document.querySelectorAll("g.node.service").length`))

	do(t, ctx, chromedp.EmulateViewport(375, 812), chromedp.Reload())
	do(t, ctx, chromedp.WaitVisible(chromedp.CSS("svg.topo-map")))
	noSideScroll(t, ctx, "map")
}
