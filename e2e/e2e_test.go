package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// A stack with web (3, depends_on api) and api (2) lands on both hosts, with
// host ports unique per host, every mapping reachable, and the service view
// listing each instance with its mapping. Deleting it removes everything.
func TestDeployAcrossTwoHosts(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "two")
	run := hs.deployOK(t, apps, "shop", readCompose(t, "web-api.yaml"))

	// Steps are recorded in order with their timings.
	names := []string{}
	for _, s := range run.Steps {
		names = append(names, s.Name)
		require.Equal(t, berth.StepDone, s.State, s.Name)
		require.NotNil(t, s.StartedAt)
		require.NotNil(t, s.FinishedAt)
	}
	require.Equal(t, []string{"plan", "images", "mesh", "start api", "start web", "load balancer", "firewall", "cmdb"}, names)

	tenant := hs.tenant + "-two"
	byHost := hs.containersOf(t, tenant)
	require.Equal(t, 5, countAll(byHost))
	require.Len(t, byHost, len(hs.hosts), "containers on every host: %v", byHost)

	ab := hs.app(t, apps, "shop")
	require.Equal(t, berth.StateRunning, ab.Application.State)
	require.Len(t, ab.Services, 2)
	seen := map[string]bool{}
	total := 0
	for _, svc := range ab.Services {
		want := map[string]int{"api": 2, "web": 3}[svc.Name]
		require.Len(t, svc.Instances, want, svc.Name)
		for _, in := range svc.Instances {
			total++
			require.Equal(t, berth.StateRunning, in.State)
			require.NotEmpty(t, in.ContainerID)
			require.NotEmpty(t, in.Host)
			require.Len(t, in.Ports, 1)
			p := in.Ports[0]
			require.Equal(t, 8080, p.ContainerPort)
			require.GreaterOrEqual(t, p.HostPort, hs.portMin)
			require.LessOrEqual(t, p.HostPort, hs.portMax)
			require.Equal(t, []string{fmt.Sprintf("%s:%d → 8080/tcp", p.HostIP, p.HostPort)}, in.Mappings)
			key := fmt.Sprintf("%s:%d", in.Host, p.HostPort)
			require.False(t, seen[key], "host port %s given twice", key)
			seen[key] = true
			code, body := httpGet(t, fmt.Sprintf("http://%s:%d/version", p.HostIP, p.HostPort))
			require.Equal(t, http.StatusOK, code)
			require.Equal(t, "v1", body)
			code, body = httpGet(t, fmt.Sprintf("http://%s:%d/", p.HostIP, p.HostPort))
			require.Equal(t, http.StatusOK, code)
			require.Contains(t, body, `"instance":"`+in.Name+`"`)
		}
	}
	require.Equal(t, 5, total)
	hs.recordHistory(t, run.WorkflowID, run.TemporalRunID, "deploy-stack-web-api")

	// Delete: graceful stop, removal, ports released, history kept.
	var del runStartedBody
	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "DELETE", apps+"/shop", nil, &del))
	drun := hs.waitRun(t, del.RunID)
	require.Equal(t, berth.RunSucceeded, drun.Status, drun.Error)
	require.Equal(t, 0, countAll(hs.containersOf(t, tenant)))
	ab = hs.app(t, apps, "shop")
	require.Equal(t, berth.StateDeleted, ab.Application.State)
	for _, svc := range ab.Services {
		require.Empty(t, svc.Instances)
	}
	require.Empty(t, hs.portsOfTenant(t, tenant))
	hs.recordHistory(t, drun.WorkflowID, drun.TemporalRunID, "delete-stack")
}

// portsOfTenant lists the port allocations held by a tenant's instances.
func (hs *harness) portsOfTenant(t testing.TB, tenant string) []store.PortAllocation {
	t.Helper()
	all, err := hs.store.PortAllocations(context.Background(), 0)
	require.NoError(t, err)
	var out []store.PortAllocation
	for _, pa := range all {
		if strings.HasPrefix(pa.InstanceName, tenant+"-") {
			out = append(out, pa)
		}
	}
	return out
}

// The worker is SIGKILLed while instances wait for health; after a restart
// the run completes with exactly the planned containers, none doubled.
func TestWorkerKilledMidDeploy(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "kill")
	tenant := hs.tenant + "-kill"
	body := webCompose("slow", 4, `READY_AFTER: "4s"`)
	code, started := hs.deploy(t, apps, "slow", body)
	require.Equal(t, http.StatusAccepted, code)
	require.Eventually(t, func() bool { return countAll(hs.containersOf(t, tenant)) >= 2 }, time.Minute, 20*time.Millisecond)
	hs.restartWorkerHard(t)
	run := hs.waitRun(t, started.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)

	byHost := hs.containersOf(t, tenant)
	all := []string{}
	for _, names := range byHost {
		all = append(all, names...)
	}
	sort.Strings(all)
	require.Equal(t, []string{tenant + "-dev-slow-slow-1", tenant + "-dev-slow-slow-2", tenant + "-dev-slow-slow-3", tenant + "-dev-slow-slow-4"}, all)
	ab := hs.app(t, apps, "slow")
	require.Len(t, ab.Services[0].Instances, 4)
	require.Len(t, hs.portsOfTenant(t, tenant), 4)
	// One default network on each host with instances (and the mesh's, as
	// the instances span hosts), though the worker died while parallel
	// starts were making them.
	for host, nets := range hs.appNetworks(t, tenant, "dev", "slow") {
		sort.Strings(nets)
		require.Equal(t, []string{berth.AppScoped(tenant, "dev", "slow", "_mesh"), berth.AppScoped(tenant, "dev", "slow", "default")}, nets, host)
	}
	// Each instance is in HAProxy exactly once, though the worker died before adding any.
	requirePoolMatches(t, hs.pool(t, ab.Services[0].ID), ab.Services[0].Instances)
	hs.recordHistory(t, run.WorkflowID, run.TemporalRunID, "deploy-stack-worker-killed")
}

// A missing image fails the deploy with a clear reason before any container
// is made, and leaves no port allocated.
func TestMissingImageLeavesNothing(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "noimg")
	tenant := hs.tenant + "-noimg"
	code, started := hs.deploy(t, apps, "ghost", readCompose(t, "missing-image.yaml"))
	require.Equal(t, http.StatusAccepted, code)
	run := hs.waitRun(t, started.RunID)
	require.Equal(t, berth.RunFailed, run.Status)
	require.Contains(t, run.Error, "berth-missing:nope")
	require.Contains(t, run.Error, "no configured registry")
	require.Equal(t, 0, countAll(hs.containersOf(t, tenant)))
	require.Empty(t, hs.portsOfTenant(t, tenant))
	require.Equal(t, berth.StateFailed, hs.app(t, apps, "ghost").Application.State)

	// A fixed compose can be deployed afterwards under the same name.
	code, started = hs.deploy(t, apps, "ghost", readCompose(t, "single.yaml"))
	require.Equal(t, http.StatusAccepted, code)
	run = hs.waitRun(t, started.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
}

// When a later service never becomes healthy, the containers of the earlier
// service that did start are removed and every port is released.
func TestFailedHealthUndoesEverything(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "sick")
	tenant := hs.tenant + "-sick"
	body := []byte(`services:
  db:
    image: berth-sample:v1
    deploy: {replicas: 2}
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
`)
	code, started := hs.deploy(t, apps, "sick", body)
	require.Equal(t, http.StatusAccepted, code)
	run := hs.waitRun(t, started.RunID)
	require.Equal(t, berth.RunFailed, run.Status)
	require.Contains(t, run.Error, "unhealthy")
	steps := stepStates(run)
	require.Equal(t, berth.StepDone, steps["start db"])
	require.Equal(t, berth.StepFailed, steps["start app"])
	require.Equal(t, berth.StepDone, steps["undo"])
	require.Equal(t, 0, countAll(hs.containersOf(t, tenant)))
	require.Empty(t, hs.portsOfTenant(t, tenant))
	require.Empty(t, hs.appNetworks(t, tenant, "dev", "sick"), "the undo removes the application's networks")
	hs.recordHistory(t, run.WorkflowID, run.TemporalRunID, "deploy-stack-undo")
}

// Two deploys at once on the same hosts never get the same host port.
func TestConcurrentDeploysNeverSharePort(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "race")
	tenant := hs.tenant + "-race"
	body := []byte(`services:
  svc:
    image: berth-sample:v1
    deploy: {replicas: 4}
    ports: ["8080", "9090"]
    environment: {LISTEN: ":8080"}
    x-berth: {health: {http: /healthz}}
`)
	var wg sync.WaitGroup
	runs := make([]runStartedBody, 3)
	codes := make([]int, 3)
	for i := range runs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			codes[i], runs[i] = hs.deploy(t, apps, fmt.Sprintf("race%d", i), body)
		}(i)
	}
	wg.Wait()
	for i, r := range runs {
		require.Equal(t, http.StatusAccepted, codes[i])
		run := hs.waitRun(t, r.RunID)
		require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	}
	pas := hs.portsOfTenant(t, tenant)
	require.Len(t, pas, 3*4*2)
	seen := map[string]string{}
	for _, pa := range pas {
		key := fmt.Sprintf("%d:%d", pa.HostID, pa.Port)
		require.Empty(t, seen[key], "port %s held by %s and %s", key, seen[key], pa.InstanceName)
		seen[key] = pa.InstanceName
	}
	// The engines agree: every published port is distinct per host.
	for _, th := range hs.hosts {
		list, err := th.Engine.ContainerList(context.Background(), client.ContainerListOptions{
			Filters: make(client.Filters).Add("label", "berth.tenant="+tenant)})
		require.NoError(t, err)
		ports := map[uint16]bool{}
		for _, c := range list.Items {
			for _, p := range c.Ports {
				require.False(t, ports[p.PublicPort], "engine %s publishes %d twice", th.Name, p.PublicPort)
				ports[p.PublicPort] = true
			}
		}
	}
}

// The same deploy request sent twice, even at once, starts one run.
func TestSameDeployTwiceStartsOneRun(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "twice")
	body := readCompose(t, "single.yaml")
	var wg sync.WaitGroup
	out := make([]runStartedBody, 2)
	codes := make([]int, 2)
	for i := range out {
		wg.Add(1)
		go func(i int) { defer wg.Done(); codes[i], out[i] = hs.deploy(t, apps, "once", body) }(i)
	}
	wg.Wait()
	require.ElementsMatch(t, []int{http.StatusAccepted, http.StatusOK}, codes)
	require.Equal(t, out[0].RunID, out[1].RunID)
	run := hs.waitRun(t, out[0].RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	// After it finished, the same request is still the same run.
	code, again := hs.deploy(t, apps, "once", body)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, out[0].RunID, again.RunID)
	require.True(t, again.Existing)
	// A different compose for a live application is a conflict, not a silent change.
	code, _ = hs.deploy(t, apps, "once", readCompose(t, "fixed-port.yaml"))
	require.Equal(t, http.StatusConflict, code)
	var runs struct {
		Runs  []store.Run
		Total int
	}
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/runs?kind=deploy&tenant="+hs.tenant+"-twice", nil, &runs))
	require.Equal(t, 1, runs.Total)
}

// Hostile compose files get 400 naming the problem, and no host is touched.
func TestHostileComposeRefused(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "evil")
	tenant := hs.tenant + "-evil"
	files, err := filepath.Glob(filepath.Join(repoRoot(), "testdata", "compose", "hostile", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for i, f := range files {
		body, err := os.ReadFile(f)
		require.NoError(t, err)
		var out struct {
			Error struct{ Code, Message string }
		}
		code := hs.api(t, "POST", fmt.Sprintf("%s?name=evil%d", apps, i), "application/yaml", body, &out)
		require.Equal(t, http.StatusBadRequest, code, "%s: %+v", filepath.Base(f), out)
		require.NotEmpty(t, out.Error.Message, filepath.Base(f))
	}
	require.Equal(t, 0, countAll(hs.containersOf(t, tenant)))
	var runs struct{ Total int }
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/runs?tenant="+tenant, nil, &runs))
	require.Equal(t, 0, runs.Total, "no run was started")

	// A fixed host port is not honoured: the platform allocates and says so.
	var res struct {
		RunID uint     `json:"runId"`
		Notes []string `json:"notes"`
	}
	code := hs.api(t, "POST", apps+"?name=fixed", "application/yaml", readCompose(t, "fixed-port.yaml"), &res)
	require.Equal(t, http.StatusAccepted, code)
	require.NotEmpty(t, res.Notes)
	require.Contains(t, strings.Join(res.Notes, " "), "ignored")
	run := hs.waitRun(t, res.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	ab := hs.app(t, apps, "fixed")
	p := ab.Services[0].Instances[0].Ports[0]
	require.NotEqual(t, 80, p.HostPort)
	require.GreaterOrEqual(t, p.HostPort, hs.portMin)
}

// Requests without the token, for unknown things, or with bad bodies get
// clear 4xx answers in the one error shape.
func TestAPIRefusals(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "bad")
	req, _ := http.NewRequest("GET", hs.apiURL+"/api/v1/runs", nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	var e struct {
		Error struct{ Code, Message string }
	}
	require.Equal(t, http.StatusNotFound, hs.apiJSON(t, "GET", "/api/v1/runs/999999", nil, &e))
	require.Equal(t, "not_found", e.Error.Code)
	require.Equal(t, http.StatusNotFound, hs.apiJSON(t, "GET", "/api/v1/tenants/nope/environments/dev/applications/x", nil, nil))
	require.Equal(t, http.StatusBadRequest, hs.apiJSON(t, "GET", "/api/v1/runs?sort=bogus", nil, &e))
	require.Equal(t, http.StatusBadRequest, hs.api(t, "POST", apps+"?name=Bad_Name", "application/yaml", readCompose(t, "single.yaml"), nil))
	big := make([]byte, 2<<20)
	require.Equal(t, http.StatusRequestEntityTooLarge, hs.api(t, "POST", apps+"?name=big", "application/yaml", big, nil))
	require.Equal(t, http.StatusBadRequest, hs.apiJSON(t, "POST", "/api/v1/hosts", map[string]string{
		"name": "remote", "endpoint": "tcp://10.1.2.3:2375", "ip": "10.1.2.3"}, &e))
	require.Contains(t, e.Error.Message, "TLS")
	require.Equal(t, http.StatusConflict, hs.apiJSON(t, "POST", "/api/v1/tenants", map[string]string{"name": hs.tenant + "-bad"}, nil))

	var audit struct{ Events []store.AuditEvent }
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/audit", nil, &audit))
	require.NotEmpty(t, audit.Events)
	found := false
	for _, ev := range audit.Events {
		if ev.Action == "POST /api/v1/tenants" && ev.Outcome == "409" {
			found = true
		}
	}
	require.True(t, found, "the refused tenant creation is audited")
}

// A host whose engine does not answer is marked down with the reason, and
// an environment with no ready host refuses deploys up front.
func TestUnreachableHostIsDown(t *testing.T) {
	hs := needHarness(t)
	name := hs.tenant + "-gone"
	var out struct {
		Run runStartedBody `json:"run"`
	}
	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "POST", "/api/v1/hosts", map[string]string{"name": name, "region": "local",
		"endpoint": "unix:///run/berth-nothing-here.sock", "ip": "127.0.0.9"}, &out))
	run := hs.waitRun(t, out.Run.RunID)
	require.Equal(t, berth.RunFailed, run.Status)
	require.Contains(t, run.Error, "does not answer")
	var host store.Host
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/hosts/"+name, nil, &host))
	require.Equal(t, berth.HostDown, host.State)
	require.Contains(t, host.Reason, "does not answer")

	apps := hs.newEnvOn(t, hs.tenant+"-down", name)
	var e struct {
		Error struct{ Code, Message string }
	}
	code := hs.api(t, "POST", apps+"?name=x", "application/yaml", readCompose(t, "single.yaml"), &e)
	require.Equal(t, http.StatusConflict, code)
	require.Contains(t, e.Error.Message, "no ready authorised host")
}

// Cancelling a deploy that waits for health removes what it made.
func TestCancelDeployUndoes(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "cancel")
	tenant := hs.tenant + "-cancel"
	body := webCompose("web", 2, `READY_AFTER: "10m"`)
	code, started := hs.deploy(t, apps, "stuck", body)
	require.Equal(t, http.StatusAccepted, code)
	require.Eventually(t, func() bool { return countAll(hs.containersOf(t, tenant)) == 2 }, time.Minute, 20*time.Millisecond)
	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/runs/%d/cancel", started.RunID), nil, nil))
	run := hs.waitRun(t, started.RunID)
	require.Equal(t, berth.RunCancelled, run.Status)
	require.Equal(t, 0, countAll(hs.containersOf(t, tenant)))
	require.Empty(t, hs.portsOfTenant(t, tenant))
	// Cancelling a finished run is a conflict, not a silent success.
	require.Equal(t, http.StatusConflict, hs.apiJSON(t, "POST", fmt.Sprintf("/api/v1/runs/%d/cancel", started.RunID), nil, nil))
}
