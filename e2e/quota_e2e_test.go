package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// A deploy or a scale beyond the environment's memory quota is refused with
// a 409 naming what is short, before any container starts; the capacity API
// and the hosts and environments pages (in a real browser) show what is
// used against what is allowed. Tenant admins may not raise their tenant's
// own quota.
func TestQuotaRefusesUpFrontAndCapacityShowsUse(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "quota")
	tenant := hs.tenant + "-quota"
	envPath := strings.TrimSuffix(apps, "/applications")
	// Two default instances (512 MiB each) fit; a third does not.
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "PUT", envPath+"/quota", berth.Quota{MaxMemoryBytes: 1 << 30}, nil))

	var e struct{ Error struct{ Message string } }
	code := hs.api(t, "POST", apps+"?name=big", "application/yaml", webCompose("web", 3, ""), &e)
	require.Equal(t, http.StatusConflict, code, e.Error.Message)
	require.Contains(t, e.Error.Message, "environment dev's quota: memory: 1536MiB asked, 0 of 1GiB in use")
	require.Zero(t, countAll(hs.containersOf(t, tenant)), "nothing started")

	hs.deployOK(t, apps, "shop", webCompose("web", 2, ""))
	svc := hs.app(t, apps, "shop").Services[0]
	code = hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/scale", svc.ID), map[string]int{"replicas": 3}, &e)
	require.Equal(t, http.StatusConflict, code, e.Error.Message)
	require.Contains(t, e.Error.Message, "memory: 512MiB asked, 1GiB of 1GiB in use")
	require.Equal(t, 2, countAll(hs.containersOf(t, tenant)))

	var capa store.Capacity
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/capacity", nil, &capa))
	var mine *store.EnvironmentCapacity
	for i, ec := range capa.Environments {
		if ec.Tenant == tenant && ec.Environment == "dev" {
			mine = &capa.Environments[i]
		}
	}
	require.NotNil(t, mine)
	require.Equal(t, 2, mine.Used.Instances)
	require.Equal(t, int64(1<<30), mine.Used.MemoryBytes)
	require.Equal(t, int64(1<<30), mine.Quota.MaxMemoryBytes)
	sized := map[string]int64{}
	for _, h := range capa.Hosts {
		sized[h.Host] = h.Allocatable.MemoryReserved
	}
	// Other tests register hosts that never answered, whose size is unknown;
	// the harness's own hosts were measured when they were added.
	for _, th := range hs.hosts {
		require.Positive(t, sized[th.Name], th.Name)
	}

	admin := hs.newPerson(t, tenant+"-adm", tenant, berth.RoleAdmin)
	code, msg := admin.send(t, "PUT", "/api/v1/tenants/"+tenant+"/quota", berth.Quota{MaxInstances: 1000}, nil)
	require.Equal(t, http.StatusForbidden, code, msg)

	ctx := window(t, newBrowser(t))
	hs.signIn(t, ctx, hs.newPerson(t, tenant+"-ops", "", berth.RoleAdmin), "/admin/environments")
	do(t, ctx, chromedp.WaitVisible(chromedp.CSS("table.envs")))
	row := fmt.Sprintf(`document.getElementById('env-%s-dev')`, tenant)
	require.Equal(t, float64(1<<30), eval[float64](t, ctx, row+`.querySelector('meter').value`))
	require.Contains(t, eval[string](t, ctx, row+`.textContent`), "memory 1.0 GiB of 1.0 GiB")
	do(t, ctx, chromedp.Navigate(hs.apiURL+"/admin/hosts"), chromedp.WaitVisible(chromedp.CSS("table.hosts")))
	require.Positive(t, eval[int](t, ctx, `document.querySelectorAll('td.capacity meter').length`))
	hs.screenshot(t, ctx, "capacity")
}
