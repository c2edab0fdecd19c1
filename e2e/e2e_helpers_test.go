package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

var hostsOnce sync.Once

// registerHosts registers every test host through the API once and waits
// until ProvisionHost has marked it ready.
func (hs *harness) registerHosts(t testing.TB) {
	t.Helper()
	hostsOnce.Do(func() {
		for _, th := range hs.hosts {
			run := hs.registerHost(t, th.Name, "local", th.Endpoint, th.IP)
			hs.recordHistory(t, run.WorkflowID, run.TemporalRunID, "provision-host")
		}
	})
	var hosts struct{ Hosts []store.Host }
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/hosts", nil, &hosts))
	ready := 0
	for _, host := range hosts.Hosts {
		if strings.HasPrefix(host.Name, hs.tenant) && host.State == berth.HostReady {
			ready++
		}
	}
	require.Equal(t, len(hs.hosts), ready, "every test host is ready")
}

// registerHost registers one host through the API and waits until
// ProvisionHost has marked it ready.
func (hs *harness) registerHost(t testing.TB, name, region, endpoint, ip string) store.Run {
	t.Helper()
	var out struct {
		Run runStartedBody `json:"run"`
	}
	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "POST", "/api/v1/hosts", map[string]string{"name": name, "region": region,
		"endpoint": endpoint, "ip": ip, "volumeRoot": "/var/lib/berth-e2e/volumes"}, &out))
	run := hs.waitRun(t, out.Run.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, "provision %s: %s", name, run.Error)
	return run
}

type runStartedBody struct {
	RunID    uint   `json:"runId"`
	URL      string `json:"url"`
	Existing bool   `json:"existing"`
}

// newEnv makes a tenant and an environment authorised on every test host.
func (hs *harness) newEnv(t testing.TB, short string) string {
	t.Helper()
	return hs.newEnvOn(t, hs.tenant+"-"+short, hs.hostNames()...)
}

// newEnvOn makes a tenant with environment dev authorised on the named hosts.
func (hs *harness) newEnvOn(t testing.TB, tenant string, hosts ...string) string {
	t.Helper()
	return hs.newEnvWith(t, tenant, map[string]any{"name": "dev"}, hosts...)
}

// newEnvWith makes a tenant with one environment, created with the given
// request body (name and policy), authorised on the named hosts (every test
// host when none is named). It returns the environment's applications path.
func (hs *harness) newEnvWith(t testing.TB, tenant string, env map[string]any, hosts ...string) string {
	t.Helper()
	hs.registerHosts(t)
	if len(hosts) == 0 {
		hosts = hs.hostNames()
	}
	name, _ := env["name"].(string)
	require.Equal(t, http.StatusCreated, hs.apiJSON(t, "POST", "/api/v1/tenants", map[string]string{"name": tenant}, nil))
	require.Equal(t, http.StatusCreated, hs.apiJSON(t, "POST", "/api/v1/tenants/"+tenant+"/environments", env, nil))
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "POST", "/api/v1/tenants/"+tenant+"/environments/"+name+"/hosts", map[string][]string{"hosts": hosts}, nil))
	return "/api/v1/tenants/" + tenant + "/environments/" + name + "/applications"
}

func (hs *harness) hostNames() []string {
	names := make([]string, 0, len(hs.hosts))
	for _, th := range hs.hosts {
		names = append(names, th.Name)
	}
	return names
}

// deployOK deploys a compose body and waits until its run succeeded.
func (hs *harness) deployOK(t testing.TB, apps, app string, body []byte) store.Run {
	t.Helper()
	code, started := hs.deploy(t, apps, app, body)
	require.Equal(t, http.StatusAccepted, code)
	run := hs.waitRun(t, started.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	return run
}

// deleteOK deletes an application and waits until its run succeeded.
func (hs *harness) deleteOK(t testing.TB, apps, app string) store.Run {
	t.Helper()
	var del runStartedBody
	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "DELETE", apps+"/"+app, nil, &del))
	run := hs.waitRun(t, del.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	return run
}

// webCompose is the sample app as one service with an HTTP health check;
// env holds extra environment entries in flow style, e.g. `READY_AFTER: "4s"`.
func webCompose(service string, replicas int, env string) []byte {
	if env != "" {
		env = ", " + env
	}
	return []byte(fmt.Sprintf(`services:
  %s:
    image: %s
    deploy: {replicas: %d}
    ports: ["8080"]
    environment: {LISTEN: ":8080"%s}
    x-berth: {health: {http: /healthz}}
`, service, sampleImage, replicas, env))
}

func readCompose(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(), "testdata", "compose", name))
	require.NoError(t, err)
	return b
}

// deploy posts a compose body and returns the HTTP status and the run.
func (hs *harness) deploy(t testing.TB, appsPath, app string, body []byte) (int, runStartedBody) {
	t.Helper()
	var out runStartedBody
	code := hs.api(t, "POST", appsPath+"?name="+app, "application/yaml", body, &out)
	return code, out
}

type runBody struct {
	Run store.Run `json:"run"`
}

// waitRun waits until a run is no longer pending or running.
func (hs *harness) waitRun(t testing.TB, id uint) store.Run {
	t.Helper()
	return hs.waitRunFor(t, id, 3*time.Minute)
}

// waitRunFor is waitRun with another limit, for runs queued behind many.
func (hs *harness) waitRunFor(t testing.TB, id uint, limit time.Duration) store.Run {
	t.Helper()
	var rb runBody
	require.Eventually(t, func() bool {
		rb = runBody{}
		if hs.apiJSON(t, "GET", fmt.Sprintf("/api/v1/runs/%d", id), nil, &rb) != http.StatusOK {
			return false
		}
		return rb.Run.Status != berth.RunPending && rb.Run.Status != berth.RunRunning
	}, limit, 10*time.Millisecond, "run %d did not finish", id)
	return rb.Run
}

// containersOf lists, on every test host, the containers of a tenant.
func (hs *harness) containersOf(t testing.TB, tenant string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, th := range hs.hosts {
		list, err := th.Engine.ContainerList(context.Background(), client.ContainerListOptions{All: true,
			Filters: make(client.Filters).Add("label", "berth.tenant="+tenant)})
		require.NoError(t, err)
		for _, c := range list.Items {
			out[th.Name] = append(out[th.Name], strings.TrimPrefix(c.Names[0], "/"))
		}
	}
	return out
}

func countAll(m map[string][]string) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}

type appBody struct {
	Application store.Application   `json:"application"`
	Services    []store.ServiceView `json:"services"`
}

func (hs *harness) app(t testing.TB, appsPath, app string) appBody {
	t.Helper()
	var ab appBody
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", appsPath+"/"+app, nil, &ab))
	return ab
}

func httpGet(t testing.TB, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// engineOf is the Docker engine of a test host.
func (hs *harness) engineOf(t testing.TB, host string) *client.Client {
	t.Helper()
	for _, th := range hs.hosts {
		if th.Name == host {
			return th.Engine
		}
	}
	require.FailNow(t, "no test host "+host)
	return nil
}

// stepStates maps a run's step names to their states.
func stepStates(run store.Run) map[string]berth.StepState {
	out := map[string]berth.StepState{}
	for _, s := range run.Steps {
		out[s.Name] = s.State
	}
	return out
}
