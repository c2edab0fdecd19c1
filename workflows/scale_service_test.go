package workflows

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/compose"
	"github.com/berth-dev/berth/firewall"
	"github.com/berth-dev/berth/lb"
)

func apiInstance(ord int, h berth.HostRef, hostPort int) berth.PlannedInstance {
	name := fmt.Sprintf("acme-prod-shop-api-%d", ord)
	return berth.PlannedInstance{InstanceID: uint(20 + ord), Name: name, UID: "uid-" + name, Service: "api", Ordinal: ord, Host: h,
		Ports: []berth.PortMapping{{HostIP: h.IP, HostPort: hostPort, ContainerPort: 8080, Protocol: "tcp"}}}
}

// scaleOutInput takes api from 2 to 4 instances; the new ones land in both
// regions, so every per-region queue is checked.
func scaleOutInput() (ScaleServiceInput, berth.Plan) {
	svc := compose.ServiceSpec{Name: "api", Image: "reg.local/api:2", Replicas: 2,
		Ports:  []compose.PortSpec{{ContainerPort: 8080, Protocol: "tcp"}},
		Health: &compose.HealthSpec{HTTPPath: "/healthz"}}
	in := ScaleServiceInput{RunID: 21, ApplicationID: 3, EnvironmentID: 2, ServiceID: 5, Tenant: "acme", Env: "prod", App: "shop",
		Service: svc, From: 2, To: 4, PortMin: 20000, PortMax: 20100, HealthTimeout: time.Minute, DrainTimeout: 5 * time.Minute,
		LB: berth.LBSettings{Enabled: true, ListenIP: "10.9.0.1", PortMin: 30000, PortMax: 30100, Weight: 100, Firewall: "nftables"}}
	plan := berth.Plan{Instances: []berth.PlannedInstance{apiInstance(3, hostEU, 20003), apiInstance(4, hostUS, 20004)}}
	return in, plan
}

// scaleInInput takes api from 4 to 2: the two newest go.
func scaleInInput() ScaleServiceInput {
	in, plan := scaleOutInput()
	in.From, in.To = 4, 2
	in.Remove = []berth.PlannedInstance{plan.Instances[1], plan.Instances[0]}
	return in
}

func scaleStatus(t *testing.T, env *testsuite.TestWorkflowEnvironment) Status {
	t.Helper()
	v, err := env.QueryWorkflow(StatusQuery)
	require.NoError(t, err)
	var s Status
	require.NoError(t, v.Get(&s))
	return s
}

func TestScaleOutStartsExposesAndRecords(t *testing.T) {
	env, rec := newExposeEnv(t)
	in, plan := scaleOutInput()
	mockDeploy(env, plan, deployFaults{})
	xp := exposePlanFor(in.subject(), "api", in.LB.Weight, plan.Instances)
	mockExpose(env, exposeFaults{expose: xp})

	env.ExecuteWorkflow(ScaleService, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res ScaleServiceResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, ScaleServiceResult{Added: planNames(plan), Removed: []string{}}, res)

	// Plan: one request that adds To-From instances beside the live ones.
	plans := rec.callsOf("PlanDeploy")
	require.Len(t, plans, 1)
	require.Equal(t, berth.PlanRequest{RunID: 21, ApplicationID: 3, EnvironmentID: 2, NamePrefix: "acme-prod-shop", PortMin: 20000, PortMax: 20100,
		Services: []berth.ServiceRequest{{Name: "api", Image: "reg.local/api:2", Replicas: 2, Add: true,
			Ports: []berth.PortRequest{{ContainerPort: 8080, Protocol: "tcp"}}, Resources: berth.Resources{LogBytes: berth.DefaultLogBytes}}}}, plans[0].Arg)

	var pairs []string
	for _, s := range rec.of("EnsureImage") {
		pairs = append(pairs, s.Image.Host.Name+" "+s.Image.Image)
		require.Equal(t, RegionTaskQueue(s.Image.Host.Region), s.Queue)
	}
	require.ElementsMatch(t, []string{"h1 reg.local/api:2", "h2 reg.local/api:2"}, pairs)

	starts := rec.of("StartInstance")
	require.Len(t, starts, 2, "only the new instances start")
	queues := map[string]string{}
	for _, s := range starts {
		queues[s.Start.Instance.Name] = s.Queue
		require.Equal(t, in.Service, s.Start.Service)
		require.Equal(t, in.HealthTimeout, s.Start.HealthTimeout)
		require.Equal(t, map[string]string{"berth.tenant": "acme", "berth.env": "prod", "berth.app": "shop", "berth.run": "21"}, s.Start.Labels)
	}
	require.Equal(t, map[string]string{"acme-prod-shop-api-3": "berth-eu", "acme-prod-shop-api-4": "berth-us"}, queues)
	require.Equal(t, [][]string{planNames(plan)}, rec.recorded)

	exposes := rec.callsOf("PlanExpose")
	require.Len(t, exposes, 1)
	require.Equal(t, activities.ExposeInput{RunID: 21, ApplicationID: 3, Subject: "acme/prod/shop",
		Services:  []activities.ExposeService{{Name: "api", HealthPath: "/healthz"}},
		Instances: plan.Instances, LB: in.LB}, exposes[0].Arg)

	pools := rec.callsOf("EnsurePool")
	require.Len(t, pools, 1)
	require.Equal(t, RegionTaskQueue("eu"), pools[0].Queue)
	require.Equal(t, xp.Pools[0].Backend, pools[0].Arg)
	adds := rec.callsOf("AddServers")
	require.Len(t, adds, 1)
	require.Equal(t, RegionTaskQueue("eu"), adds[0].Queue)
	require.Equal(t, activities.ServersInput{Backend: "acme-prod-shop-api", Servers: []lb.Server{
		{Name: "acme-prod-shop-api-3", Addr: "10.0.0.1:20003", Weight: 100, State: lb.StateReady},
		{Name: "acme-prod-shop-api-4", Addr: "10.0.0.2:20004", Weight: 100, State: lb.StateReady},
	}}, adds[0].Arg)

	opens := map[string]any{}
	for _, c := range rec.callsOf("Open") {
		opens[c.Queue] = c.Arg
	}
	require.Equal(t, map[string]any{
		"berth-eu": []firewall.Opening{{ID: "acme-prod-shop-api-3/8080-tcp", Protocol: "tcp", DestIP: "10.0.0.1", DestPort: 20003}},
		"berth-us": []firewall.Opening{{ID: "acme-prod-shop-api-4/8080-tcp", Protocol: "tcp", DestIP: "10.0.0.2", DestPort: 20004}},
	}, opens, "each region's worker opens its own hosts' ports")
	marks := rec.callsOf("MarkOpenings")
	require.Len(t, marks, 1)
	require.Equal(t, activities.OpeningsDone{IDs: openingIDs(plan.Instances...), State: berth.OpeningOpen, RunID: 21}, marks[0].Arg)

	syncs := rec.callsOf("SyncCMDB")
	require.Len(t, syncs, 1)
	require.Equal(t, CentralTaskQueue, syncs[0].Queue)
	require.Equal(t, []string{"instance:acme-prod-shop-api-3", "instance:acme-prod-shop-api-4", "service:acme/prod/shop/api"}, syncs[0].Arg)

	replicas := rec.callsOf("SetReplicas")
	require.Len(t, replicas, 1)
	require.Equal(t, []any{uint(5), 4}, replicas[0].Arg)

	require.Equal(t, []string{
		"PlanDeploy", "EnsureImage", "EnsureImage", "StartInstance", "StartInstance", "RecordInstances",
		"PlanExpose", "EnsurePool", "AddServers", "Open", "Open", "MarkOpenings", "SyncCMDB", "SetReplicas", "Finish",
	}, rec.sequence("PlanDeploy", "EnsureImage", "StartInstance", "RecordInstances", "PlanExpose", "EnsurePool",
		"AddServers", "Open", "MarkOpenings", "SyncCMDB", "SetReplicas", "Finish"))
	require.Empty(t, rec.callsOf("PlanUnexpose"))
	require.Empty(t, rec.of("RemoveInstance"))
	require.Empty(t, rec.releases())

	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunSucceeded, fin.Status)
	require.Equal(t, uint(21), fin.RunID)
	require.Empty(t, fin.Error)
	require.Equal(t, []string{
		"plan running", "plan done",
		"images running", "images done",
		"start api running", "start api done",
		"load balancer running", "load balancer done",
		"firewall running", "firewall done",
		"cmdb running", "cmdb done",
	}, rec.stepLog())
	require.Equal(t, Status{Step: "done", Done: []string{"plan", "images", "start api", "load balancer", "firewall"}}, scaleStatus(t, env))
}

func TestScaleOutWithNothingToExpose(t *testing.T) {
	env, rec := newExposeEnv(t)
	in, plan := scaleOutInput()
	in.LB = berth.LBSettings{}
	mockDeploy(env, plan, deployFaults{})
	mockExpose(env, exposeFaults{})

	env.ExecuteWorkflow(ScaleService, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Len(t, rec.callsOf("PlanExpose"), 1)
	for _, a := range []string{"EnsurePool", "AddServers", "Open", "MarkOpenings", "SyncCMDB"} {
		require.Empty(t, rec.callsOf(a), a)
	}
	require.Equal(t, []string{
		"plan running", "plan done", "images running", "images done", "start api running", "start api done",
	}, rec.stepLog())
	require.Equal(t, berth.RunSucceeded, rec.onlyFinish(t).Status)
}

func TestScaleOutStartFailureUndoes(t *testing.T) {
	env, rec := newExposeEnv(t)
	in, plan := scaleOutInput()
	const msg = "instance acme-prod-shop-api-4 is unhealthy: curl: (7) connection refused"
	mockDeploy(env, plan, deployFaults{start: failInstance("acme-prod-shop-api-4",
		temporal.NewNonRetryableApplicationError(msg, string(berth.EUnhealthy), nil))})
	mockExpose(env, exposeFaults{expose: exposePlanFor(in.subject(), "api", in.LB.Weight, plan.Instances)})

	env.ExecuteWorkflow(ScaleService, in)

	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	require.ErrorContains(t, err, msg)
	require.Equal(t, string(berth.EUnhealthy), appError(t, err).Type())

	require.Empty(t, rec.recorded, "a failed start records nothing")
	require.Empty(t, rec.callsOf("PlanExpose"))
	unexposeIn := activities.UnexposeInput{ApplicationID: 3, Subject: "acme/prod/shop", Instances: plan.Instances, RunID: 21}
	plans := rec.callsOf("PlanUnexpose")
	require.Len(t, plans, 1)
	require.Equal(t, unexposeIn, plans[0].Arg, "the service's pool stays: its other instances still serve")
	dones := rec.callsOf("UnexposeDone")
	require.Len(t, dones, 1)
	require.Equal(t, unexposeIn, dones[0].Arg)
	requireRemovedAll(t, rec.recorder, plan, false)
	require.Equal(t, [][]string{reversed(planNames(plan))}, rec.releases())
	require.Equal(t, []string{"PlanUnexpose", "UnexposeDone", "RemoveInstance", "RemoveInstance", "ReleaseInstances", "Finish"},
		rec.sequence("PlanUnexpose", "UnexposeDone", "RemoveInstance", "ReleaseInstances", "Finish"))
	require.Empty(t, rec.callsOf("SetReplicas"), "the replica count stays as it was")

	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunFailed, fin.Status)
	require.Equal(t, msg, fin.Error)
	require.Equal(t, []string{
		"plan running", "plan done",
		"images running", "images done",
		"start api running", "start api failed",
		"undo running", "undo done",
	}, rec.stepLog())
	require.Equal(t, Status{Step: "undo", Done: []string{"plan", "images", "undo"}, Error: msg}, scaleStatus(t, env))
}

func TestScaleOutFirewallFailureUndoesLoadBalancerAndFirewall(t *testing.T) {
	env, rec := newExposeEnv(t)
	in, plan := scaleOutInput()
	const msg = "open acme-prod-shop-api-4/8080-tcp: rule limit reached"
	mockDeploy(env, plan, deployFaults{})
	cis := []string{"instance:acme-prod-shop-api-3", "instance:acme-prod-shop-api-4"}
	mockExpose(env, exposeFaults{
		expose:       exposePlanFor(in.subject(), "api", in.LB.Weight, plan.Instances),
		unexpose:     unexposePlanFor(in.subject(), "api", "eu", false, plan.Instances),
		unexposeDone: cis,
		open: func(os []firewall.Opening) error {
			if os[0].DestIP == hostUS.IP {
				return temporal.NewNonRetryableApplicationError(msg, "test", nil)
			}
			return nil
		},
	})

	env.ExecuteWorkflow(ScaleService, in)

	require.True(t, env.IsWorkflowCompleted())
	require.ErrorContains(t, env.GetWorkflowError(), msg)
	require.Len(t, rec.callsOf("Open"), 2, "a non-retryable refusal is not retried; the other region's open is waited for")
	require.Empty(t, rec.callsOf("MarkOpenings"))

	removes := rec.callsOf("RemoveServers")
	require.Len(t, removes, 1)
	require.Equal(t, RegionTaskQueue("eu"), removes[0].Queue)
	require.Equal(t, activities.RemoveServersInput{Backend: "acme-prod-shop-api", Names: planNames(plan)}, removes[0].Arg)
	require.Empty(t, rec.callsOf("RemovePool"), "the pool still serves the service's other instances")
	closes := map[string]any{}
	for _, c := range rec.callsOf("Close") {
		closes[c.Queue] = c.Arg
	}
	require.Equal(t, map[string]any{
		"berth-eu": []string{"acme-prod-shop-api-3/8080-tcp"},
		"berth-us": []string{"acme-prod-shop-api-4/8080-tcp"},
	}, closes)
	syncs := rec.callsOf("SyncCMDB")
	require.Len(t, syncs, 1, "only the undo's deletions are synced")
	require.Equal(t, cis, syncs[0].Arg)
	requireRemovedAll(t, rec.recorder, plan, false)
	require.Equal(t, [][]string{reversed(planNames(plan))}, rec.releases())
	require.Equal(t, []string{"Open", "Open", "PlanUnexpose", "RemoveServers", "Close", "Close", "UnexposeDone", "SyncCMDB",
		"RemoveInstance", "RemoveInstance", "ReleaseInstances", "Finish"},
		rec.sequence("Open", "PlanUnexpose", "RemoveServers", "Close", "UnexposeDone", "SyncCMDB", "RemoveInstance",
			"ReleaseInstances", "Finish"))
	require.Empty(t, rec.callsOf("SetReplicas"))

	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunFailed, fin.Status)
	require.Equal(t, msg, fin.Error)
	steps := rec.stepLog()
	require.Equal(t, []string{
		"load balancer running", "load balancer done",
		"firewall running", "firewall failed",
		"undo running", "cmdb running", "cmdb done", "undo done",
	}, steps[6:])
}

func TestScaleOutUndoFailureKeepsTheCause(t *testing.T) {
	env, rec := newExposeEnv(t)
	in, plan := scaleOutInput()
	const cause = "instance acme-prod-shop-api-4 is unhealthy"
	const gone = "remove acme-prod-shop-api-3 on h1: permission denied"
	env.OnActivity(dk.RemoveInstance, mock.Anything, mock.MatchedBy(func(in activities.RemoveInstanceInput) bool {
		return in.Host.ID == hostEU.ID
	})).Return(temporal.NewNonRetryableApplicationError(gone, "test", nil))
	mockDeploy(env, plan, deployFaults{start: failInstance("acme-prod-shop-api-4",
		temporal.NewNonRetryableApplicationError(cause, string(berth.EUnhealthy), nil))})
	mockExpose(env, exposeFaults{})

	env.ExecuteWorkflow(ScaleService, in)

	require.True(t, env.IsWorkflowCompleted())
	require.ErrorContains(t, env.GetWorkflowError(), cause, "the run fails with its cause, not the undo's")
	require.Equal(t, [][]string{{"acme-prod-shop-api-4"}}, rec.releases(), "the port of a container that may remain is kept")
	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunFailed, fin.Status)
	require.Equal(t, cause+"; undo failed: "+gone, fin.Error)
	steps := rec.stepLog()
	require.Equal(t, []string{"undo running", "undo failed"}, steps[len(steps)-2:])
}

func TestScaleInDrainsThenRemovesGracefully(t *testing.T) {
	env, rec := newExposeEnv(t)
	in := scaleInInput()
	mockRemove(env, nil)
	cis := []string{"instance:acme-prod-shop-api-4", "instance:acme-prod-shop-api-3"}
	mockExpose(env, exposeFaults{
		unexpose:     unexposePlanFor(in.subject(), "api", "eu", false, in.Remove),
		unexposeDone: cis,
	})

	env.ExecuteWorkflow(ScaleService, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res ScaleServiceResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, ScaleServiceResult{Added: []string{}, Removed: []string{"acme-prod-shop-api-4", "acme-prod-shop-api-3"}}, res)

	unexposeIn := activities.UnexposeInput{ApplicationID: 3, Subject: "acme/prod/shop", Instances: in.Remove}
	plans := rec.callsOf("PlanUnexpose")
	require.Len(t, plans, 2, "once to plan the drain, once to unexpose")
	require.Equal(t, unexposeIn, plans[0].Arg)
	unexposeIn.RunID = in.RunID // the unexpose names the run, for the CMDB's deleted-by
	require.Equal(t, unexposeIn, plans[1].Arg)
	sets := rec.callsOf("SetServers")
	require.Len(t, sets, 1)
	require.Equal(t, RegionTaskQueue("eu"), sets[0].Queue)
	require.Equal(t, activities.ServersInput{Backend: "acme-prod-shop-api", Servers: []lb.Server{
		{Name: "acme-prod-shop-api-4", Weight: 100, State: lb.StateDrain},
		{Name: "acme-prod-shop-api-3", Weight: 100, State: lb.StateDrain},
	}}, sets[0].Arg, "only the leaving instances drain")
	waits := rec.callsOf("WaitDrained")
	require.Len(t, waits, 1)
	require.Equal(t, RegionTaskQueue("eu"), waits[0].Queue)
	require.Equal(t, activities.WaitDrainedInput{Backend: "acme-prod-shop-api",
		Names: []string{"acme-prod-shop-api-4", "acme-prod-shop-api-3"}, Timeout: 5 * time.Minute}, waits[0].Arg)
	require.Equal(t, drainOptions.HeartbeatTimeout, rec.of("WaitDrained")[0].Heartbeat)

	removes := rec.callsOf("RemoveServers")
	require.Len(t, removes, 1)
	require.Equal(t, activities.RemoveServersInput{Backend: "acme-prod-shop-api",
		Names: []string{"acme-prod-shop-api-4", "acme-prod-shop-api-3"}}, removes[0].Arg)
	require.Empty(t, rec.callsOf("RemovePool"))
	require.Len(t, rec.callsOf("Close"), 2)
	dones := rec.callsOf("UnexposeDone")
	require.Len(t, dones, 1)
	require.Equal(t, unexposeIn, dones[0].Arg)
	syncs := rec.callsOf("SyncCMDB")
	require.Len(t, syncs, 1)
	require.Equal(t, cis, syncs[0].Arg)

	stops := rec.of("RemoveInstance")
	require.Len(t, stops, 2)
	for _, s := range stops {
		require.True(t, s.Remove.Graceful, "in-flight requests finish")
		require.Equal(t, RegionTaskQueue(s.Remove.Host.Region), s.Queue)
		require.Equal(t, "uid-"+s.Remove.Name, s.Remove.UID)
	}
	require.Equal(t, [][]string{{"acme-prod-shop-api-3", "acme-prod-shop-api-4"}}, rec.releases())
	replicas := rec.callsOf("SetReplicas")
	require.Len(t, replicas, 1)
	require.Equal(t, []any{uint(5), 2}, replicas[0].Arg)

	require.Equal(t, []string{
		"PlanUnexpose", "SetServers", "WaitDrained",
		"PlanUnexpose", "RemoveServers", "Close", "Close", "UnexposeDone", "SyncCMDB",
		"RemoveInstance", "RemoveInstance", "ReleaseInstances", "SetReplicas", "Finish",
	}, rec.sequence("PlanUnexpose", "SetServers", "WaitDrained", "RemoveServers", "Close", "UnexposeDone", "SyncCMDB",
		"RemoveInstance", "ReleaseInstances", "SetReplicas", "Finish"))
	for _, a := range []string{"PlanDeploy", "EnsureImage", "StartInstance", "PlanExpose", "Open", "AddServers"} {
		require.Empty(t, rec.callsOf(a), a)
	}

	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunSucceeded, fin.Status)
	require.Empty(t, fin.Error)
	require.Equal(t, []string{
		"drain running", "drain done",
		"remove running", "cmdb running", "cmdb done", "remove done",
	}, rec.stepLog())
	require.Equal(t, Status{Step: "done", Done: []string{"drain", "remove"}}, scaleStatus(t, env))
}

func TestScaleInProceedsWhenDrainTimesOut(t *testing.T) {
	env, rec := newExposeEnv(t)
	in := scaleInInput()
	mockRemove(env, nil)
	mockExpose(env, exposeFaults{
		unexpose: unexposePlanFor(in.subject(), "api", "eu", false, in.Remove),
		// Sessions still open at the deadline: the graceful stop finishes them.
		drained: func(activities.WaitDrainedInput) (bool, error) { return false, nil },
	})

	env.ExecuteWorkflow(ScaleService, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Len(t, rec.callsOf("WaitDrained"), 1)
	require.Len(t, rec.callsOf("RemoveServers"), 1)
	stops := rec.of("RemoveInstance")
	require.Len(t, stops, 2)
	for _, s := range stops {
		require.True(t, s.Remove.Graceful)
	}
	require.Len(t, rec.releases(), 1)
	require.Len(t, rec.callsOf("SetReplicas"), 1)
	require.Equal(t, berth.RunSucceeded, rec.onlyFinish(t).Status)
}

func TestScaleInDrainFailureRemovesNothing(t *testing.T) {
	env, rec := newExposeEnv(t)
	in := scaleInInput()
	mockRemove(env, nil)
	const msg = "state of acme-prod-shop-api-4 in acme-prod-shop-api: no such server"
	env.OnActivity(lbA.SetServers, mock.Anything, mock.Anything).
		Return(temporal.NewNonRetryableApplicationError(msg, string(berth.ENotFound), nil))
	mockExpose(env, exposeFaults{unexpose: unexposePlanFor(in.subject(), "api", "eu", false, in.Remove)})

	env.ExecuteWorkflow(ScaleService, in)

	require.True(t, env.IsWorkflowCompleted())
	require.ErrorContains(t, env.GetWorkflowError(), msg)
	require.Empty(t, rec.callsOf("WaitDrained"))
	require.Empty(t, rec.callsOf("RemoveServers"))
	require.Empty(t, rec.of("RemoveInstance"))
	require.Empty(t, rec.releases())
	require.Empty(t, rec.callsOf("SetReplicas"))
	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunFailed, fin.Status)
	require.Equal(t, msg, fin.Error)
	require.Equal(t, []string{"drain running", "drain failed"}, rec.stepLog())
}

func TestScaleInRemoveFailureFailsTheRun(t *testing.T) {
	env, rec := newExposeEnv(t)
	in := scaleInInput()
	const msg = "stop acme-prod-shop-api-4 on h2: permission denied"
	mockRemove(env, func(in activities.RemoveInstanceInput) error {
		if in.Name == "acme-prod-shop-api-4" {
			return temporal.NewNonRetryableApplicationError(msg, "test", nil)
		}
		return nil
	})
	mockExpose(env, exposeFaults{})

	env.ExecuteWorkflow(ScaleService, in)

	require.True(t, env.IsWorkflowCompleted())
	require.ErrorContains(t, env.GetWorkflowError(), msg)
	require.Len(t, rec.of("RemoveInstance"), 2, "the other removal is waited for")
	require.Equal(t, [][]string{{"acme-prod-shop-api-3"}}, rec.releases(), "only the removed instance's port is released")
	require.Empty(t, rec.callsOf("SetReplicas"))
	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunFailed, fin.Status)
	require.Equal(t, msg, fin.Error)
}

func TestScaleOutCancelDuringCMDBSyncStillRecordsReplicas(t *testing.T) {
	env, rec := newExposeEnv(t)
	in, plan := scaleOutInput()
	mockDeploy(env, plan, deployFaults{})
	env.OnActivity(cmA.SyncCMDB, mock.Anything, mock.Anything).After(time.Hour).Return(&berth.SyncResult{}, nil)
	mockExpose(env, exposeFaults{expose: exposePlanFor(in.subject(), "api", in.LB.Weight, plan.Instances)})
	env.RegisterDelayedCallback(env.CancelWorkflow, 10*time.Minute)

	env.ExecuteWorkflow(ScaleService, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError(), "everything but the best-effort CMDB sync is done")
	require.Equal(t, berth.RunSucceeded, rec.onlyFinish(t).Status)
	replicas := rec.callsOf("SetReplicas")
	require.Len(t, replicas, 1, "the store must match the instances that run")
	require.Equal(t, []any{uint(5), 4}, replicas[0].Arg)
	require.Contains(t, rec.stepLog(), "cmdb failed")
}
