package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
)

// ApprovalSignal wakes a run waiting on an approval once the server has
// decided it in the database.
const ApprovalSignal = "approval"

// awaitApproval records the step as waiting and the approval in the store,
// then waits durably (a worker may die meanwhile) for the server's signal or
// the timeout. The server decides in the database first, so the first
// terminal signal for this approval is the outcome; later ones, and
// signals for other approvals, are ignored. On timeout the database is asked
// again, and a decision that committed before the timer wins over it.
func awaitApproval(ctx workflow.Context, r *run, req berth.ApprovalRequest) (berth.ApprovalOutcome, error) {
	name := req.Step
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = 24 * time.Hour
	}
	r.status.Step = name
	r.recordEvent(ctx, berth.StepEvent{Name: name, State: berth.StepWaiting, Detail: berth.WaitingFor(req.Roles, req.Quorum)})
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	deadline := workflow.Now(ctx).Add(timeout).UTC()
	var a berth.Approval
	err := workflow.ExecuteLocalActivity(lctx, r.st.CreateApproval, berth.Approval{
		RunID: r.id, Step: name, TenantID: req.TenantID, EnvironmentID: req.EnvironmentID,
		WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID, Roles: req.Roles, Quorum: req.Quorum,
		SeparateDuties: req.SeparateDuties, RequireComment: req.RequireComment, StartedBy: req.StartedBy,
		Summary: req.Summary, OnTimeout: req.OnTimeout, DeadlineAt: &deadline,
	}).Get(ctx, &a)
	if err != nil {
		r.status.Error = errorMessage(err)
		r.record(ctx, name, berth.StepFailed, r.status.Error)
		return berth.ApprovalOutcome{}, err
	}
	sig := workflow.GetSignalChannel(ctx, ApprovalSignal)
	escalated := false
	for {
		tctx, cancelTimer := workflow.WithCancel(ctx)
		timer := workflow.NewTimer(tctx, deadline.Sub(workflow.Now(ctx)))
		var got *berth.ApprovalDecision
		fired := false
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(sig, func(c workflow.ReceiveChannel, _ bool) {
			var d berth.ApprovalDecision
			c.Receive(ctx, &d)
			if d.ApprovalID == a.ID && (d.State == berth.ApprovalApproved || d.State == berth.ApprovalRejected) {
				got = &d
			}
		})
		sel.AddFuture(timer, func(workflow.Future) { fired = true })
		sel.Select(ctx)
		cancelTimer()
		if got != nil {
			return r.decided(ctx, req, berth.ApprovalOutcome{ApprovalID: a.ID, State: got.State, By: got.By, Comment: got.Comment})
		}
		if !fired {
			continue // a signal for another approval, or a duplicate
		}
		if ctx.Err() != nil {
			dctx, _ := workflow.NewDisconnectedContext(ctx)
			_ = workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(dctx, storeOptions), r.st.CancelApproval, a.ID).Get(dctx, nil)
			r.record(ctx, name, berth.StepFailed, "cancelled")
			return berth.ApprovalOutcome{ApprovalID: a.ID, State: berth.ApprovalCancelled}, ctx.Err()
		}
		var escalateTo []berth.Role
		if req.OnTimeout == berth.OnTimeoutEscalate && !escalated {
			escalateTo = req.EscalateTo
		}
		var cur berth.Approval
		if err := workflow.ExecuteLocalActivity(lctx, r.st.ExpireApproval,
			activities.ExpireInput{ApprovalID: a.ID, EscalateTo: escalateTo}).Get(ctx, &cur); err != nil {
			r.status.Error = errorMessage(err)
			r.record(ctx, name, berth.StepFailed, r.status.Error)
			return berth.ApprovalOutcome{}, err
		}
		switch cur.State {
		case berth.ApprovalApproved, berth.ApprovalRejected:
			return r.decided(ctx, req, cur.Outcome())
		case berth.ApprovalEscalated:
			escalated = true
			deadline = workflow.Now(ctx).Add(timeout).UTC()
			r.recordEvent(ctx, berth.StepEvent{Name: name, State: berth.StepWaiting,
				Detail: fmt.Sprintf("nobody decided within %s; escalated: %s", timeout, berth.WaitingFor(req.EscalateTo, req.Quorum))})
			continue
		}
		kind, verb := berth.ErrApprovalTimedOut, "failed"
		if req.OnTimeout == berth.OnTimeoutAbort {
			kind, verb = berth.ErrApprovalAborted, "aborted"
		}
		msg := fmt.Sprintf("approval was not decided within %s; run %s", timeout, verb)
		r.status.Error = msg
		r.record(ctx, name, berth.StepFailed, msg)
		return berth.ApprovalOutcome{ApprovalID: a.ID, State: berth.ApprovalTimedOut}, temporal.NewNonRetryableApplicationError(msg, kind, nil)
	}
}

// decided closes the step as its outcome says: an approve is done, a reject failed.
func (r *run) decided(ctx workflow.Context, req berth.ApprovalRequest, o berth.ApprovalOutcome) (berth.ApprovalOutcome, error) {
	text := string(o.State) + " by " + strings.Join(o.By, ", ")
	if o.Comment != "" {
		text += ": " + o.Comment
	}
	if o.State == berth.ApprovalApproved {
		r.status.Done = append(r.status.Done, req.Step)
		r.recordEvent(ctx, berth.StepEvent{Name: req.Step, State: berth.StepDone, Detail: text})
		return o, nil
	}
	r.status.Error = text
	r.recordEvent(ctx, berth.StepEvent{Name: req.Step, State: berth.StepFailed, Error: text})
	return o, nil
}

// ApprovalGateName is the registered name of ApprovalGate.
const ApprovalGateName = "ApprovalGate"

// ApprovalGateInput is a stand-alone approval: a run that only waits for people.
type ApprovalGateInput struct {
	RunID    uint                  `json:"runId"`
	Approval berth.ApprovalRequest `json:"approval"`
}

// ApprovalGateResult is the approval's outcome.
type ApprovalGateResult struct {
	Outcome berth.ApprovalOutcome `json:"outcome"`
}

// ApprovalGateID is the workflow id of a named gate; one active at a time.
func ApprovalGateID(tenant, env, name string) string {
	return fmt.Sprintf("gate/%s/%s/%s", tenant, env, name)
}

// ApprovalGate waits for an approval, then marks the gate released. It is
// the approval step on its own, for pipelines that wrap other runs in it and
// for proving the wait end to end; ReleaseVersion calls awaitApproval itself.
func ApprovalGate(ctx workflow.Context, in ApprovalGateInput) (*ApprovalGateResult, error) {
	ctx, r, err := newRun(ctx, in.RunID)
	if err != nil {
		return nil, err
	}
	if in.Approval.Step == "" {
		in.Approval.Step = "approval"
	}
	o, err := awaitApproval(ctx, r, in.Approval)
	res := &ApprovalGateResult{Outcome: o}
	switch {
	case err != nil && (isCancel(ctx, err) || isType(err, berth.ErrApprovalAborted)):
		r.finish(ctx, activities.FinishInput{Status: berth.RunCancelled, Error: errorMessage(err)})
		return res, err
	case err != nil:
		r.finish(ctx, activities.FinishInput{Status: berth.RunFailed, Error: errorMessage(err)})
		return res, err
	case o.State == berth.ApprovalRejected:
		msg := o.Rejection()
		r.finish(ctx, activities.FinishInput{Status: berth.RunFailed, Error: msg})
		return res, temporal.NewNonRetryableApplicationError(msg, berth.ErrApprovalRejected, nil)
	}
	_ = r.step(ctx, "released", func() error { return nil })
	r.finish(ctx, activities.FinishInput{Status: berth.RunSucceeded})
	return res, nil
}

func isType(err error, kind string) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == kind
}
