package worker

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// An activity that never heartbeats itself is kept alive by the worker's
// interceptor, so a short heartbeat timeout only ends attempts whose
// worker is gone.
func TestKeepAliveHeartbeatsForSilentActivities(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetWorkerOptions(workerOptions())
	env.SetTestTimeout(time.Minute)
	var beats atomic.Int32
	enough := make(chan struct{})
	env.SetOnActivityHeartbeatListener(func(*activity.Info, converter.EncodedValues) {
		if beats.Add(1) == 2 {
			close(enough)
		}
	})
	silent := func(ctx context.Context) error {
		select {
		case <-enough:
			return nil
		case <-time.After(10 * time.Second):
			return errors.New("no heartbeat came from the worker")
		}
	}
	env.RegisterActivityWithOptions(silent, activity.RegisterOptions{Name: "silent"})
	env.ExecuteWorkflow(func(ctx workflow.Context) error {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute, HeartbeatTimeout: 5 * time.Second})
		return workflow.ExecuteActivity(ctx, "silent").Get(ctx, nil)
	})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.GreaterOrEqual(t, beats.Load(), int32(2))
}
