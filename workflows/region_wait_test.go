package workflows

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
)

// A region whose worker takes no task within the notice holds the run,
// says so on the step, and the run completes once the task is taken;
// nothing is undone.
func TestDeployStackWaitsForARegionWithoutWorker(t *testing.T) {
	env, rec := newEnv(t)
	in, plan := twoTier()
	var mu sync.Mutex
	queued := 0
	mockDeploy(env, plan, deployFaults{start: func(_ activity.Info, in activities.StartInstanceInput) error {
		if in.Instance.Host.Region != "us" {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if queued++; queued == 1 {
			// What the server answers when no worker of the queue took the task.
			return temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil)
		}
		return nil
	}})

	env.ExecuteWorkflow(DeployStack, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, berth.RunSucceeded, rec.onlyFinish(t).Status)
	require.Empty(t, rec.of("RemoveInstance"), "a wait for a region is not a failure to undo")
	var us []started
	for _, s := range rec.of("StartInstance") {
		if s.Start.Instance.Host.Region == "us" {
			us = append(us, s)
		}
	}
	require.Len(t, us, 2, "asked once, then again after the notice")
	require.Equal(t, RegionTaskQueue("us"), us[1].Queue)
	rec.mu.Lock()
	details := append([]string(nil), rec.details...)
	rec.mu.Unlock()
	require.Len(t, details, 2, "waiting, then running again: %v", details)
	require.Equal(t, "start api: "+WaitingForRegion("us"), details[0])
	require.Regexp(t, `^start api: region us's worker returned after \d+s$`, details[1])
	requireInOrder(t, rec.stepLog(), "start api running", "start api waiting", "start api running", "start api done")
}

// requireInOrder checks that want appear in got in this order, others between.
func requireInOrder(t *testing.T, got []string, want ...string) {
	t.Helper()
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	require.Equal(t, len(want), i, "want %q in order within %q", want, got)
}

func TestQueueTimedOut(t *testing.T) {
	require.True(t, queueTimedOut(temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil)))
	require.False(t, queueTimedOut(temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_START_TO_CLOSE, nil)))
	require.False(t, queueTimedOut(temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_HEARTBEAT, nil)))
	require.False(t, queueTimedOut(nil))
}
