package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/compose"
	"github.com/berth-dev/berth/lb"
)

func actionInput(action berth.RunKind) InstanceActionInput {
	return InstanceActionInput{RunID: 40, ApplicationID: 3, Tenant: "acme", Env: "prod", App: "shop", Action: action,
		Instance: apiInstance(2, hostEU, 20002), Service: compose.ServiceSpec{Name: "api", Image: "reg.local/api:2"},
		HealthTimeout: time.Minute, DrainTimeout: 5 * time.Minute, LB: berth.LBSettings{Enabled: true, Weight: 100}}
}

// runAction runs InstanceAction with the exposure mocked and ActOnInstance
// answering act; it returns what the store was told of the instance's state.
func runAction(t *testing.T, in InstanceActionInput, act error) (*exposeRecorder, []activities.InstanceStateInput, error) {
	t.Helper()
	env, rec := newExposeEnv(t)
	env.OnActivity(st.PlanUnexpose, mock.Anything, mock.Anything).Return(func(_ context.Context, u activities.UnexposeInput) (*activities.UnexposePlan, error) {
		p := unexposePlanFor(u.Subject, "api", "eu", false, u.Instances)
		return &p, nil
	})
	mockExpose(env, exposeFaults{})
	var acted []activities.InstanceActionInput
	env.OnActivity(dk.ActOnInstance, mock.Anything, mock.Anything).Return(func(_ context.Context, a activities.InstanceActionInput) error {
		rec.add(func() { acted = append(acted, a) })
		return act
	})
	var states []activities.InstanceStateInput
	env.OnActivity(st.SetInstanceState, mock.Anything, mock.Anything).Return(func(_ context.Context, s activities.InstanceStateInput) error {
		rec.add(func() { states = append(states, s) })
		return nil
	})
	env.ExecuteWorkflow(InstanceAction, in)
	require.True(t, env.IsWorkflowCompleted())
	if act == nil {
		require.Len(t, acted, 1)
		require.Equal(t, in.Action, acted[0].Action)
		require.Equal(t, in.Instance, acted[0].Instance)
		require.Equal(t, int64(60000), acted[0].HealthTimeout)
		require.False(t, acted[0].Since.IsZero(), "a retried restart knows when the run asked for it")
	}
	return rec, states, env.GetWorkflowError()
}

func TestRestartDrainsActsAndPutsBack(t *testing.T) {
	rec, states, err := runAction(t, actionInput(berth.KindRestart), nil)
	require.NoError(t, err)
	require.Equal(t, []string{lbState(lb.StateDrain, 2), lbState(lb.StateReady, 2)}, lbStates(rec))
	require.Equal(t, []string{"SetServers", "WaitDrained", "ActOnInstance", "SetServers", "WaitUp", "Finish"},
		rec.sequence("SetServers", "WaitDrained", "ActOnInstance", "WaitUp", "Finish"))
	require.Equal(t, []activities.InstanceStateInput{{Name: "acme-prod-shop-api-2", State: berth.StateRunning}}, states)
	require.Equal(t, []string{"drain running", "drain done", "restart running", "restart done", "ready running", "ready done"}, rec.stepLog())
	require.Equal(t, berth.RunSucceeded, rec.onlyFinish(t).Status)
}

func TestStopLeavesTheInstanceInMaintenance(t *testing.T) {
	rec, states, err := runAction(t, actionInput(berth.KindStop), nil)
	require.NoError(t, err)
	require.Equal(t, []string{lbState(lb.StateDrain, 2), lbState(lb.StateMaint, 2)}, lbStates(rec))
	require.Empty(t, rec.callsOf("WaitUp"))
	require.Equal(t, []activities.InstanceStateInput{{Name: "acme-prod-shop-api-2", State: berth.StateStopped}}, states)
	require.Equal(t, berth.RunSucceeded, rec.onlyFinish(t).Status)
}

func TestStartSkipsTheDrain(t *testing.T) {
	rec, states, err := runAction(t, actionInput(berth.KindStart), nil)
	require.NoError(t, err)
	require.Empty(t, rec.callsOf("WaitDrained"))
	require.Equal(t, []string{lbState(lb.StateReady, 2)}, lbStates(rec))
	require.Len(t, rec.callsOf("WaitUp"), 1)
	require.Equal(t, []activities.InstanceStateInput{{Name: "acme-prod-shop-api-2", State: berth.StateRunning}}, states)
}

// A restart whose instance does not come back healthy fails the run and
// puts the server back as it was before the drain: the load balancer's own
// checks decide whether it serves, and the record is left as it was.
func TestFailedRestartPutsTheServerBack(t *testing.T) {
	rec, states, err := runAction(t, actionInput(berth.KindRestart),
		temporal.NewNonRetryableApplicationError("instance acme-prod-shop-api-2 stopped (exit code 1)", string(berth.EUnhealthy), nil))
	require.Error(t, err)
	require.Equal(t, []string{lbState(lb.StateDrain, 2), lbState(lb.StateReady, 2)}, lbStates(rec))
	require.Empty(t, states)
	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunFailed, fin.Status)
	require.Contains(t, fin.Error, "exit code 1")
}
