package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/compose"
)

// A drain cordons the host, waits for an application another run holds,
// moves each service's instances on the host with a release of its own
// version (one at a time, rolling back to that same version), and marks the
// host drained once nothing is left.
func TestDrainHostMovesEachServiceThenMarksDrained(t *testing.T) {
	env, rec := newExposeEnv(t)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{TaskQueue: CentralTaskQueue})
	env.RegisterWorkflowWithOptions(ReleaseVersion, workflow.RegisterOptions{Name: ReleaseVersionName})
	var dr *activities.Drain
	var states []berth.HostState
	env.OnActivity(dr.SetHostState, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.HostStateInput) error {
		rec.add(func() { states = append(states, in.State) })
		return nil
	})
	web := compose.ServiceSpec{Name: "web", Image: "reg.local/shop/web:7"}
	moves := []activities.EvacuationStep{
		{Busy: "run 5 (release by alice) on acme/dev/shop/web"},
		{RunID: 31, WorkflowID: EvacuateID("h1", "acme/dev/shop/web"), ApplicationID: 3, EnvironmentID: 2, ServiceID: 5, Tenant: "acme", Env: "dev", App: "shop", Service: web,
			Instances: []berth.PlannedInstance{apiInstance(1, hostEU, 20001), apiInstance(2, hostEU, 20002)}, LB: berth.LBSettings{Weight: 100}},
		{Done: true},
	}
	var keys []string
	env.OnActivity(dr.NextEvacuation, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.NextEvacuationInput) (*activities.EvacuationStep, error) {
		var next activities.EvacuationStep
		require.Equal(t, "evacuate/h1/", in.WorkflowPrefix)
		rec.add(func() {
			keys = append(keys, in.Key)
			next, moves = moves[0], moves[1:]
		})
		return &next, nil
	})
	env.OnActivity(dr.EvacuationStarted, mock.Anything, mock.Anything).Return(nil)
	var released []ReleaseVersionInput
	env.OnWorkflow(ReleaseVersionName, mock.Anything, mock.Anything).Return(func(_ workflow.Context, in ReleaseVersionInput) (*ReleaseVersionResult, error) {
		released = append(released, in)
		return &ReleaseVersionResult{}, nil
	})
	env.ExecuteWorkflow(DrainHost, DrainHostInput{RunID: 9, Host: hostEU, StartedBy: "ops", HealthTimeout: time.Minute, DrainTimeout: time.Minute})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []berth.HostState{berth.HostDraining, berth.HostDrained}, states)
	require.Equal(t, []string{"9/1", "9/1", "9/2"}, keys, "a wait opens no run, so the move number is asked again")
	require.Len(t, released, 1)
	rel := released[0]
	require.Equal(t, uint(31), rel.RunID)
	require.Zero(t, rel.ReleaseID, "a move is no release of a new version")
	require.Equal(t, 1, rel.BatchSize)
	require.Equal(t, web.Image, rel.LastGoodImage)
	require.Equal(t, web, rel.Service)
	require.Len(t, rel.Instances, 2)
	var res DrainHostResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, []string{"acme/dev/shop/web"}, res.Moves)
	require.Equal(t, berth.RunSucceeded, rec.onlyFinish(t).Status)
	require.Equal(t, []string{"cordon running", "cordon done", "move acme/dev/shop/web (2 instance(s)) running", "move acme/dev/shop/web (2 instance(s)) done",
		"drained running", "drained done"}, rec.stepLog())
}

// Self-healing's recovery of a host that went down is a drain with Lost:
// the host is neither cordoned nor marked drained (it stays down), and each
// move's release records the old instances lost.
func TestRecoverHostMovesLostInstancesAndLeavesTheHostDown(t *testing.T) {
	env, rec := newExposeEnv(t)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{TaskQueue: CentralTaskQueue})
	env.RegisterWorkflowWithOptions(ReleaseVersion, workflow.RegisterOptions{Name: ReleaseVersionName})
	var dr *activities.Drain
	env.OnActivity(dr.SetHostState, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.HostStateInput) error {
		require.Failf(t, "host state set", "a recovery leaves the host down, not %s", in.State)
		return nil
	}).Maybe()
	web := compose.ServiceSpec{Name: "web", Image: "reg.local/shop/web:7"}
	moves := []activities.EvacuationStep{
		{RunID: 31, WorkflowID: EvacuateID("h1", "acme/dev/shop/web"), ApplicationID: 3, EnvironmentID: 2, ServiceID: 5, Tenant: "acme", Env: "dev", App: "shop", Service: web,
			Instances: []berth.PlannedInstance{apiInstance(1, hostEU, 20001)}},
		{Done: true},
	}
	env.OnActivity(dr.NextEvacuation, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.NextEvacuationInput) (*activities.EvacuationStep, error) {
		var next activities.EvacuationStep
		require.Equal(t, "self-healing", in.StartedBy)
		rec.add(func() { next, moves = moves[0], moves[1:] })
		return &next, nil
	})
	env.OnActivity(dr.EvacuationStarted, mock.Anything, mock.Anything).Return(nil)
	var released []ReleaseVersionInput
	env.OnWorkflow(ReleaseVersionName, mock.Anything, mock.Anything).Return(func(_ workflow.Context, in ReleaseVersionInput) (*ReleaseVersionResult, error) {
		released = append(released, in)
		return &ReleaseVersionResult{}, nil
	})
	env.ExecuteWorkflow(DrainHost, DrainHostInput{RunID: 9, Host: hostEU, StartedBy: "self-healing", HealthTimeout: time.Minute, Lost: true})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Len(t, released, 1)
	require.True(t, released[0].OldLost)
	require.Equal(t, berth.RunSucceeded, rec.onlyFinish(t).Status)
	require.Equal(t, []string{"move acme/dev/shop/web (1 instance(s)) running", "move acme/dev/shop/web (1 instance(s)) done"}, rec.stepLog())
}
