package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	sdkclient "go.temporal.io/sdk/client"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/workflows"
)

// regionWorker is a `berth worker -central=false` serving one region, with
// its own data folder and port window, as on a region's machine, driving
// the region's HAProxy, which the operator runs (operatorHAProxy).
type regionWorker struct {
	region string
	env    []string
	cmd    *exec.Cmd
}

func (hs *harness) startRegionWorker(t testing.TB, region string, haproxyEnv []string) *regionWorker {
	t.Helper()
	// Another window than the harness's worker, whose HAProxy holds its own:
	// the two regions' load balancers share this machine, where in
	// production each is its own. The region's pools are allocated there.
	lbMin := 30000 + int(time.Now().UnixNano()%20)*100
	var set store.Region
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "PUT", "/api/v1/regions/"+region+"/lb",
		map[string]any{"listenIP": "127.0.0.1", "portMin": lbMin, "portMax": lbMin + 99}, &set))
	require.Equal(t, lbMin, set.LBPortMin)
	rw := &regionWorker{region: region, env: []string{
		"BERTH_REGIONS=" + region, "BERTH_DATA=" + t.TempDir(), "BERTH_FIREWALL=none",
		// The platform's payload key, as every berth process of one platform holds it.
		"BERTH_PAYLOAD_KEY_FILE=" + filepath.Join(hs.logDir, "payload.key"),
		"BERTH_LB_PORT_MIN=" + fmt.Sprint(lbMin), "BERTH_LB_PORT_MAX=" + fmt.Sprint(lbMin+99),
		"BERTH_METRICS_LISTEN=" + freeAddr(t), "BERTH_HAPROXY_STATS=" + freeAddr(t),
	}}
	rw.env = append(rw.env, haproxyEnv...)
	rw.start(t, hs)
	return rw
}

// start runs the worker and waits until it polls its region's queue.
func (rw *regionWorker) start(t testing.TB, hs *harness) {
	t.Helper()
	cmd := exec.Command(hs.bin, "worker", "-central=false")
	cmd.Env = append(append([]string{}, hs.env...), rw.env...)
	hs.spawnFor(t, "worker-"+rw.region, cmd)
	rw.cmd = cmd
	queue := workflows.RegionTaskQueue(rw.region)
	require.Eventually(t, func() bool {
		resp, err := hs.tc.DescribeTaskQueue(t.Context(), queue, enumspb.TASK_QUEUE_TYPE_ACTIVITY)
		if err != nil {
			return false
		}
		for _, p := range resp.Pollers {
			// The dev server lists a killed worker's pollers for a while.
			if time.Since(p.LastAccessTime.AsTime()) < time.Second {
				return true
			}
		}
		return false
	}, 30*time.Second, 100*time.Millisecond, "the worker of region %s never polled; see worker-%s.log", rw.region, rw.region)
}

func freeAddr(t testing.TB) string {
	t.Helper()
	p, err := freePort()
	require.NoError(t, err)
	return fmt.Sprintf("127.0.0.1:%d", p)
}

// operatorHAProxy starts an HAProxy as an operator's own fleet runs one:
// master-worker, its own global section and a frontend of its own, and
// berth's file as one more -f. It returns the worker's settings to drive
// it, and the operator's frontend, which answers "ops".
func (hs *harness) operatorHAProxy(t testing.TB) ([]string, string) {
	t.Helper()
	dir := t.TempDir()
	ops := freeAddr(t)
	main, admin := filepath.Join(dir, "haproxy.cfg"), filepath.Join(dir, "admin.sock")
	require.NoError(t, os.WriteFile(main, []byte(fmt.Sprintf(`global
    master-worker
    stats socket %s mode 600 level admin expose-fd listeners

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend ops
    bind %s
    http-request return status 200 content-type text/plain string ops
`, admin, ops)), 0o600))
	berthFile := filepath.Join(dir, "conf.d", "berth.cfg")
	require.NoError(t, os.MkdirAll(filepath.Dir(berthFile), 0o755))
	require.NoError(t, os.WriteFile(berthFile, nil, 0o600))
	cmd := exec.Command("/usr/sbin/haproxy", "-W", "-S", filepath.Join(dir, "master.sock"), "-f", main, "-f", berthFile)
	hs.spawnFor(t, "operator-haproxy", cmd)
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + ops + "/")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK && string(b) == "ops"
	}, 10*time.Second, 50*time.Millisecond, "the operator's HAProxy never served")
	kill, err := exec.LookPath("kill")
	require.NoError(t, err)
	return []string{"BERTH_HAPROXY_CONFIG=" + berthFile, "BERTH_HAPROXY_SOCKET=" + admin,
		"BERTH_HAPROXY_RELOAD=" + kill + " -USR2 " + fmt.Sprint(cmd.Process.Pid)}, ops
}

// regionIPs numbers the loopback addresses of regionHost's hosts.
var regionIPs atomic.Int32

// regionHost registers a host in region, served by that region's worker,
// and returns its name once it is ready.
func (hs *harness) regionHost(t testing.TB, region string) string {
	t.Helper()
	// The second test engine, registered again as the one host of the new
	// region: a region's host is any engine its worker reaches. Its
	// instances publish on an address of their own (lo has all of
	// 127/8), as berth allocates ports per host and the engine's other
	// record publishes the same ports on its own address.
	th := hs.hosts[len(hs.hosts)-1]
	th.IP = fmt.Sprintf("127.0.0.%d", 3+regionIPs.Add(1))
	// Not under the tenant prefix, which registerHosts counts as its own.
	hostName := region + "-" + hs.tenant
	hs.registerHost(t, hostName, region, th.Endpoint, th.IP)
	return hostName
}

// secondRegion starts a region beside local: an operator's HAProxy, the
// region's worker driving it, and a host of the region. It returns the
// region, its worker, its host and the operator's own frontend.
func (hs *harness) secondRegion(t testing.TB, env ...string) (string, *regionWorker, string, string) {
	t.Helper()
	hs.registerHosts(t)
	region := "eu2" + randHex(2)
	haproxyEnv, ops := hs.operatorHAProxy(t)
	rw := hs.startRegionWorker(t, region, append(haproxyEnv, env...))
	return region, rw, hs.regionHost(t, region), ops
}

// heldForRegion returns the run's step that waits for region's worker, nil
// while none does. The run must still be running: a region without a
// worker holds a run, it neither fails nor ends it.
func (hs *harness) heldForRegion(t testing.TB, runID uint, region string) *store.Step {
	t.Helper()
	r, err := hs.store.Run(t.Context(), runID)
	require.NoError(t, err)
	require.Equal(t, berth.RunRunning, r.Status, "the run waits, it neither fails nor ends: %s", r.Error)
	for i, st := range r.Steps {
		if st.State == berth.StepWaiting && st.Detail == workflows.WaitingForRegion(region) {
			return &r.Steps[i]
		}
	}
	return nil
}

func (rw *regionWorker) kill(t testing.TB) {
	t.Helper()
	require.NoError(t, rw.cmd.Process.Signal(syscall.SIGKILL))
	_, _ = rw.cmd.Process.Wait()
}

// A second region, with its own worker driving the operator's HAProxy of
// that region. A region whose worker is down holds the runs that touch
// it: the run's step says it waits for that region's worker, nothing is
// undone, and the run completes when the worker is back. Runs in the
// other region go on meanwhile.
func TestRegionWorkerDownHoldsOnlyItsRuns(t *testing.T) {
	hs := needHarness(t)
	region, rw, hostName, ops := hs.secondRegion(t)

	tenant := hs.tenant + "-rgn"
	apps := hs.newEnvOn(t, tenant, hostName)
	hs.deployOK(t, apps, "shop", webCompose("web", 1, ""))
	svc := hs.app(t, apps, "shop").Services[0]
	pb := hs.pool(t, svc.ID)
	require.Equal(t, region, pb.Pool.Region)
	requirePoolMatches(t, pb, svc.Instances)
	code, v := httpGet(t, "http://"+pb.Backend.ListenAddr+"/version")
	require.Equal(t, http.StatusOK, code, "the region's own HAProxy serves its instance")
	require.Equal(t, "v1", v)
	code, v = httpGet(t, "http://"+ops+"/")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ops", v, "berth's reloads keep the operator's own frontend")

	rw.kill(t)
	var started struct {
		RunID uint `json:"runId"`
	}
	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/scale", svc.ID), map[string]int{"replicas": 2}, &started))
	held := func() *store.Step { return hs.heldForRegion(t, started.RunID, region) }
	require.Eventually(t, func() bool { return held() != nil }, 2*time.Minute, 250*time.Millisecond,
		"the scale never said it waits for region %s's worker", region)
	step := held().Name

	// Region local's runs are not held by eu-2's: a deploy and a release
	// there complete.
	okApps := hs.newEnv(t, "rgnok")
	other := hs.deployOK(t, okApps, "shop", webCompose("web", 1, ""))
	require.Equal(t, berth.RunSucceeded, other.Status)
	_, rel := hs.release(t, hs.app(t, okApps, "shop").Services[0].ID, map[string]any{"image": "berth-sample:v2"})
	require.Equal(t, berth.RunSucceeded, rel.Status, rel.Error)
	require.Equal(t, []string{"v2"}, hs.serviceVersions(t, okApps, "web"))
	require.NotNil(t, held(), "still waiting while region %s has no worker", region)

	rw.start(t, hs)
	done := hs.waitRun(t, started.RunID)
	require.Equal(t, berth.RunSucceeded, done.Status, done.Error)
	r, err := hs.store.Run(t.Context(), started.RunID)
	require.NoError(t, err)
	for _, st := range r.Steps {
		if st.Name == step {
			require.Equal(t, berth.StepDone, st.State)
			require.True(t, strings.HasPrefix(st.Detail, "region "+region+"'s worker returned after "), st.Detail)
			require.Positive(t, st.WaitingMs, "the wait is counted as waiting, not as work")
		}
	}
	svc = hs.app(t, apps, "shop").Services[0]
	require.Len(t, svc.Instances, 2)
	requirePoolMatches(t, hs.pool(t, svc.ID), svc.Instances)
	code, v = httpGet(t, "http://"+ops+"/")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ops", v)
	hs.recordHistory(t, done.WorkflowID, done.TemporalRunID, "scale-region-wait")
}

// make test-prod: the production Temporal server takes only clients with a
// certificate of its CA, and berth's processes (which the other tests of
// make test-prod drive) are such clients.
func TestTemporalRequiresClientCertificate(t *testing.T) {
	hs := needHarness(t)
	if hs.temporalTLS == "" {
		t.Skip("the dev server has no TLS; make test-prod runs this")
	}
	full, err := clientTLS(hs.temporalTLS)
	require.NoError(t, err)
	anonymous := full.Clone()
	anonymous.Certificates = nil
	c, err := sdkclient.Dial(sdkclient.Options{HostPort: hs.temporalAddr, Namespace: hs.namespace,
		ConnectionOptions: sdkclient.ConnectionOptions{TLS: anonymous}})
	if err == nil {
		_, err = c.CheckHealth(t.Context(), &sdkclient.CheckHealthRequest{})
		c.Close()
	}
	require.Error(t, err, "a client without a certificate is refused")
	_, err = hs.tc.CheckHealth(t.Context(), &sdkclient.CheckHealthRequest{})
	require.NoError(t, err, "the suite's client, with its certificate, is served")
}

// One service across two regions. An environment whose hosts are in region
// local and in a second region places the service in both, and each
// region's HAProxy serves only its own region's instance. The pool API
// and the service page show a pool per region, and the page reads both
// instances' figures and logs through their own regions' workers. Then
// the second region's worker is SIGKILLed in the middle of a release,
// while it starts that region's new instance: the release says it waits
// for the region's worker, both regions keep serving, nothing is undone,
// and once the worker is back the release completes in both regions.
func TestServiceSpansTwoRegions(t *testing.T) {
	hs := needHarness(t)
	region, rw, far, _ := hs.secondRegion(t)
	// The region's host is the last test engine; the other region's host
	// must be another engine for the two instances to be apart.
	near := hs.hosts[0]
	farEngine := hs.hosts[len(hs.hosts)-1].Engine
	require.NotEqual(t, near.Endpoint, hs.hosts[len(hs.hosts)-1].Endpoint)

	tenant := hs.tenant + "-span"
	apps := hs.newEnvOn(t, tenant, near.Name, far)
	// Slow to be ready, so that the kill below lands while the new
	// instance's start waits for its health.
	hs.deployOK(t, apps, "shop", webCompose("web", 2, `READY_AFTER: "5s"`))
	svc := hs.app(t, apps, "shop").Services[0]
	requireSpread := func() {
		t.Helper()
		svc = hs.app(t, apps, "shop").Services[0]
		var regions []string
		for _, in := range svc.Instances {
			regions = append(regions, in.Region)
		}
		sort.Strings(regions)
		require.Equal(t, []string{region, "local"}, regions, "one instance in each region")
	}
	requireServed := func(version string) {
		t.Helper()
		pb := hs.pool(t, svc.ID)
		require.Len(t, pb.Pools, 2, "a pool per region")
		listen := map[string]bool{}
		for _, p := range pb.Pools {
			require.Empty(t, p.LiveError)
			require.Equal(t, p.Region, p.Pool.Region)
			var mine []store.InstanceView
			for _, in := range svc.Instances {
				if in.Region == p.Region {
					mine = append(mine, in)
				}
			}
			// Recorded and live in that region's HAProxy: its instance only.
			requirePoolMatches(t, p, mine)
			code, v := httpGet(t, "http://"+p.Backend.ListenAddr+"/version")
			require.Equal(t, http.StatusOK, code, "region %s's HAProxy serves its instance", p.Region)
			require.Equal(t, version, v)
			listen[p.Backend.ListenAddr] = true
		}
		require.Len(t, listen, 2, "each region's clients have their own address")
	}
	requireSpread()
	requireServed("v1")

	before := map[string]bool{}
	for _, n := range instancesOn(t, farEngine, tenant) {
		before[n] = true
	}
	var rs releaseStarted
	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/services/%d/releases", svc.ID),
		map[string]any{"image": "berth-sample:v2", "batchSize": 1}, &rs))
	require.Eventually(t, func() bool {
		for _, n := range instancesOn(t, farEngine, tenant) {
			if !before[n] {
				return true
			}
		}
		return false
	}, 3*time.Minute, 20*time.Millisecond, "the release never made region %s's new instance", region)
	rw.kill(t)

	require.Eventually(t, func() bool { return hs.heldForRegion(t, rs.RunID, region) != nil }, 2*time.Minute, 250*time.Millisecond, "the release never said it waits for region %s's worker", region)
	// Both regions still serve: the region's HAProxy is the operator's, not
	// the dead worker's, and the release took nothing out before the kill.
	pb := hs.pool(t, svc.ID)
	for _, p := range pb.Pools {
		if p.Region == region {
			require.NotEmpty(t, p.LiveError, "region %s's live view says its worker is down", region)
		}
		code, _ := httpGet(t, "http://"+p.Backend.ListenAddr+"/version")
		require.Equal(t, http.StatusOK, code, "region %s serves while region %s has no worker", p.Region, region)
	}

	rw.start(t, hs)
	done := hs.waitRun(t, rs.RunID)
	require.Equal(t, berth.RunSucceeded, done.Status, done.Error)
	requireSpread()
	requireServed("v2")
	require.Len(t, instancesOn(t, farEngine, tenant), 1, "the killed attempt's container was adopted, not left")

	// The service page: a pool per region, and both instances' figures and
	// log tails, each read through its own region's worker.
	dev := hs.newPerson(t, "span-dev", tenant, berth.RoleDeveloper)
	ctx := window(t, newBrowser(t))
	hs.signIn(t, ctx, dev, fmt.Sprintf("/services/%d", svc.ID))
	pools := eval[[]string](t, ctx, `Array.from(document.querySelectorAll('section.pool')).map(function(s){return s.dataset.region+':'+s.querySelectorAll('tbody tr').length})`)
	sort.Strings(pools)
	require.Equal(t, []string{region + ":1", "local:1"}, pools)
	waitJS(t, ctx, `(function(){var b=document.querySelectorAll('.live-inst'); return b.length==2 && Array.from(b).every(function(x){return x.dataset.liveState=='live' && x.querySelector('.log-status').textContent=='Following the log.'})})()`, time.Minute)
	heads := eval[string](t, ctx, `Array.from(document.querySelectorAll('.live-inst h3')).map(function(h){return h.textContent}).join('|')`)
	require.Contains(t, heads, "region "+region)
	require.Contains(t, heads, "region local")
}

// instancesOn names a tenant's instance containers on one engine.
func instancesOn(t testing.TB, eng *client.Client, tenant string) []string {
	t.Helper()
	list, err := eng.ContainerList(t.Context(), client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", "berth.tenant="+tenant, activities.LabelInstance)})
	require.NoError(t, err)
	var out []string
	for _, c := range list.Items {
		out = append(out, strings.TrimPrefix(c.Names[0], "/"))
	}
	return out
}

// registryMirror runs Debian's docker-registry as a pull-through mirror of
// the suite's registry, as a region's own would be, and returns its
// host:port, its storage folder and its process. The credentials go in
// the upstream's URL: Distribution 2.8's proxy answers only token
// challenges with its username and password, and the suite's registry
// asks for basic auth.
func (hs *harness) registryMirror(t testing.TB) (string, string, *exec.Cmd) {
	t.Helper()
	dir := t.TempDir()
	addr := freeAddr(t)
	storage := filepath.Join(dir, "data")
	cfg := filepath.Join(dir, "config.yml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: %s
proxy:
  remoteurl: %s
`, storage, addr, yamlQuote((&url.URL{Scheme: "http", User: url.UserPassword(hs.registryUser, hs.registryPass), Host: hs.registry}).String()))), 0o600))
	cmd := exec.Command("docker-registry", "serve", cfg)
	hs.spawnFor(t, "registry-mirror", cmd)
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond, "the mirror never answered; see %s/registry-mirror.log", hs.logDir)
	return addr, storage, cmd
}

// yamlQuote makes s one YAML string whatever it holds.
func yamlQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// A region's registry mirror: the region's worker (-registry-mirror) pulls
// the platform registry's images from the mirror in its region, and the
// host holds the image under the registry's name only. With the mirror
// down, pulls go to the registry and the release still completes.
func TestRegionPullsFromItsMirror(t *testing.T) {
	hs := needHarness(t)
	needRegistry(t, hs)
	mirror, storage, mirrorCmd := hs.registryMirror(t)
	_, _, host, _ := hs.secondRegion(t, "BERTH_REGISTRY_MIRROR="+mirror)
	// The region's host is the last test engine; the images are pushed
	// from the first, so the region's host has to pull them.
	eng := hs.hosts[len(hs.hosts)-1].Engine
	require.NotEqual(t, hs.hosts[0].Endpoint, hs.hosts[len(hs.hosts)-1].Endpoint)

	tenant := hs.tenant + "-mirror"
	tag := randHex(4)
	v1 := hs.registry + "/" + tenant + "/web:" + tag + "-1"
	v2 := hs.registry + "/" + tenant + "/web:" + tag + "-2"
	hs.pushImage(t, sampleImage, v1)
	hs.pushImage(t, "berth-sample:v2", v2)
	apps := hs.newEnvOn(t, tenant, host)
	hs.deployOK(t, apps, "shop", []byte(strings.Replace(string(webCompose("web", 1, "")), sampleImage, v1, 1)))

	cached := filepath.Join(storage, "docker", "registry", "v2", "repositories", tenant, "web")
	_, err := os.Stat(cached)
	require.NoError(t, err, "the image came through the region's mirror")
	_, err = eng.ImageInspect(t.Context(), v1)
	require.NoError(t, err, "the host holds the image under the registry's name")
	_, err = eng.ImageInspect(t.Context(), mirror+"/"+tenant+"/web:"+tag+"-1")
	require.Error(t, err, "and not under the mirror's")

	// The mirror goes away: the release pulls from the registry instead.
	require.NoError(t, mirrorCmd.Process.Signal(syscall.SIGKILL))
	_, _ = mirrorCmd.Process.Wait()
	svc := hs.app(t, apps, "shop").Services[0]
	_, run := hs.release(t, svc.ID, map[string]any{"image": v2})
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	_, err = eng.ImageInspect(t.Context(), v2)
	require.NoError(t, err)
	require.Equal(t, []string{"v2"}, hs.serviceVersions(t, apps, "web"))
}
