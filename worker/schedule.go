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
// reconciler every interval, with grace for runs in flight.
func EnsureReconcileSchedule(ctx context.Context, c client.Client, every, grace time.Duration) error {
	return ensureSchedule(ctx, c, workflows.ReconcileScheduleID, "reconcile", every, every, workflows.ReconcileName,
		workflows.ReconcileInput{Grace: grace})
}

// healPassTimeout bounds one self-healing pass: it only compares and starts
// heal runs (which outlive it), so a pass stuck on a dead region's worker
// is cut and the next one tries again.
const healPassTimeout = 5 * time.Minute

// EnsureHealSchedule makes the Temporal Schedule that runs self-healing's
// pass every interval: an instance must have been recorded for one interval
// before a pass touches it.
func EnsureHealSchedule(ctx context.Context, c client.Client, every time.Duration, in workflows.HealPassInput) error {
	in.Grace = every
	return ensureSchedule(ctx, c, workflows.HealScheduleID, "heal", every, healPassTimeout, workflows.HealPassName, in)
}

// diskPassTimeout bounds one disk pass: the engines walk every volume, and
// what a cut pass missed the next one measures.
const diskPassTimeout = 10 * time.Minute

// EnsureDiskSchedule makes the Temporal Schedule that measures the named
// volumes on every host every interval.
func EnsureDiskSchedule(ctx context.Context, c client.Client, every time.Duration) error {
	return ensureSchedule(ctx, c, workflows.DiskScheduleID, "disk", every, diskPassTimeout, workflows.DiskPassName, workflows.DiskPassInput{})
}

// EnsureCMDBResyncSchedule makes the Temporal Schedule that repairs the
// drift between berth and the CMDB every interval.
func EnsureCMDBResyncSchedule(ctx context.Context, c client.Client, every time.Duration) error {
	return ensureSchedule(ctx, c, workflows.CMDBResyncScheduleID, workflows.CMDBResyncID, every, workflows.CMDBResyncTimeout, workflows.CMDBResyncName, nil)
}

// EnsureTicketSchedule makes the Temporal Schedule that tells the ticket
// system of incident changes every interval.
func EnsureTicketSchedule(ctx context.Context, c client.Client, every time.Duration) error {
	return ensureSchedule(ctx, c, workflows.TicketDeliveryScheduleID, workflows.TicketDeliveryID, every, workflows.TicketDeliveryTimeout, workflows.TicketDeliveryName, nil)
}

// ensureSchedule makes a schedule that runs a workflow every interval; a
// pass still going when the next is due is skipped. One that already
// exists (another central worker made it, or an earlier start) gets this
// start's interval and input, so a changed setting (-heal-every,
// -host-down-after, …) takes effect on restart; its pause state is kept.
func ensureSchedule(ctx context.Context, c client.Client, id, workflowID string, every, runTimeout time.Duration, workflow string, arg any) error {
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}}
	var args []any // a workflow that takes no input gets none
	if arg != nil {
		args = []any{arg}
	}
	action := &client.ScheduleWorkflowAction{ID: workflowID, Workflow: workflow, Args: args,
		TaskQueue: workflows.CentralTaskQueue, WorkflowRunTimeout: runTimeout}
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{ID: id, Spec: spec,
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP, Action: action})
	var exists *serviceerror.AlreadyExists
	if err == nil {
		return nil
	}
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) && !errors.As(err, &exists) {
		return fmt.Errorf("%s schedule: %w", workflowID, err)
	}
	err = c.ScheduleClient().GetHandle(ctx, id).Update(ctx, client.ScheduleUpdateOptions{
		DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			s := in.Description.Schedule
			s.Spec, s.Action = &spec, action
			return &client.ScheduleUpdate{Schedule: &s}, nil
		}})
	if err != nil {
		return fmt.Errorf("%s schedule update: %w", workflowID, err)
	}
	return nil
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
