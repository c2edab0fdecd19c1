package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/workflows"
)

// A deploy or a scale beyond the environment's memory quota is refused with
// a 409 naming what is short, before any container starts; the capacity API
// and the hosts and environments pages (in a real browser) show what is
// used against what is allowed. Tenant admins may not raise their tenant's
// own quota.
func TestQuotaRefusesUpFrontAndCapacityShowsUse(t *testing.T) {
	hs := needHarness(t)
	// Two default instances (512 MiB each) fit; a third does not.
	apps, tenant := hs.envWithQuota(t, "quota", berth.Quota{MaxMemoryBytes: 1 << 30})

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

	capa, mine := hs.devCapacity(t, tenant)
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
	apps, tenant := hs.envWithQuota(t, "logq", berth.Quota{MaxLogBytes: 40 << 20})

	quiet := strings.Replace(string(webCompose("web", 1, "")), "    x-berth:", "    logging: {driver: json-file, options: {max-size: 1m, max-file: \"2\"}}\n    x-berth:", 1)
	hs.deployOK(t, apps, "quiet", []byte(quiet))
	hs.deployOK(t, apps, "noisy", webCompose("web", 1, ""))

	web := serviceOf(t, hs.app(t, apps, "quiet"), "web")
	inst := web.Instances[0]
	insp, err := hs.engineOf(t, inst.Host).ContainerInspect(context.Background(), inst.Name, client.ContainerInspectOptions{})
	require.NoError(t, err)
	lc := insp.Container.HostConfig.LogConfig
	require.Equal(t, "json-file", lc.Type)
	// The labels option copies the log tag into every line, for the host's log shipper.
	require.Equal(t, map[string]string{"max-size": "1m", "max-file": "2", "labels": activities.LabelLogTag}, lc.Config)
	require.Contains(t, insp.Container.Config.Labels[activities.LabelLogTag], ",instance="+inst.Name+",")
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

	_, ec := hs.devCapacity(t, tenant)
	require.Equal(t, int64(32<<20), ec.Used.LogBytes)
	require.Equal(t, int64(40<<20), ec.Quota.MaxLogBytes)
}

// Named volumes declare a size (driver_opts: size); the environment's
// volume quota counts every instance's volumes before anything starts; the
// engine makes each volume labelled with its application and size, and the
// disk pass measures what it holds and reports, once, a volume over its
// size (this machine's filesystem cannot hold a volume to a size itself).
func TestVolumeQuotaAndDiskPass(t *testing.T) {
	hs := needHarness(t)
	apps, tenant := hs.envWithQuota(t, "volq", berth.Quota{MaxVolumeBytes: 30 << 20})
	db := func(replicas int, size string) []byte {
		opts := ""
		if size != "" {
			opts = "\n    driver_opts: {size: " + size + "}"
		}
		return []byte(fmt.Sprintf(`services:
  db:
    image: %s
    deploy: {replicas: %d}
    ports: ["8080"]
    environment: {LISTEN: ":8080"}
    volumes: [data:/data]
    x-berth: {health: {http: /healthz}}
volumes:
  data:%s
`, sampleImage, replicas, opts))
	}
	var e struct{ Error struct{ Message string } }
	code := hs.api(t, "POST", apps+"?name=big", "application/yaml", db(1, ""), &e)
	require.Equal(t, http.StatusConflict, code, e.Error.Message)
	require.Contains(t, e.Error.Message, "environment dev's quota: volumes: 1GiB asked, 0 of 30MiB in use", "an undeclared volume counts 1 GiB")

	hs.deployOK(t, apps, "shop", db(2, "10m"))
	svc := serviceOf(t, hs.app(t, apps, "shop"), "db")
	code = hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/scale", svc.ID), map[string]int{"replicas": 4}, &e)
	require.Equal(t, http.StatusConflict, code, e.Error.Message)
	require.Contains(t, e.Error.Message, "volumes: 20MiB asked, 20MiB of 30MiB in use")

	inst := svc.Instances[0]
	volName := tenant + ".dev.shop.data"
	vol, err := hs.engineOf(t, inst.Host).VolumeInspect(context.Background(), volName, client.VolumeInspectOptions{})
	require.NoError(t, err)
	require.Equal(t, "10485760", vol.Volume.Labels["berth.volume.size"])
	require.Equal(t, tenant+".dev.shop", vol.Volume.Labels["berth.appkey"])

	code, body := httpGet(t, instanceURL(t, svc)+"/fill?dir=/data&mb=15")
	require.Equal(t, http.StatusOK, code, body)
	target := inst.Host + "/" + volName
	overSaid := func() int {
		var audit struct {
			Events []struct{ Target, Outcome, Detail string }
		}
		require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/audit?actor=reconciler&limit=500", nil, &audit))
		n := 0
		for _, ev := range audit.Events {
			if ev.Target == target && ev.Outcome == string(berth.FindingVolumeOverSize) {
				require.Contains(t, ev.Detail, "over the 10MiB it was declared with")
				n++
			}
		}
		return n
	}
	require.Eventually(t, func() bool { return overSaid() == 1 }, 60*time.Second, 500*time.Millisecond, "the disk pass reports the volume over its size")
	// The pass that found it says so in its result (and is the recorded
	// history the replay test reads).
	desc, err := hs.tc.ScheduleClient().GetHandle(context.Background(), workflows.DiskScheduleID).Describe(context.Background())
	require.NoError(t, err)
	reported := false
	for _, a := range desc.Info.RecentActions {
		wf := a.StartWorkflowResult
		var res workflows.DiskPassResult
		if wf == nil {
			continue
		}
		hs.workflowResult(t, wf.WorkflowID, wf.FirstExecutionRunID, &res)
		for _, f := range res.Findings {
			if f.Host+"/"+f.Target == target {
				reported = true
				hs.recordHistory(t, wf.WorkflowID, wf.FirstExecutionRunID, "disk-pass")
			}
		}
	}
	require.True(t, reported, "one of the recent passes reported it")

	_, ec := hs.devCapacity(t, tenant)
	require.Equal(t, int64(20<<20), ec.Used.VolumeBytes, "two instances reserve 10 MiB each")
	require.GreaterOrEqual(t, ec.VolumeBytes, int64(15<<20), "what the volume holds, measured")
	// Later passes measure again without saying it again.
	passes := func() int {
		desc, err := hs.tc.ScheduleClient().GetHandle(context.Background(), workflows.DiskScheduleID).Describe(context.Background())
		require.NoError(t, err)
		return int(desc.Info.NumActions)
	}
	before := passes()
	require.Eventually(t, func() bool { return passes() >= before+2 }, 30*time.Second, 500*time.Millisecond)
	require.Equal(t, 1, overSaid())

	// An instance's own folders are volumes of its own, removed with it;
	// the application's named volume stays for the instance left.
	folders := func(in store.InstanceView) []string {
		list, err := hs.engineOf(t, in.Host).VolumeList(context.Background(), client.VolumeListOptions{
			Filters: make(client.Filters).Add("label", "berth.instance="+in.Name)})
		require.NoError(t, err)
		names := []string{}
		for _, v := range list.Items {
			names = append(names, v.Name)
		}
		slices.Sort(names)
		return names
	}
	for _, in := range svc.Instances {
		require.Equal(t, []string{in.Name + ".files", in.Name + ".logs", in.Name + ".package"}, folders(in))
	}
	_, removing := hs.scale(t, svc.ID, 1)
	require.Len(t, removing, 1)
	for _, in := range svc.Instances {
		if in.Name == removing[0] {
			require.Empty(t, folders(in), "the removed instance's folders went with it")
		} else {
			require.Len(t, folders(in), 3, "the instance left keeps its folders")
		}
	}
	_, err = hs.engineOf(t, inst.Host).VolumeInspect(context.Background(), volName, client.VolumeInspectOptions{})
	require.NoError(t, err, "the application's volume stays")
}

// envWithQuota makes a tenant's dev environment (tenant named after the
// harness's, with suffix) and sets its quota.
func (hs *harness) envWithQuota(t testing.TB, suffix string, q berth.Quota) (apps, tenant string) {
	t.Helper()
	apps = hs.newEnv(t, suffix)
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "PUT", strings.TrimSuffix(apps, "/applications")+"/quota", q, nil))
	return apps, hs.tenant + "-" + suffix
}

// devCapacity reads the capacity API and a tenant's dev environment in it.
func (hs *harness) devCapacity(t testing.TB, tenant string) (store.Capacity, store.EnvironmentCapacity) {
	t.Helper()
	var capa store.Capacity
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/capacity", nil, &capa))
	for _, ec := range capa.Environments {
		if ec.Tenant == tenant && ec.Environment == "dev" {
			return capa, ec
		}
	}
	require.Failf(t, "no capacity", "the capacity API does not list %s/dev", tenant)
	return capa, store.EnvironmentCapacity{}
}

// An anonymous volume (- /scratch) is each instance's own, on the engine:
// two instances mount two volumes, and the volumes go when the
// application is deleted.
func TestAnonymousVolumeIsTheInstancesOwn(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "anon")
	compose := strings.Replace(string(webCompose("web", 2, "")), "    x-berth:", "    volumes: [/scratch]\n    x-berth:", 1)
	hs.deployOK(t, apps, "shop", []byte(compose))
	type mounted struct{ host, volume string }
	var vols []mounted
	for _, in := range serviceOf(t, hs.app(t, apps, "shop"), "web").Instances {
		insp, err := hs.engineOf(t, in.Host).ContainerInspect(context.Background(), in.Name, client.ContainerInspectOptions{})
		require.NoError(t, err)
		for _, m := range insp.Container.Mounts {
			if m.Destination == "/scratch" {
				require.Equal(t, "volume", string(m.Type), in.Name)
				vols = append(vols, mounted{in.Host, m.Name})
			}
		}
	}
	require.Len(t, vols, 2, "each instance mounts /scratch")
	require.NotEqual(t, vols[0].volume, vols[1].volume, "one volume per instance, not one per application")

	hs.deleteOK(t, apps, "shop")
	for _, v := range vols {
		_, err := hs.engineOf(t, v.host).VolumeInspect(context.Background(), v.volume, client.VolumeInspectOptions{})
		require.Error(t, err, "%s went with its container", v.volume)
	}
}
