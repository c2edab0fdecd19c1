package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/moby/moby/client"
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
	require.Contains(t, eval[string](t, ctx, row+`.textContent`), "logs 60MiB, no quota", "two instances of the default rotation")
	do(t, ctx, chromedp.Navigate(hs.apiURL+"/admin/hosts"), chromedp.WaitVisible(chromedp.CSS("table.hosts")))
	require.Positive(t, eval[int](t, ctx, `document.querySelectorAll('td.capacity meter').length`))
	hs.screenshot(t, ctx, "capacity")
}

// A compose file's logging options become the engine's json-file rotation,
// which bounds what a noisy instance keeps on its host (read from the log
// files on the host after it wrote 6 MiB); the environment's log quota
// counts every instance's rotation and refuses, before anything starts, a
// deploy that would pass it.
func TestLogRotationAndLogQuota(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "logq")
	tenant := hs.tenant + "-logq"
	envPath := strings.TrimSuffix(apps, "/applications")
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "PUT", envPath+"/quota", berth.Quota{MaxLogBytes: 40 << 20}, nil))

	quiet := strings.Replace(string(webCompose("web", 1, "")), "    x-berth:", "    logging: {driver: json-file, options: {max-size: 1m, max-file: \"2\"}}\n    x-berth:", 1)
	hs.deployOK(t, apps, "quiet", []byte(quiet))
	hs.deployOK(t, apps, "noisy", webCompose("web", 1, ""))

	web := serviceOf(t, hs.app(t, apps, "quiet"), "web")
	inst := web.Instances[0]
	insp, err := hs.engineOf(t, inst.Host).ContainerInspect(context.Background(), inst.Name, client.ContainerInspectOptions{})
	require.NoError(t, err)
	lc := insp.Container.HostConfig.LogConfig
	require.Equal(t, "json-file", lc.Type)
	require.Equal(t, map[string]string{"max-size": "1m", "max-file": "2"}, lc.Config)
	require.Equal(t, int64(2<<20), inst.Resources.LogBytes, "the instance record carries its rotation")

	code, body := httpGet(t, instanceURL(t, web)+"/spam?mb=6")
	require.Equal(t, http.StatusOK, code, body)
	logPath := insp.Container.LogPath
	require.NotEmpty(t, logPath)
	kept := func() int64 {
		matches, err := filepath.Glob(logPath + "*")
		require.NoError(t, err)
		var n int64
		for _, m := range matches {
			if fi, err := os.Stat(m); err == nil {
				n += fi.Size()
			}
		}
		return n
	}
	require.Eventually(t, func() bool {
		_, err := os.Stat(logPath + ".1")
		return err == nil
	}, 30*time.Second, 100*time.Millisecond, "the engine rotated the log")
	// Each file may pass max-size by one line before it rotates.
	require.LessOrEqual(t, kept(), int64(2<<20+64<<10), "6 MiB written, at most two files of 1 MiB kept")
	t.Logf("after 6 MiB of output: %d bytes kept in %s*", kept(), filepath.Base(logPath))

	var e struct{ Error struct{ Message string } }
	code = hs.api(t, "POST", apps+"?name=third", "application/yaml", webCompose("web", 1, ""), &e)
	require.Equal(t, http.StatusConflict, code, e.Error.Message)
	require.Contains(t, e.Error.Message, "environment dev's quota: logs: 30MiB asked, 32MiB of 40MiB in use")
	require.Equal(t, 2, countAll(hs.containersOf(t, tenant)), "nothing of the refused deploy started")

	var capa store.Capacity
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/capacity", nil, &capa))
	found := false
	for _, ec := range capa.Environments {
		if ec.Tenant == tenant && ec.Environment == "dev" {
			found = true
			require.Equal(t, int64(32<<20), ec.Used.LogBytes)
			require.Equal(t, int64(40<<20), ec.Quota.MaxLogBytes)
		}
	}
	require.True(t, found, "the capacity API lists %s/dev", tenant)
}
