package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/workflows"
)

// drain drains a host and waits for the run.
func (hs *harness) drain(t testing.TB, host string) store.Run {
	t.Helper()
	var started runStartedBody
	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "POST", "/api/v1/hosts/"+host+"/drain", nil, &started))
	return hs.waitRun(t, started.RunID)
}

// moves lists a tenant's evacuate runs, newest first.
func (hs *harness) moves(t testing.TB, tenant string) []store.Run {
	t.Helper()
	var runs struct{ Runs []store.Run }
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/runs?kind=evacuate&tenant="+tenant, nil, &runs))
	return runs.Runs
}

// drainableHost registers a second host record on the second test engine,
// so a drain moves this test's instances only (the shared test hosts carry
// every other test's applications). Containers carry the record that
// placed them (berth.host), so the reconciler never takes the other
// record's containers for orphans; the record ends drained all the same.
func (hs *harness) drainableHost(t *testing.T) store.Host {
	t.Helper()
	ctx := context.Background()
	hs.registerHosts(t)
	th := hs.hosts[len(hs.hosts)-1]
	name := "drain-" + hs.tenant
	var out struct {
		Run runStartedBody `json:"run"`
	}
	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "POST", "/api/v1/hosts", map[string]string{"name": name, "region": "local",
		"endpoint": th.Endpoint, "ip": th.IP, "volumeRoot": "/var/lib/berth-e2e/volumes"}, &out))
	require.Equal(t, berth.RunSucceeded, hs.waitRun(t, out.Run.RunID).Status)
	h, err := hs.store.HostByName(ctx, name)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, hs.store.SetHostState(ctx, h.ID, berth.HostDrained))
	})
	return *h
}

// Draining a host under load: every instance on it moves to the other
// host, one at a time, started there before the old one is drained and
// removed; no request through HAProxy fails; the host ends drained with
// nothing on it, takes no new instance, and undrain makes it ready again.
func TestDrainHostUnderLoad(t *testing.T) {
	hs := needHarness(t)
	h := hs.drainableHost(t)
	tenant := hs.tenant + "-drain"
	apps := hs.newEnvOn(t, tenant, hs.hosts[0].Name, h.Name)
	hs.deployOK(t, apps, "shop", webCompose("web", 4, ""))
	svc := hs.app(t, apps, "shop").Services[0]
	onHost := func() int {
		n := 0
		for _, in := range hs.app(t, apps, "shop").Services[0].Instances {
			if in.Host == h.Name {
				n++
			}
		}
		return n
	}
	require.Positive(t, onHost(), "the deploy placed instances on the host to drain")

	l := startLoad(t, "http://"+hs.pool(t, svc.ID).Backend.ListenAddr+"/version")
	run := hs.drain(t, h.Name)
	ok, failed, last := l.finish()
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	t.Logf("load through HAProxy during the drain: %d requests, %d failed", ok+failed, failed)
	require.Zero(t, failed, "last failure: %s", last)
	require.Greater(t, ok, int64(50))

	require.Zero(t, onHost(), "nothing is left on the drained host")
	svc = hs.app(t, apps, "shop").Services[0]
	require.Len(t, svc.Instances, 4, "capacity is back to the replica count")
	requirePoolMatches(t, hs.pool(t, svc.ID), svc.Instances)
	require.Equal(t, []string{"v1", "v1", "v1", "v1"}, hs.versions(t, apps), "a move keeps the version")
	var host store.Host
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/hosts/"+h.Name, nil, &host))
	require.Equal(t, berth.HostDrained, host.State)
	moves := hs.moves(t, tenant)
	require.Len(t, moves, 1, "one move per service, as a run of its own")
	require.Equal(t, berth.RunSucceeded, moves[0].Status)
	require.Equal(t, workflows.EvacuateID(h.Name, tenant+"/dev/shop/web"), moves[0].WorkflowID)
	rb := hs.releases(t, svc.ID)
	require.Len(t, rb.Releases, 1, "a move is not a release")
	hs.recordHistory(t, run.WorkflowID, run.TemporalRunID, "drain-host")

	// A drained host takes nothing new, and says how to bring it back.
	hs.scale(t, svc.ID, 5)
	require.Zero(t, onHost())
	var e struct{ Error struct{ Message string } }
	require.Equal(t, http.StatusConflict, hs.apiJSON(t, "POST", "/api/v1/hosts/"+h.Name+"/check", nil, &e))
	require.Contains(t, e.Error.Message, "undrain")
	// The hosts page offers a drained host Undrain only; it opens its run.
	root := hs.newPerson(t, tenant+"-root", "", berth.RoleAdmin)
	ctx := window(t, newBrowser(t))
	hs.signIn(t, ctx, root, "/admin/hosts")
	row := fmt.Sprintf("tr#host-%s", h.Name)
	do(t, ctx, chromedp.WaitVisible(chromedp.CSS(row+` form[action$="/undrain"] button`)))
	require.Zero(t, eval[int](t, ctx, `document.querySelectorAll('`+row+` form[action$="/drain"]').length`))
	do(t, ctx, chromedp.Click(chromedp.CSS(row+` form[action$="/undrain"] button`)))
	require.Equal(t, berth.KindProvisionHost, hs.formOpenedRun(t, ctx, "undrain").Kind)
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/hosts/"+h.Name, nil, &host))
	require.Equal(t, berth.HostReady, host.State)
	require.Equal(t, http.StatusConflict, hs.apiJSON(t, "POST", "/api/v1/hosts/"+h.Name+"/undrain", nil, nil), "a ready host has nothing to undrain")

	// Undrained, it takes instances again; a second drain's worker is
	// SIGKILLed once its move is under way (HAProxy runs in the worker, so
	// no load here): the drain and its move go on from their histories,
	// and nothing is started twice.
	hs.scale(t, svc.ID, 7)
	require.Positive(t, onHost())
	var started runStartedBody
	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "POST", "/api/v1/hosts/"+h.Name+"/drain", nil, &started))
	require.Eventually(t, func() bool {
		ms := hs.moves(t, tenant)
		return len(ms) == 2 && ms[0].Status == berth.RunRunning
	}, time.Minute, 100*time.Millisecond)
	hs.restartWorkerHard(t)
	run = hs.waitRun(t, started.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	require.Zero(t, onHost())
	svc = hs.app(t, apps, "shop").Services[0]
	require.Len(t, svc.Instances, 7)
	require.Equal(t, 7, countAll(hs.containersOf(t, tenant)), "no instance was started twice")
	requirePoolMatches(t, hs.pool(t, svc.ID), svc.Instances)
	hs.deleteOK(t, apps, "shop")
}
