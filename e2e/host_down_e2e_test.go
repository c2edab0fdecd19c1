package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/lb"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/workflows"
)

// extraEngine starts deploy/local/dockerd.sh's engine name (h3..h9), a host
// of this test's alone, clears what an earlier run left on it and gives it
// the sample image. The engine is stopped when the test ends.
func (hs *harness) extraEngine(t *testing.T, name string) (endpoint string, eng *client.Client) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("starting and stopping a Docker engine needs root")
	}
	out, err := exec.Command(filepath.Join(hs.root, "deploy", "local", "dockerd.sh"), "up", name).Output()
	require.NoError(t, err, "dockerd.sh up %s", name)
	endpoint = strings.TrimSpace(string(out))
	t.Cleanup(func() { hs.dockerdScript(t, "down", name) })
	eng, err = client.New(client.WithHost(endpoint))
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, removeLeftovers(ctx, eng))
	app, err := sampleAppBinary(hs.root)
	require.NoError(t, err)
	require.NoError(t, buildSampleImage(ctx, eng, app, sampleImages[0].tag, sampleImages[0].env))
	return endpoint, eng
}

// hostNamed reads one host through the API.
func (hs *harness) hostNamed(t testing.TB, name string) store.Host {
	t.Helper()
	var h store.Host
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/hosts/"+name, nil, &h))
	return h
}

// hostRuns lists the runs of a kind on one host, newest first.
func (hs *harness) hostRuns(t testing.TB, kind berth.RunKind, host string) []store.Run {
	t.Helper()
	var runs struct{ Runs []store.Run }
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/runs?kind="+string(kind), nil, &runs))
	var out []store.Run
	for _, r := range runs.Runs {
		if r.Subject == "host/"+host {
			out = append(out, r)
		}
	}
	return out
}

// A host whose engine stops entirely is marked down by self-healing after
// three passes it did not answer. A recovery run replaces its instances on
// the environment's other host, behind HAProxy, within 90 s of the stop,
// without a person acting; HAProxy then serves only live instances. When
// the engine comes back, the containers of the lost instances are removed
// from it with the relays it kept, their records closed and ports freed,
// and a check marks the host ready: there are no duplicates.
func TestHostDownIsRecovered(t *testing.T) {
	hs := needHarness(t)
	hs.registerHosts(t)
	endpoint, eng := hs.extraEngine(t, "h3")
	h3 := "h3-" + hs.tenant
	var reg struct {
		Run runStartedBody `json:"run"`
	}
	require.Equal(t, http.StatusAccepted, hs.apiJSON(t, "POST", "/api/v1/hosts", map[string]string{"name": h3, "region": "local",
		"endpoint": endpoint, "ip": "10.230.0.3"}, &reg))
	require.Equal(t, berth.RunSucceeded, hs.waitRun(t, reg.Run.RunID).Status)
	hostRec, err := hs.store.HostByName(context.Background(), h3)
	require.NoError(t, err)
	t.Cleanup(func() {
		// Its engine stops with the test: drained, no pass looks at it again.
		require.NoError(t, hs.store.SetHostState(context.Background(), hostRec.ID, berth.HostDrained))
	})
	local := hs.hosts[0].Name
	tenant := hs.tenant + "-hostdown2"
	apps := hs.newEnvOn(t, tenant, local, h3)
	hs.deployOK(t, apps, "shop", webCompose("web", 4, ""))
	svc := hs.app(t, apps, "shop").Services[0]
	var onH3 []string
	for _, in := range svc.Instances {
		if in.Host == h3 {
			onH3 = append(onH3, in.Name)
		}
	}
	require.NotEmpty(t, onH3, "placement spreads the instances over both hosts")

	hs.dockerdScript(t, "down", "h3")
	stopped := time.Now()
	// The worker is SIGKILLed as soon as the recovery starts: it completes
	// all the same, with no instance doubled.
	require.Eventually(t, func() bool { return len(hs.hostRuns(t, berth.KindRecoverHost, h3)) > 0 }, 90*time.Second, 20*time.Millisecond,
		"self-healing starts a recovery of the stopped host")
	hs.restartWorkerHard(t)
	t.Logf("worker killed %s after the stop, recovery run %s", time.Since(stopped).Round(100*time.Millisecond),
		hs.hostRuns(t, berth.KindRecoverHost, h3)[0].Status)
	require.Eventually(t, func() bool {
		svc = hs.app(t, apps, "shop").Services[0]
		if len(svc.Instances) != 4 {
			return false
		}
		for _, in := range svc.Instances {
			if in.Host != local {
				return false
			}
		}
		pb := hs.pool(t, svc.ID)
		if len(pb.Live) != 4 {
			return false
		}
		for _, s := range pb.Live {
			if s.State != lb.StateReady {
				return false
			}
		}
		return true
	}, 90*time.Second, time.Second, "the instances of a stopped host serve from the other host within 90 s")
	t.Logf("%d instance(s) of the stopped host replaced and serving after %s", len(onH3), time.Since(stopped).Round(100*time.Millisecond))
	require.Equal(t, berth.HostDown, hs.hostNamed(t, h3).State)
	requirePoolMatches(t, hs.pool(t, svc.ID), svc.Instances)
	recoveries := hs.hostRuns(t, berth.KindRecoverHost, h3)
	require.NotEmpty(t, recoveries)
	run := hs.waitRun(t, recoveries[0].ID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	require.Equal(t, store.HealActor, run.StartedBy)
	require.Equal(t, workflows.RecoverHostID(h3), run.WorkflowID)
	hs.recordHistory(t, run.WorkflowID, run.TemporalRunID, "recover-host")
	var moves struct{ Runs []store.Run }
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/runs?kind=evacuate&tenant="+tenant, nil, &moves))
	require.Len(t, moves.Runs, 1, "one move: the application's one service")
	move := hs.waitRun(t, moves.Runs[0].ID)
	require.Equal(t, berth.RunSucceeded, move.Status, move.Error)
	require.Equal(t, store.HealActor, move.StartedBy)
	hs.recordHistory(t, move.WorkflowID, move.TemporalRunID, "recover-host-move")

	// The engine comes back with the old containers: they go, and a check
	// marks the host ready again.
	hs.dockerdScript(t, "up", "h3")
	require.Eventually(t, func() bool {
		if hs.hostNamed(t, h3).State != berth.HostReady {
			return false
		}
		list, err := eng.ContainerList(context.Background(), client.ContainerListOptions{All: true,
			Filters: make(client.Filters).Add("label", "berth.tenant="+tenant)})
		if err != nil || len(list.Items) != 0 {
			return false
		}
		relays, err := eng.ContainerList(context.Background(), client.ContainerListOptions{All: true,
			Filters: make(client.Filters).Add("label", activities.LabelMesh).Add("label", activities.LabelAppKey)})
		return err == nil && len(relays.Items) == 0
	}, 90*time.Second, time.Second, "the returned host's lost containers and relays are removed and it is ready again")
	checks := hs.hostRuns(t, berth.KindProvisionHost, h3)
	require.NotEmpty(t, checks)
	require.Equal(t, store.HealActor, checks[0].StartedBy)
	svc = hs.app(t, apps, "shop").Services[0]
	require.Len(t, svc.Instances, 4, "no duplicates once the host is back")
	require.Equal(t, 4, countAll(hs.containersOf(t, tenant)))
	requirePoolMatches(t, hs.pool(t, svc.ID), svc.Instances)
	var audit struct{ Events []store.AuditEvent }
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/audit?action=reconcile&sort=-at&limit=500", nil, &audit))
	lostRemoved := 0
	for _, ev := range audit.Events {
		for _, name := range onH3 {
			if ev.Target == h3+"/"+name && ev.Outcome == string(berth.FindingLostRemoved) {
				lostRemoved++
			}
		}
	}
	require.Equal(t, len(onH3), lostRemoved, "each lost instance's removal is in the audit trail: %v", onH3)
	hs.deleteOK(t, apps, "shop")
}
