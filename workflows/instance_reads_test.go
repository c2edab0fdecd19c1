package workflows

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
)

// queuesOf records the task queue of each activity a test workflow started.
func queuesOf(t *testing.T) (*sync.Map, func(*activity.Info, context.Context, converter.EncodedValues)) {
	t.Helper()
	var m sync.Map
	return &m, func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		m.Store(info.ActivityType.Name, info.TaskQueue)
	}
}

func TestInstanceStatsReadsInTheHostsRegion(t *testing.T) {
	env := newTestEnv()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{TaskQueue: CentralTaskQueue})
	queues, listen := queuesOf(t)
	env.SetOnActivityStartedListener(listen)
	var d *activities.Docker
	ref := berth.InstanceRef{Host: berth.HostRef{Name: "h1", Region: "eu"}, Instance: "acme-prod-shop-web-1"}
	want := &berth.InstanceStats{Instance: ref.Instance, Host: "h1", Running: true, CPUPercent: 1.5, MemoryBytes: 5 << 20}
	env.OnActivity(d.InstanceStats, mock.Anything, ref).Return(want, nil)

	env.ExecuteWorkflow(InstanceStats, InstanceStatsInput{Instance: ref})

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res InstanceStatsResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, *want, res.Stats)
	q, _ := queues.Load("InstanceStats")
	require.Equal(t, RegionTaskQueue("eu"), q, "only the region's worker reaches its engines")
}

func TestInstanceLogsReadsOnceInTheHostsRegion(t *testing.T) {
	env := newTestEnv()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{TaskQueue: CentralTaskQueue})
	queues, listen := queuesOf(t)
	env.SetOnActivityStartedListener(listen)
	var d *activities.Docker
	ref := berth.InstanceRef{Host: berth.HostRef{Name: "h2", Region: "us"}, Instance: "acme-prod-shop-web-2"}
	since := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	calls := 0
	env.OnActivity(d.InstanceLogs, mock.Anything, activities.InstanceLogsInput{InstanceRef: ref, Tail: 50, Since: since}).
		Return(func(context.Context, activities.InstanceLogsInput) (*berth.InstanceLogs, error) {
			calls++
			return nil, temporal.NewApplicationError("engine busy", "")
		})

	env.ExecuteWorkflow(InstanceLogs, InstanceLogsInput{Instance: ref, Tail: 50, Since: since})

	require.True(t, env.IsWorkflowCompleted())
	require.ErrorContains(t, env.GetWorkflowError(), "engine busy")
	require.Equal(t, 1, calls, "a live read is not retried: the page asks again")
	q, _ := queues.Load("InstanceLogs")
	require.Equal(t, RegionTaskQueue("us"), q)
	require.NotEqual(t, InstanceLogsID(ref.Instance, 50, since), InstanceLogsID(ref.Instance, 50, since.Add(time.Second)))
}
