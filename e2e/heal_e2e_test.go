package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/lb"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/workflows"
)

// healRuns lists a tenant's heal runs, newest first.
func (hs *harness) healRuns(t testing.TB, tenant string) []store.Run {
	t.Helper()
	var runs struct{ Runs []store.Run }
	require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/runs?kind=heal&tenant="+tenant, nil, &runs))
	return runs.Runs
}

// killAndWaitHealed SIGKILLs the instance's container and waits until a
// heal run started it again, it runs, and HAProxy serves it; it returns
// how long that took.
func (hs *harness) killAndWaitHealed(t *testing.T, tenant string, svc store.ServiceView, in store.InstanceView) time.Duration {
	t.Helper()
	ctx := context.Background()
	runsBefore := len(hs.healRuns(t, tenant))
	eng := hs.engineOf(t, in.Host)
	_, err := eng.ContainerKill(ctx, in.Name, client.ContainerKillOptions{Signal: "KILL"})
	require.NoError(t, err)
	killed := time.Now()
	require.Eventually(t, func() bool {
		runs := hs.healRuns(t, tenant)
		if len(runs) <= runsBefore || runs[0].Status != berth.RunSucceeded {
			return false
		}
		running, _ := hs.containerState(t, in)
		return running && liveState(hs.pool(t, svc.ID), in.Name) == lb.StateReady
	}, 45*time.Second, 500*time.Millisecond, "a killed instance serves again within 45 s, without a person acting")
	return time.Since(killed)
}

// A container killed behind berth's back is started again by self-healing
// (a run of its own, under the application's lock), and serves again
// through HAProxy within 45 s; no instance is added. A container removed
// behind berth's back is replaced. Killed again and again, an instance is
// healed berth.MaxHeals times within berth.HealWindow and then left for a
// person, which is said once in the audit trail.
func TestSelfHealingStartsAKilledInstance(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "heal")
	tenant := hs.tenant + "-heal"
	hs.deployOK(t, apps, "shop", webCompose("web", 2, ""))
	svc := hs.app(t, apps, "shop").Services[0]
	victim := svc.Instances[0]

	took := hs.killAndWaitHealed(t, tenant, svc, victim)
	t.Logf("killed instance serving again after %s", took.Round(100*time.Millisecond))
	runs := hs.healRuns(t, tenant)
	require.Len(t, runs, 1)
	run := hs.waitRun(t, runs[0].ID)
	require.Equal(t, store.HealActor, run.StartedBy)
	require.Equal(t, workflows.HealInstanceID(victim.Name), run.WorkflowID)
	require.Equal(t, map[string]berth.StepState{"start": berth.StepDone, "ready": berth.StepDone}, stepStates(run))
	svc = hs.app(t, apps, "shop").Services[0]
	require.Len(t, svc.Instances, 2, "the instance is started again, not duplicated")
	require.Equal(t, 2, countAll(hs.containersOf(t, tenant)))
	requirePoolMatches(t, hs.pool(t, svc.ID), svc.Instances)
	hs.recordHistory(t, run.WorkflowID, run.TemporalRunID, "heal-instance")

	// A container removed behind berth's back: a heal run replaces the
	// instance with a new one of the same version, behind HAProxy, and the
	// old record goes.
	gone := svc.Instances[1]
	_, err := hs.engineOf(t, gone.Host).ContainerRemove(context.Background(), gone.Name, client.ContainerRemoveOptions{Force: true})
	require.NoError(t, err)
	removed := time.Now()
	require.Eventually(t, func() bool {
		runs := hs.healRuns(t, tenant)
		if len(runs) != 2 || runs[0].Status != berth.RunSucceeded {
			return false
		}
		now := hs.app(t, apps, "shop").Services[0]
		return len(now.Instances) == 2 && now.Instances[1].Name != gone.Name
	}, 90*time.Second, 500*time.Millisecond, "a removed instance is replaced without a person acting")
	t.Logf("removed instance replaced after %s", time.Since(removed).Round(100*time.Millisecond))
	svc = hs.app(t, apps, "shop").Services[0]
	require.Equal(t, victim.Name, svc.Instances[0].Name)
	require.Equal(t, 2, countAll(hs.containersOf(t, tenant)))
	requirePoolMatches(t, hs.pool(t, svc.ID), svc.Instances)
	require.Len(t, hs.releases(t, svc.ID).Releases, 1, "a replacement is not a release")

	// A crash loop: healed up to the bound, then left exited and said once.
	for i := 1; i < berth.MaxHeals; i++ {
		hs.killAndWaitHealed(t, tenant, svc, victim)
	}
	_, err = hs.engineOf(t, victim.Host).ContainerKill(context.Background(), victim.Name, client.ContainerKillOptions{Signal: "KILL"})
	require.NoError(t, err)
	target := victim.Host + "/" + victim.Name
	gaveUp := func() int {
		var audit struct {
			Events []struct{ Actor, Target, Outcome string }
		}
		require.Equal(t, http.StatusOK, hs.apiJSON(t, "GET", "/api/v1/audit?actor=reconciler&limit=500", nil, &audit))
		n := 0
		for _, e := range audit.Events {
			if e.Target == target && e.Outcome == string(berth.FindingHealGaveUp) {
				n++
			}
		}
		return n
	}
	require.Eventually(t, func() bool { return gaveUp() == 1 }, 45*time.Second, 500*time.Millisecond, "giving up is said")
	// Several more passes: no fourth heal, and the give-up is not said again.
	passes := hs.healPasses(t)
	require.Eventually(t, func() bool { return hs.healPasses(t) >= passes+2 }, 30*time.Second, 500*time.Millisecond)
	require.Len(t, hs.healRuns(t, tenant), berth.MaxHeals+1, "the replacement and the victim's heals, no more")
	require.Equal(t, 1, gaveUp())
	running, _ := hs.containerState(t, victim)
	require.False(t, running, "a crash-looping instance is left for a person")
	hs.deleteOK(t, apps, "shop")
}

// healPasses counts the self-healing passes the schedule has run.
func (hs *harness) healPasses(t testing.TB) int {
	t.Helper()
	ctx := context.Background()
	desc, err := hs.tc.ScheduleClient().GetHandle(ctx, workflows.HealScheduleID).Describe(ctx)
	require.NoError(t, err, "self-healing runs on a Temporal Schedule")
	return int(desc.Info.NumActions)
}

// A container that keeps running but fails the health check its compose
// file gave Docker (a wedged process) is restarted by a heal run and serves
// again through HAProxy, without a person acting; its healthy sibling is
// left alone.
func TestSelfHealingRestartsAnUnhealthyInstance(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "wedged")
	tenant := hs.tenant + "-wedged"
	hs.deployOK(t, apps, "shop", []byte(`services:
  web:
    image: `+sampleImage+`
    deploy: {replicas: 2}
    ports: ["8080"]
    environment: {LISTEN: ":8080"}
    x-berth: {health: {http: /healthz}}
    healthcheck:
      test: ["CMD", "/sampleapp", "-probe", "http://127.0.0.1:8080/healthz"]
      interval: 1s
      timeout: 1s
      retries: 2
`))
	svc := hs.app(t, apps, "shop").Services[0]
	sick, well := svc.Instances[0], svc.Instances[1]
	ctx := context.Background()
	started := func(in store.InstanceView) string {
		insp, err := hs.engineOf(t, in.Host).ContainerInspect(ctx, in.Name, client.ContainerInspectOptions{})
		require.NoError(t, err)
		return insp.Container.State.StartedAt
	}
	sickStart, wellStart := started(sick), started(well)
	eng := hs.engineOf(t, sick.Host)
	ex, err := eng.ExecCreate(ctx, sick.Name, client.ExecCreateOptions{Cmd: []string{"/sampleapp", "-probe", "http://127.0.0.1:8080/sick"}})
	require.NoError(t, err)
	_, err = eng.ExecStart(ctx, ex.ID, client.ExecStartOptions{})
	require.NoError(t, err)
	made := time.Now()
	require.Eventually(t, func() bool {
		runs := hs.healRuns(t, tenant)
		return len(runs) == 1 && runs[0].Status == berth.RunSucceeded && started(sick) != sickStart &&
			liveState(hs.pool(t, svc.ID), sick.Name) == lb.StateReady
	}, 60*time.Second, 500*time.Millisecond, "the unhealthy instance is restarted and serves again")
	t.Logf("unhealthy instance restarted and serving after %s", time.Since(made).Round(100*time.Millisecond))
	run := hs.waitRun(t, hs.healRuns(t, tenant)[0].ID)
	require.Equal(t, map[string]berth.StepState{"restart": berth.StepDone, "ready": berth.StepDone}, stepStates(run))
	require.Equal(t, wellStart, started(well), "the healthy one is left alone")
	require.Len(t, hs.app(t, apps, "shop").Services[0].Instances, 2)
	require.Equal(t, 2, countAll(hs.containersOf(t, tenant)))
	hs.deleteOK(t, apps, "shop")
}

// A running service with fewer live instances than its replicas (here its
// recorded replicas are raised behind berth's back, as a scale-out that
// died after recording them would leave it) is scaled back out by a heal
// run through the normal chain, and HAProxy serves every instance.
func TestSelfHealingTopsUpAShortService(t *testing.T) {
	hs := needHarness(t)
	apps := hs.newEnv(t, "short")
	tenant := hs.tenant + "-short"
	hs.deployOK(t, apps, "shop", webCompose("web", 2, ""))
	svc := hs.app(t, apps, "shop").Services[0]
	require.NoError(t, hs.store.DB().Model(&store.Service{}).Where("id = ?", svc.ID).Update("replicas", 3).Error)
	short := time.Now()
	require.Eventually(t, func() bool {
		runs := hs.healRuns(t, tenant)
		return len(runs) == 1 && runs[0].Status == berth.RunSucceeded && len(hs.app(t, apps, "shop").Services[0].Instances) == 3
	}, 60*time.Second, 500*time.Millisecond, "the service is back at its replicas without a person acting")
	t.Logf("short service topped up after %s", time.Since(short).Round(100*time.Millisecond))
	run := hs.waitRun(t, hs.healRuns(t, tenant)[0].ID)
	require.Equal(t, store.HealActor, run.StartedBy)
	require.Equal(t, workflows.TopUpID(svc.ID), run.WorkflowID)
	svc = hs.app(t, apps, "shop").Services[0]
	require.Equal(t, 3, countAll(hs.containersOf(t, tenant)))
	require.Eventually(t, func() bool {
		pb := hs.pool(t, svc.ID)
		for _, s := range pb.Live {
			if s.State != lb.StateReady {
				return false
			}
		}
		return len(pb.Live) == 3
	}, 30*time.Second, 500*time.Millisecond)
	requirePoolMatches(t, hs.pool(t, svc.ID), svc.Instances)
	hs.deleteOK(t, apps, "shop")
}
