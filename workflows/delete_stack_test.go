package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
)

func deleteInput() DeleteStackInput {
	return DeleteStackInput{RunID: 9, ApplicationID: 3, Tenant: "acme", Env: "prod", App: "shop"}
}

// liveThree spans both regions so that each removal's queue is checked.
func liveThree() []berth.PlannedInstance {
	return []berth.PlannedInstance{
		{InstanceID: 11, Name: "acme-prod-shop-api-1", UID: "uid-acme-prod-shop-api-1", Service: "api", Ordinal: 1, Host: hostEU},
		{InstanceID: 12, Name: "acme-prod-shop-api-2", UID: "uid-acme-prod-shop-api-2", Service: "api", Ordinal: 2, Host: hostUS},
		{InstanceID: 13, Name: "acme-prod-shop-web-1", UID: "uid-acme-prod-shop-web-1", Service: "web", Ordinal: 1, Host: hostEU},
	}
}

func mockLive(env *testsuite.TestWorkflowEnvironment, insts []berth.PlannedInstance, err error) {
	env.OnActivity(st.LiveInstances, mock.Anything, uint(3)).Return(func(context.Context, uint) ([]berth.PlannedInstance, error) {
		return insts, err
	})
}

func mockRemove(env *testsuite.TestWorkflowEnvironment, fault func(activities.RemoveInstanceInput) error) {
	env.OnActivity(dk.RemoveInstance, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.RemoveInstanceInput) error {
		if fault != nil {
			return fault(in)
		}
		return nil
	})
}

func TestDeleteStackRemovesEveryLiveInstanceGracefully(t *testing.T) {
	env, rec := newEnv(t)
	live := liveThree()
	mockLive(env, live, nil)
	mockRemove(env, nil)

	env.ExecuteWorkflow(DeleteStack, deleteInput())

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res DeleteStackResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, []string{"acme-prod-shop-api-1", "acme-prod-shop-api-2", "acme-prod-shop-web-1"}, res.Removed)

	removes := rec.of("RemoveInstance")
	require.Len(t, removes, 3)
	for _, s := range removes {
		require.True(t, s.Remove.Graceful, "a delete lets in-flight requests finish")
		require.Equal(t, RegionTaskQueue(s.Remove.Host.Region), s.Queue)
		require.Equal(t, "uid-"+s.Remove.Name, s.Remove.UID)
	}
	require.Equal(t, [][]string{{"acme-prod-shop-web-1", "acme-prod-shop-api-2", "acme-prod-shop-api-1"}}, rec.releases())

	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunSucceeded, fin.Status)
	require.Equal(t, berth.StateDeleted, fin.AppState)
	require.Equal(t, uint(3), fin.ApplicationID)
	require.Equal(t, uint(9), fin.RunID)
	require.Empty(t, fin.Error)
	require.Equal(t, []string{"load running", "load done", "unexpose running", "unexpose done", "remove running", "remove done"}, rec.stepLog())

	v, err := env.QueryWorkflow(StatusQuery)
	require.NoError(t, err)
	var status Status
	require.NoError(t, v.Get(&status))
	require.Equal(t, Status{Step: "done", Done: []string{"load", "unexpose", "remove"}}, status)
}

func TestDeleteStackWithNothingLive(t *testing.T) {
	env, rec := newEnv(t)
	mockLive(env, nil, nil)
	mockRemove(env, nil)

	env.ExecuteWorkflow(DeleteStack, deleteInput())

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res DeleteStackResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.NotNil(t, res.Removed, "an empty list, not null, for API clients")
	require.Empty(t, res.Removed)
	require.Empty(t, rec.of("RemoveInstance"))
	require.Equal(t, berth.StateDeleted, rec.onlyFinish(t).AppState)
}

func TestDeleteStackRemovalFailureLeavesAppFailed(t *testing.T) {
	env, rec := newEnv(t)
	mockLive(env, liveThree(), nil)
	const gone = "stop acme-prod-shop-api-2 on h2: connection refused"
	mockRemove(env, func(in activities.RemoveInstanceInput) error {
		if in.Host.ID == hostUS.ID {
			return errors.New(gone)
		}
		return nil
	})

	env.ExecuteWorkflow(DeleteStack, deleteInput())

	require.True(t, env.IsWorkflowCompleted())
	require.ErrorContains(t, env.GetWorkflowError(), gone)
	require.Greater(t, len(rec.of("RemoveInstance")), 3, "the failing removal is retried")
	require.Equal(t, [][]string{{"acme-prod-shop-web-1", "acme-prod-shop-api-1"}}, rec.releases(),
		"what could not be removed keeps its ports")

	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunFailed, fin.Status)
	require.Equal(t, berth.StateFailed, fin.AppState)
	require.Equal(t, gone, fin.Error)
	require.Equal(t, []string{"load running", "load done", "unexpose running", "unexpose done", "remove running", "remove failed"}, rec.stepLog())
}

func TestDeleteStackLoadFailureRemovesNothing(t *testing.T) {
	env, rec := newEnv(t)
	const msg = "application 3 not found"
	mockLive(env, nil, temporal.NewNonRetryableApplicationError(msg, string(berth.ENotFound), nil))
	mockRemove(env, nil)

	env.ExecuteWorkflow(DeleteStack, deleteInput())

	require.True(t, env.IsWorkflowCompleted())
	require.ErrorContains(t, env.GetWorkflowError(), msg)
	require.Empty(t, rec.of("RemoveInstance"))
	require.Empty(t, rec.releases())
	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunFailed, fin.Status)
	require.Equal(t, berth.StateFailed, fin.AppState)
	require.Equal(t, msg, fin.Error)
	require.Equal(t, []string{"load running", "load failed"}, rec.stepLog())
}

func TestDeleteStackCancelledClosesRunAsCancelled(t *testing.T) {
	env, rec := newEnv(t)
	mockLive(env, liveThree(), nil)
	// h2's removal is in flight when the cancel lands.
	env.OnActivity(dk.RemoveInstance, mock.Anything, mock.MatchedBy(func(in activities.RemoveInstanceInput) bool {
		return in.Host.ID == hostUS.ID
	})).After(time.Hour).Return(nil)
	mockRemove(env, nil)
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Minute)

	env.ExecuteWorkflow(DeleteStack, deleteInput())

	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	require.True(t, temporal.IsCanceledError(err), "got %v", err)
	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunCancelled, fin.Status)
	require.Equal(t, "cancelled", fin.Error)
	require.Equal(t, berth.StateFailed, fin.AppState)
	require.Equal(t, []string{"load running", "load done", "unexpose running", "unexpose done", "remove running", "remove failed"}, rec.stepLog())
	require.Equal(t, [][]string{{"acme-prod-shop-web-1", "acme-prod-shop-api-1"}}, rec.releases(),
		"what was removed before the cancel is released; what was in flight is not")
}

// In an environment that approves releases a delete waits too; rejected,
// it touches nothing and the application is as it was.
func TestDeleteStackApprovalRejectedTouchesNothing(t *testing.T) {
	env, rec, _ := newReleaseEnv(t)
	in := deleteInput()
	in.Approval, in.PriorState = releaseApproval(), berth.StateRunning
	signalAt(env, time.Minute, berth.ApprovalDecision{ApprovalID: 42, State: berth.ApprovalRejected, By: []string{"carol"}, Comment: "still in use"})

	env.ExecuteWorkflow(DeleteStackName, in)

	require.True(t, env.IsWorkflowCompleted())
	require.Equal(t, berth.ErrApprovalRejected, appError(t, env.GetWorkflowError()).Type())
	for _, a := range []string{"LiveInstances", "RemoveInstance", "Unexpose"} {
		require.Empty(t, rec.callsOf(a), a)
	}
	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunFailed, fin.Status)
	require.Equal(t, "rejected by carol: still in use; nothing was deleted", fin.Error)
	require.Equal(t, berth.StateRunning, fin.AppState, "the application is running again")
}
