package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/berth-dev/berth/workflows"
)

// EnsureReconcileSchedule makes the Temporal Schedule that runs the
// reconciler every interval, with grace for runs in flight. A schedule that
// already exists (another central worker made it, or an earlier start) is
// left as it is; a pass that is still going when the next is due is skipped.
func EnsureReconcileSchedule(ctx context.Context, c client.Client, every, grace time.Duration) error {
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:      workflows.ReconcileScheduleID,
		Spec:    client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}},
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		Action: &client.ScheduleWorkflowAction{ID: "reconcile", Workflow: workflows.ReconcileName,
			Args: []any{workflows.ReconcileInput{Grace: grace}}, TaskQueue: workflows.CentralTaskQueue,
			WorkflowRunTimeout: every},
	})
	var exists *serviceerror.AlreadyExists
	if err == nil || errors.Is(err, temporal.ErrScheduleAlreadyRunning) || errors.As(err, &exists) {
		return nil
	}
	return fmt.Errorf("reconcile schedule: %w", err)
}

// TemporalStates answers whether runs' workflows have closed.
type TemporalStates struct{ Client client.Client }

// Signal sends a signal to a workflow's current run. A workflow Temporal no
// longer runs has nothing to wake; the next pass closes its run.
func (t TemporalStates) Signal(ctx context.Context, workflowID, name string, arg any) error {
	err := t.Client.SignalWorkflow(ctx, workflowID, "", name, arg)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil
	}
	return err
}

// Closed: a workflow that is no longer running, or that Temporal no longer
// knows (its history passed retention), has closed.
func (t TemporalStates) Closed(ctx context.Context, workflowID, runID string) (bool, error) {
	desc, err := t.Client.DescribeWorkflowExecution(ctx, workflowID, runID)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return desc.WorkflowExecutionInfo.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
}
