package e2e

import (
	"context"
	"net/http"
	"testing"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/lb"
	"github.com/berth-dev/berth/store"
)

// instanceAction posts restart, stop or start for an instance as the
// platform admin and waits for the run when one starts.
func (hs *harness) instanceAction(t testing.TB, name, action string, body any) (int, store.Run) {
	t.Helper()
	var out runStartedBody
	code := hs.apiJSON(t, "POST", "/api/v1/instances/"+name+"/"+action, body, &out)
	if code != http.StatusAccepted {
		return code, store.Run{}
	}
	return code, hs.waitRun(t, out.RunID)
}

// containerState reads an instance's container from its host's engine.
func (hs *harness) containerState(t testing.TB, in store.InstanceView) (running bool, startedAt string) {
	t.Helper()
	insp, err := hs.engineOf(t, in.Host).ContainerInspect(context.Background(), in.Name, client.ContainerInspectOptions{})
	require.NoError(t, err)
	return insp.Container.State.Running, insp.Container.State.StartedAt
}

func liveState(pb poolBody, name string) string {
	for _, s := range pb.Live {
		if s.Name == name {
			return s.State
		}
	}
	return ""
}

func instanceNamed(t testing.TB, svc store.ServiceView, name string) store.InstanceView {
	t.Helper()
	for _, in := range svc.Instances {
		if in.Name == name {
			return in
		}
	}
	require.Failf(t, "no such instance", "%s is not among the service's instances", name)
	return store.InstanceView{}
}

// Restart one of four instances, then stop and start another, while a load
// generator runs through HAProxy: no request fails; the restarted container
// really started again; the stopped one is recorded stopped, has no running
// container and is in maintenance in HAProxy, and serves again once started.
func TestInstanceRestartStopStartUnderLoad(t *testing.T) {
	hs := needHarness(t)
	apps, svc := hs.deployForRelease(t, "act")
	require.Len(t, svc.Instances, 4)
	pb := hs.pool(t, svc.ID)
	front := "http://" + pb.Backend.ListenAddr + "/version"
	first, second := svc.Instances[1], svc.Instances[2]
	_, startedBefore := hs.containerState(t, first)

	l := startLoad(t, front)
	code, run := hs.instanceAction(t, first.Name, "restart", nil)
	require.Equal(t, http.StatusAccepted, code)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	require.Equal(t, berth.KindRestart, run.Kind)
	require.Equal(t, map[string]berth.StepState{"drain": berth.StepDone, "restart": berth.StepDone, "ready": berth.StepDone}, stepStates(run))
	running, startedAfter := hs.containerState(t, first)
	require.True(t, running)
	require.NotEqual(t, startedBefore, startedAfter, "the container was restarted")

	code, run = hs.instanceAction(t, second.Name, "stop", nil)
	require.Equal(t, http.StatusAccepted, code)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	require.Equal(t, map[string]berth.StepState{"drain": berth.StepDone, "stop": berth.StepDone}, stepStates(run))
	running, _ = hs.containerState(t, second)
	require.False(t, running, "a stopped instance's container is kept, not running")
	svc = hs.app(t, apps, "shop").Services[0]
	require.Equal(t, berth.StateStopped, instanceNamed(t, svc, second.Name).State)
	require.Equal(t, lb.StateMaint, liveState(hs.pool(t, svc.ID), second.Name))

	// A file release would restart the stopped instance: refused, nothing recorded.
	code, body := hs.uploadRelease(t, svc.ID, "good.tar.gz", map[string]string{"version": "9.9.9", "sha256": fileSHA(t, "good.tar.gz")})
	require.Equal(t, http.StatusConflict, code, "%s", body)
	require.Contains(t, string(body), "stopped")
	require.Len(t, hs.releases(t, svc.ID).Releases, 1)

	// What does not fit the instance's state is refused, and nothing starts.
	code, _ = hs.instanceAction(t, second.Name, "stop", nil)
	require.Equal(t, http.StatusConflict, code, "stopping a stopped instance")
	code, _ = hs.instanceAction(t, first.Name, "start", nil)
	require.Equal(t, http.StatusConflict, code, "starting a running instance")
	code, _ = hs.instanceAction(t, hs.tenant+"-nope-web-1", "restart", nil)
	require.Equal(t, http.StatusNotFound, code)

	code, run = hs.instanceAction(t, second.Name, "start", nil)
	require.Equal(t, http.StatusAccepted, code)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	require.Equal(t, map[string]berth.StepState{"start": berth.StepDone, "ready": berth.StepDone}, stepStates(run))
	ok, failed, last := l.finish()
	t.Logf("load through HAProxy during restart, stop and start: %d requests, %d failed", ok+failed, failed)
	require.Zero(t, failed, "last failure: %s", last)
	require.Greater(t, ok, int64(50))

	running, _ = hs.containerState(t, second)
	require.True(t, running)
	svc = hs.app(t, apps, "shop").Services[0]
	for _, in := range svc.Instances {
		require.Equal(t, berth.StateRunning, in.State, in.Name)
	}
	requirePoolMatches(t, hs.pool(t, svc.ID), svc.Instances)
	require.Equal(t, []string{"v1", "v1", "v1", "v1"}, hs.versions(t, apps))
	hs.recordHistory(t, run.WorkflowID, run.TemporalRunID, "instance-action-start")
}

// A service's last running instance is not taken out of rotation by
// accident: without force the API refuses (409), a developer may not force
// it (403), and a release manager may.
func TestLastInstanceNeedsAReleaseManager(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "last")
	tenant := hs.tenant + "-last"
	hs.deployOK(t, apps, "shop", webCompose("web", 1, ""))
	only := hs.app(t, apps, "shop").Services[0].Instances[0]

	code, _ := hs.instanceAction(t, only.Name, "stop", nil)
	require.Equal(t, http.StatusConflict, code)
	dev := hs.newPerson(t, tenant+"-dev", tenant, berth.RoleDeveloper)
	code, msg := dev.post(t, "/api/v1/instances/"+only.Name+"/restart", map[string]bool{"force": true}, nil)
	require.Equal(t, http.StatusForbidden, code, msg)
	require.Contains(t, msg, "release-manager")
	running, _ := hs.containerState(t, only)
	require.True(t, running, "a refused action changes nothing")

	rm := hs.newPerson(t, tenant+"-rm", tenant, berth.RoleReleaseManager)
	var out runStartedBody
	code, msg = rm.post(t, "/api/v1/instances/"+only.Name+"/restart", map[string]bool{"force": true}, &out)
	require.Equal(t, http.StatusAccepted, code, msg)
	run := hs.waitRun(t, out.RunID)
	require.Equal(t, berth.RunSucceeded, run.Status, run.Error)
	require.Equal(t, tenant+"-rm", run.StartedBy)
	hs.recordHistory(t, run.WorkflowID, run.TemporalRunID, "instance-action-restart")
}
