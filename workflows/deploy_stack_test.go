package workflows

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
)

func TestDeployStackStartsLevelsInDependencyOrder(t *testing.T) {
	env, rec := newEnv(t)
	in, plan := twoTier()
	var req berth.PlanRequest
	mockDeploy(env, plan, deployFaults{plan: func(r berth.PlanRequest) error {
		rec.add(func() { req = r })
		return nil
	}})

	env.ExecuteWorkflow(DeployStack, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res DeployStackResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, planNames(plan), resultNames(res.Instances))
	require.Equal(t, "c-acme-prod-shop-web-2", res.Instances[3].ContainerID)

	require.Equal(t, "acme-prod-shop", req.NamePrefix)
	require.Equal(t, in.RunID, req.RunID)
	require.Equal(t, 20000, req.PortMin)
	require.Len(t, req.Services, 2)
	require.Equal(t, berth.ServiceRequest{Name: "web", Image: "reg.local/web:1", Replicas: 2,
		Ports: []berth.PortRequest{{ContainerPort: 80, Protocol: "tcp"}}, Resources: berth.Resources{LogBytes: berth.DefaultLogBytes}}, req.Services[1])

	images := rec.of("EnsureImage")
	var pairs []string
	for _, s := range images {
		pairs = append(pairs, fmt.Sprintf("%s %s", s.Image.Host.Name, s.Image.Image))
		require.Equal(t, RegionTaskQueue(s.Image.Host.Region), s.Queue)
		require.Equal(t, imageOptions.HeartbeatTimeout, s.Heartbeat)
	}
	// Both web replicas are on h1: their image is checked there once.
	require.ElementsMatch(t, []string{"h1 reg.local/api:1", "h2 reg.local/api:1", "h1 reg.local/web:1"}, pairs)

	starts := rec.of("StartInstance")
	require.Len(t, starts, 4)
	for i, s := range starts {
		want := "api"
		if i >= 2 {
			want = "web"
		}
		require.Equal(t, want, s.Start.Instance.Service, "every api start comes before any web start: %v", starts)
		require.Equal(t, RegionTaskQueue(s.Start.Instance.Host.Region), s.Queue)
		require.Equal(t, instanceOptions.HeartbeatTimeout, s.Heartbeat)
		require.Equal(t, int32(1), s.Attempt)
		require.Equal(t, in.HealthTimeout, s.Start.HealthTimeout)
		require.Equal(t, map[string]string{"berth.tenant": "acme", "berth.env": "prod", "berth.app": "shop", "berth.run": "7"}, s.Start.Labels)
		require.Equal(t, s.Start.Instance.Service, s.Start.Service.Name)
	}
	queues := map[string]string{}
	for _, s := range starts {
		queues[s.Start.Instance.Name] = s.Queue
	}
	require.Equal(t, map[string]string{
		"acme-prod-shop-api-1": "berth-eu", "acme-prod-shop-api-2": "berth-us",
		"acme-prod-shop-web-1": "berth-eu", "acme-prod-shop-web-2": "berth-eu",
	}, queues)

	require.Equal(t, [][]string{
		{"acme-prod-shop-api-1", "acme-prod-shop-api-2"},
		{"acme-prod-shop-web-1", "acme-prod-shop-web-2"},
	}, rec.recorded)
	require.Empty(t, rec.of("RemoveInstance"))
	require.Empty(t, rec.releases())

	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunSucceeded, fin.Status)
	require.Equal(t, berth.StateRunning, fin.AppState)
	require.Equal(t, in.ApplicationID, fin.ApplicationID)
	require.Equal(t, in.RunID, fin.RunID)
	require.Empty(t, fin.Error)

	require.Equal(t, []string{
		"plan running", "plan done",
		"images running", "images done",
		"mesh running", "mesh done",
		"start api running", "start api done",
		"start web running", "start web done",
	}, rec.stepLog())

	v, err := env.QueryWorkflow(StatusQuery)
	require.NoError(t, err)
	var status Status
	require.NoError(t, v.Get(&status))
	require.Equal(t, Status{Step: "done", Done: []string{"plan", "images", "mesh", "start api", "start web"}}, status)

	// The plan spans two hosts: the relays are set up for all of it, once,
	// before the first instance starts.
	var order []string
	for _, s := range rec.startedAll() {
		if s.Activity == "SyncMesh" || s.Activity == "StartInstance" {
			order = append(order, s.Activity)
		}
		if s.Activity == "SyncMesh" {
			require.Equal(t, plan.Instances, s.Mesh.Instances)
			require.False(t, s.Mesh.Remove)
			require.Equal(t, "acme", s.Mesh.Tenant)
			require.Len(t, s.Mesh.Services, len(in.Spec.Services))
			require.Equal(t, RegionTaskQueue(plan.Instances[0].Host.Region), s.Queue)
		}
	}
	require.Equal(t, []string{"SyncMesh", "StartInstance", "StartInstance", "StartInstance", "StartInstance"}, order)
}

func TestDeployStackPlanFailsWithoutTouchingHosts(t *testing.T) {
	env, rec := newEnv(t)
	in, plan := twoTier()
	const msg = `environment "prod" has no ready authorised host: no capacity`
	plans := 0
	mockDeploy(env, plan, deployFaults{plan: func(berth.PlanRequest) error {
		rec.add(func() { plans++ })
		return temporal.NewNonRetryableApplicationError(msg, string(berth.ENoCapacity), nil)
	}})

	env.ExecuteWorkflow(DeployStack, in)

	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	require.ErrorContains(t, err, msg)
	require.Equal(t, string(berth.ENoCapacity), appError(t, err).Type())
	require.Equal(t, 1, plans, "a non-retryable plan failure is not retried")

	require.Empty(t, rec.of("EnsureImage"))
	require.Empty(t, rec.of("StartInstance"))
	require.Empty(t, rec.of("RemoveInstance"))
	require.Empty(t, rec.releases(), "nothing was planned, so nothing is released")

	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunFailed, fin.Status)
	require.Equal(t, berth.StateFailed, fin.AppState)
	require.Equal(t, msg, fin.Error)
	require.Equal(t, []string{"plan running", "plan failed"}, rec.stepLog())

	v, qerr := env.QueryWorkflow(StatusQuery)
	require.NoError(t, qerr)
	var status Status
	require.NoError(t, v.Get(&status))
	require.Equal(t, Status{Step: "plan", Done: []string{}, Error: msg}, status)
}

func TestDeployStackImageFailureUndoesEveryPlannedInstance(t *testing.T) {
	env, rec := newEnv(t)
	in, plan := twoTier()
	const msg = `image "reg.local/api:1" is not on host h2 and no configured registry holds it (registry: "")`
	mockDeploy(env, plan, deployFaults{image: func(in activities.EnsureImageInput) error {
		if in.Host.ID == hostUS.ID {
			return temporal.NewNonRetryableApplicationError(msg, string(berth.EImage), nil)
		}
		return nil
	}})

	env.ExecuteWorkflow(DeployStack, in)

	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	require.ErrorContains(t, err, msg)
	require.Equal(t, string(berth.EImage), appError(t, err).Type())

	require.Len(t, rec.of("EnsureImage"), 3, "the other pulls are waited for, not abandoned")
	require.Empty(t, rec.of("StartInstance"))
	// No container exists yet; removal is idempotent, so undo need not know.
	requireRemovedAll(t, rec, plan, false)
	require.Equal(t, [][]string{reversed(planNames(plan))}, rec.releases())

	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunFailed, fin.Status)
	require.Equal(t, berth.StateFailed, fin.AppState)
	require.Contains(t, fin.Error, msg)
	require.NotContains(t, fin.Error, "undo failed")
	require.Equal(t, []string{
		"plan running", "plan done",
		"images running", "images failed",
		"undo running", "undo done",
	}, rec.stepLog())
}

func TestDeployStackUnhealthyInstanceUndoesEveryLevel(t *testing.T) {
	env, rec := newEnv(t)
	in, plan := twoTier()
	const msg = "instance acme-prod-shop-web-2 is unhealthy: curl: (7) connection refused"
	mockDeploy(env, plan, deployFaults{start: failInstance("acme-prod-shop-web-2",
		temporal.NewNonRetryableApplicationError(msg, string(berth.EUnhealthy), nil))})

	env.ExecuteWorkflow(DeployStack, in)

	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	require.ErrorContains(t, err, msg)
	require.Equal(t, string(berth.EUnhealthy), appError(t, err).Type())

	require.Len(t, rec.of("StartInstance"), 4, "an unhealthy instance is not retried")
	require.Equal(t, [][]string{{"acme-prod-shop-api-1", "acme-prod-shop-api-2"}}, rec.recorded)
	requireRemovedAll(t, rec, plan, false)
	require.Equal(t, [][]string{reversed(planNames(plan))}, rec.releases())

	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunFailed, fin.Status)
	require.Equal(t, berth.StateFailed, fin.AppState)
	require.Equal(t, msg, fin.Error)
	require.Equal(t, []string{
		"plan running", "plan done",
		"images running", "images done",
		"mesh running", "mesh done",
		"start api running", "start api done",
		"start web running", "start web failed",
		"undo running", "undo done",
	}, rec.stepLog())
	// The undo takes the relays away after the last container.
	meshCalls := rec.of("SyncMesh")
	require.Len(t, meshCalls, 2)
	require.False(t, meshCalls[0].Mesh.Remove)
	require.True(t, meshCalls[1].Mesh.Remove)
	all := rec.startedAll()
	lastRemove, removeMesh := -1, -1
	for i, s := range all {
		if s.Activity == "RemoveInstance" {
			lastRemove = i
		}
		if s.Activity == "SyncMesh" && s.Mesh.Remove {
			removeMesh = i
		}
	}
	require.Greater(t, removeMesh, lastRemove, "relays go after the containers")

	v, qerr := env.QueryWorkflow(StatusQuery)
	require.NoError(t, qerr)
	var status Status
	require.NoError(t, v.Get(&status))
	require.Equal(t, Status{Step: "undo", Done: []string{"plan", "images", "mesh", "start api", "undo"}, Error: msg}, status)
}

func TestDeployStackUndoKeepsPortsOfContainersItCouldNotRemove(t *testing.T) {
	env, rec := newEnv(t)
	in, plan := twoTier()
	const unhealthy = "instance acme-prod-shop-web-2 stopped (exit code 1)"
	const gone = "inspect acme-prod-shop-api-2 on h2: connection refused"
	// h2 never answers again. The error is retryable, and the test env caps
	// unlimited retries at 10 attempts, so each attempt takes 100s of workflow
	// time: the ScheduleToClose bound, not that cap, ends the attempts.
	env.OnActivity(dk.RemoveInstance, mock.Anything, mock.MatchedBy(func(in activities.RemoveInstanceInput) bool {
		return in.Host.ID == hostUS.ID
	})).After(100 * time.Second).Return(errors.New(gone))
	mockDeploy(env, plan, deployFaults{
		start: failInstance("acme-prod-shop-web-2", temporal.NewNonRetryableApplicationError(unhealthy, string(berth.EUnhealthy), nil)),
	})
	begin := env.Now()

	env.ExecuteWorkflow(DeployStack, in)

	require.True(t, env.IsWorkflowCompleted())
	require.ErrorContains(t, env.GetWorkflowError(), unhealthy, "the run fails with its cause, not the undo's")

	var usAttempts []int32
	for _, s := range rec.of("RemoveInstance") {
		require.Equal(t, cleanupOptions.ScheduleToCloseTimeout, s.ScheduleToClose)
		if s.Remove.Host.ID == hostUS.ID {
			usAttempts = append(usAttempts, s.Attempt)
		}
	}
	require.Greater(t, len(usAttempts), 1, "a failing removal is retried")
	require.Less(t, len(usAttempts), 10, "the retries end at ScheduleToClose")
	elapsed := env.Now().Sub(begin)
	require.LessOrEqual(t, elapsed, cleanupOptions.ScheduleToCloseTimeout, "undo gives up on a dead host")
	require.Greater(t, elapsed, cleanupOptions.ScheduleToCloseTimeout-time.Minute, "undo keeps trying until then")

	require.Equal(t, [][]string{{"acme-prod-shop-web-2", "acme-prod-shop-web-1", "acme-prod-shop-api-1"}}, rec.releases(),
		"the port of a container that may still exist is never released")

	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunFailed, fin.Status)
	require.Equal(t, berth.StateFailed, fin.AppState)
	require.Equal(t, unhealthy+"; undo failed: "+gone, fin.Error)
	steps := rec.stepLog()
	require.Equal(t, []string{"undo running", "undo failed"}, steps[len(steps)-2:])
}

func TestDeployStackCancelledStillUndoes(t *testing.T) {
	env, rec := newEnv(t)
	in, plan := twoTier()
	// web never becomes healthy within the test: the cancel lands while its
	// starts are in flight.
	env.OnActivity(dk.StartInstance, mock.Anything, mock.MatchedBy(func(in activities.StartInstanceInput) bool {
		return in.Instance.Service == "web"
	})).After(time.Hour).Return(startResult(nil))
	mockDeploy(env, plan, deployFaults{})
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Minute)

	env.ExecuteWorkflow(DeployStack, in)

	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	require.Error(t, err)
	require.True(t, temporal.IsCanceledError(err), "got %v", err)

	require.Len(t, rec.of("StartInstance"), 4, "web starts were in flight when cancelled")
	require.Equal(t, [][]string{{"acme-prod-shop-api-1", "acme-prod-shop-api-2"}}, rec.recorded)
	requireRemovedAll(t, rec, plan, false)
	require.Equal(t, [][]string{reversed(planNames(plan))}, rec.releases())

	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunCancelled, fin.Status)
	require.Equal(t, "cancelled", fin.Error)
	require.Equal(t, berth.StateFailed, fin.AppState)
	require.Equal(t, in.RunID, fin.RunID)
	steps := rec.stepLog()
	require.Equal(t, []string{"undo running", "undo done"}, steps[len(steps)-2:])
	require.Contains(t, steps, "start web failed", "the interrupted step is closed, not left running")
}

func TestDeployStackRetriesTransientStartFailure(t *testing.T) {
	env, rec := newEnv(t)
	in, plan := twoTier()
	mockDeploy(env, plan, deployFaults{start: func(info activity.Info, in activities.StartInstanceInput) error {
		if in.Instance.Name == "acme-prod-shop-api-1" && info.Attempt == 1 {
			return errors.New("create acme-prod-shop-api-1 on h1: engine restarting")
		}
		return nil
	}})

	env.ExecuteWorkflow(DeployStack, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var attempts []int32
	for _, s := range rec.of("StartInstance") {
		if s.Start.Instance.Name == "acme-prod-shop-api-1" {
			attempts = append(attempts, s.Attempt)
		}
	}
	require.Equal(t, []int32{1, 2}, attempts)
	require.Empty(t, rec.of("RemoveInstance"))
	require.Equal(t, berth.RunSucceeded, rec.onlyFinish(t).Status)
}

func TestDeployStackRecordInstancesFailureUndoes(t *testing.T) {
	env, rec := newEnv(t)
	in, plan := twoTier()
	const msg = "instance acme-prod-shop-api-1 not found"
	rec.recordErr = temporal.NewNonRetryableApplicationError(msg, string(berth.ENotFound), nil)
	mockDeploy(env, plan, deployFaults{})

	env.ExecuteWorkflow(DeployStack, in)

	require.True(t, env.IsWorkflowCompleted())
	require.ErrorContains(t, env.GetWorkflowError(), msg)
	require.Len(t, rec.of("StartInstance"), 2, "no level starts after one could not be recorded")
	requireRemovedAll(t, rec, plan, false)
	require.Equal(t, [][]string{reversed(planNames(plan))}, rec.releases())
	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunFailed, fin.Status)
	require.Equal(t, msg, fin.Error)
}

func TestDeployStackSurvivesBookkeepingFailures(t *testing.T) {
	env, rec := newEnv(t)
	in, plan := twoTier()
	rec.stepErr = temporal.NewNonRetryableApplicationError("step table locked", "test", nil)
	rec.finishErr = temporal.NewNonRetryableApplicationError("run table locked", "test", nil)
	mockDeploy(env, plan, deployFaults{})

	env.ExecuteWorkflow(DeployStack, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError(), "step and outcome records are best effort")
	var res DeployStackResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Len(t, res.Instances, 4)
	require.Equal(t, berth.RunSucceeded, rec.onlyFinish(t).Status)
}

// requireRemovedAll checks every planned instance got exactly one successful
// removal request, on its own host's queue.
func requireRemovedAll(t *testing.T, rec *recorder, plan berth.Plan, graceful bool) {
	t.Helper()
	removes := rec.of("RemoveInstance")
	var names []string
	for _, s := range removes {
		names = append(names, s.Remove.Name)
		require.Equal(t, graceful, s.Remove.Graceful)
		require.Equal(t, RegionTaskQueue(s.Remove.Host.Region), s.Queue)
		require.Equal(t, "uid-"+s.Remove.Name, s.Remove.UID, "removal only touches the container berth made for the instance")
	}
	require.ElementsMatch(t, planNames(plan), names)
}
