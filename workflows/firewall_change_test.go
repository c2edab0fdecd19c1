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
)

func changeInput() (ScaleServiceInput, berth.Plan) {
	in, plan := scaleOutInput()
	in.LB.Firewall = FirewallChange
	return in, plan
}

// An applied change lets the scale-out finish: the openings are recorded
// open, nothing goes to the region's own firewall driver.
func TestScaleOutFirewallChangeApplied(t *testing.T) {
	env, rec := newExposeEnv(t)
	in, plan := changeInput()
	mockDeploy(env, plan, deployFaults{})
	mockExpose(env, exposeFaults{expose: exposePlanFor(in.subject(), "api", in.LB.Weight, plan.Instances)})
	var fw *activities.Firewall
	var asked []activities.ChangeInput
	env.OnActivity(fw.OpenByChange, mock.Anything, mock.Anything).Return(func(_ context.Context, ci activities.ChangeInput) (*activities.ChangeResult, error) {
		asked = append(asked, ci)
		return &activities.ChangeResult{ID: "berth-open-1"}, nil
	})

	env.ExecuteWorkflow(ScaleService, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Empty(t, rec.callsOf("Open"))
	require.NotEmpty(t, asked)
	n := 0
	for _, a := range asked {
		n += len(a.Openings)
		require.Contains(t, a.Reason, "berth run 21")
	}
	require.Equal(t, len(plan.Instances), n)
	marks := rec.callsOf("MarkOpenings")
	require.Len(t, marks, 1)
	require.Equal(t, activities.OpeningsDone{IDs: openingIDs(plan.Instances...), State: berth.OpeningOpen, RunID: in.RunID}, marks[0].Arg)
	require.Contains(t, rec.stepLog(), "firewall change done")
	require.Equal(t, berth.RunSucceeded, rec.onlyFinish(t).Status)
}

// A rejected change fails the run with the team's reason and undoes the
// scale-out; the rejection is not retried.
func TestScaleOutFirewallChangeRejectedUndoes(t *testing.T) {
	env, rec := newExposeEnv(t)
	in, plan := changeInput()
	mockDeploy(env, plan, deployFaults{})
	mockExpose(env, exposeFaults{
		expose:   exposePlanFor(in.subject(), "api", in.LB.Weight, plan.Instances),
		unexpose: unexposePlanFor(in.subject(), "api", "eu", false, plan.Instances),
	})
	var fw *activities.Firewall
	calls := 0
	env.OnActivity(fw.OpenByChange, mock.Anything, mock.Anything).Return(func(context.Context, activities.ChangeInput) (*activities.ChangeResult, error) {
		calls++
		return nil, temporal.NewNonRetryableApplicationError("the network team rejected change berth-open-1: not in zone dmz (CHG-9)", activities.FirewallRejected, nil)
	})

	env.ExecuteWorkflow(ScaleService, in)

	require.True(t, env.IsWorkflowCompleted())
	require.ErrorContains(t, env.GetWorkflowError(), "CHG-9")
	regions := map[string]bool{}
	for _, pi := range plan.Instances {
		regions[pi.Host.Region] = true
	}
	require.Equal(t, len(regions), calls, "one change per region, and a rejection is not retried")
	require.Empty(t, rec.callsOf("MarkOpenings"))
	require.Contains(t, rec.event(t, "firewall change", berth.StepFailed).Error, "CHG-9")
	requireRemovedAll(t, rec.recorder, plan, false)
	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunFailed, fin.Status)
	require.Contains(t, fin.Error, "CHG-9")
}

// The wait for a change outlasts the longest a worker lets one stay
// undecided, and the activity's error type matches the one not retried.
func TestFirewallChangeOptions(t *testing.T) {
	require.Equal(t, activities.FirewallRejected, firewallRejected)
	require.Greater(t, firewallChangeOptions.StartToCloseTimeout, 24*time.Hour)
	require.Contains(t, firewallChangeOptions.RetryPolicy.NonRetryableErrorTypes, activities.FirewallRejected)
}
