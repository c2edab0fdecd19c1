package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/store"
)

// ApprovalSignal wakes a run waiting on an approval once the server has
// decided it in the database.
const ApprovalSignal = "approval"

// What a run does when nobody decides its approval in time.
const (
	OnTimeoutFail     = "fail"     // the run fails
	OnTimeoutAbort    = "abort"    // the run is cancelled (callers undo their work)
	OnTimeoutEscalate = "escalate" // EscalateTo's roles get one more Timeout, then fail
)

// Error types of an approval that ends without an approve.
const (
	ErrApprovalTimedOut = "ApprovalTimedOut"
	ErrApprovalAborted  = "ApprovalAborted"
	ErrApprovalRejected = "ApprovalRejected"
)

// ApprovalRequest describes one approval step of a run.
type ApprovalRequest struct {
	// Step is the step's name in the run; unique within the run.
	Step  string   `json:"step"`
	Roles []string `json:"roles"`
	// Quorum is how many distinct approvers must approve (at least 1).
	Quorum int `json:"quorum"`
	// SeparateDuties: StartedBy may not decide.
	SeparateDuties bool   `json:"separateDuties"`
	RequireComment bool   `json:"requireComment"`
	StartedBy      string `json:"startedBy"`
	TenantID       uint   `json:"tenantId"`
	EnvironmentID  uint   `json:"environmentId,omitempty"`
	// Timeout bounds the wait (0: one day); OnTimeout says what follows.
	Timeout    time.Duration `json:"timeout"`
	OnTimeout  string        `json:"onTimeout"`
	EscalateTo []string      `json:"escalateTo,omitempty"`
	// Summary is what will change, shown to the approver.
	Summary string `json:"summary"`
}

// ApprovalDecision is the signal's payload: the approval as the server closed it.
type ApprovalDecision struct {
	ApprovalID uint     `json:"approvalId"`
	State      string   `json:"state"`
	By         []string `json:"by"`
	Comment    string   `json:"comment,omitempty"`
}

// ApprovalOutcome is how an approval step ended.
type ApprovalOutcome struct {
	ApprovalID uint     `json:"approvalId"`
	State      string   `json:"state"` // approved, rejected or timed_out
	By         []string `json:"by,omitempty"`
	Comment    string   `json:"comment,omitempty"`
}

// awaitApproval records the step as waiting and the approval in the store,
// then waits durably (a worker may die meanwhile) for the server's signal or
// the timeout. The server decides in the database first, so the first
// terminal signal for this approval is the outcome; later ones, and
// signals for other approvals, are ignored. On timeout the database is asked
// again, and a decision that committed before the timer wins over it.
func awaitApproval(ctx workflow.Context, r *run, req ApprovalRequest) (ApprovalOutcome, error) {
	name := req.Step
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = 24 * time.Hour
	}
	r.status.Step = name
	r.recordEvent(ctx, store.StepEvent{Name: name, State: store.StepWaiting, Detail: waitingFor(req.Roles, req.Quorum)})
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	deadline := workflow.Now(ctx).Add(timeout).UTC()
	var a store.Approval
	err := workflow.ExecuteLocalActivity(lctx, r.st.CreateApproval, store.Approval{
		RunID: r.id, Step: name, TenantID: req.TenantID, EnvironmentID: req.EnvironmentID,
		WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID, RoleList: req.Roles, Quorum: req.Quorum,
		SeparateDuties: req.SeparateDuties, RequireComment: req.RequireComment, StartedBy: req.StartedBy,
		Summary: req.Summary, OnTimeout: req.OnTimeout, DeadlineAt: &deadline,
	}).Get(ctx, &a)
	if err != nil {
		r.status.Error = errorMessage(err)
		r.record(ctx, name, store.StepFailed, r.status.Error)
		return ApprovalOutcome{}, err
	}
	sig := workflow.GetSignalChannel(ctx, ApprovalSignal)
	escalated := false
	for {
		tctx, cancelTimer := workflow.WithCancel(ctx)
		timer := workflow.NewTimer(tctx, deadline.Sub(workflow.Now(ctx)))
		var got *ApprovalDecision
		fired := false
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(sig, func(c workflow.ReceiveChannel, _ bool) {
			var d ApprovalDecision
			c.Receive(ctx, &d)
			if d.ApprovalID == a.ID && (d.State == store.ApprovalApproved || d.State == store.ApprovalRejected) {
				got = &d
			}
		})
		sel.AddFuture(timer, func(workflow.Future) { fired = true })
		sel.Select(ctx)
		cancelTimer()
		if got != nil {
			return r.decided(ctx, req, ApprovalOutcome{ApprovalID: a.ID, State: got.State, By: got.By, Comment: got.Comment})
		}
		if !fired {
			continue // a signal for another approval, or a duplicate
		}
		if ctx.Err() != nil {
			dctx, _ := workflow.NewDisconnectedContext(ctx)
			_ = workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(dctx, storeOptions), r.st.CancelApproval, a.ID).Get(dctx, nil)
			r.record(ctx, name, store.StepFailed, "cancelled")
			return ApprovalOutcome{ApprovalID: a.ID, State: store.ApprovalCancelled}, ctx.Err()
		}
		var escalateTo []string
		if req.OnTimeout == OnTimeoutEscalate && !escalated {
			escalateTo = req.EscalateTo
		}
		var cur store.Approval
		if err := workflow.ExecuteLocalActivity(lctx, r.st.ExpireApproval,
			activities.ExpireInput{ApprovalID: a.ID, EscalateTo: escalateTo}).Get(ctx, &cur); err != nil {
			r.status.Error = errorMessage(err)
			r.record(ctx, name, store.StepFailed, r.status.Error)
			return ApprovalOutcome{}, err
		}
		switch cur.State {
		case store.ApprovalApproved, store.ApprovalRejected:
			return r.decided(ctx, req, outcomeOf(&cur))
		case store.ApprovalEscalated:
			escalated = true
			deadline = workflow.Now(ctx).Add(timeout).UTC()
			r.recordEvent(ctx, store.StepEvent{Name: name, State: store.StepWaiting,
				Detail: fmt.Sprintf("nobody decided within %s; escalated: %s", timeout, waitingFor(req.EscalateTo, req.Quorum))})
			continue
		}
		kind, verb := ErrApprovalTimedOut, "failed"
		if req.OnTimeout == OnTimeoutAbort {
			kind, verb = ErrApprovalAborted, "aborted"
		}
		msg := fmt.Sprintf("approval was not decided within %s; run %s", timeout, verb)
		r.status.Error = msg
		r.record(ctx, name, store.StepFailed, msg)
		return ApprovalOutcome{ApprovalID: a.ID, State: store.ApprovalTimedOut}, temporal.NewNonRetryableApplicationError(msg, kind, nil)
	}
}

// decided closes the step as its outcome says: an approve is done, a reject failed.
func (r *run) decided(ctx workflow.Context, req ApprovalRequest, o ApprovalOutcome) (ApprovalOutcome, error) {
	text := o.State + " by " + strings.Join(o.By, ", ")
	if o.Comment != "" {
		text += ": " + o.Comment
	}
	if o.State == store.ApprovalApproved {
		r.status.Done = append(r.status.Done, req.Step)
		r.recordEvent(ctx, store.StepEvent{Name: req.Step, State: store.StepDone, Detail: text})
		return o, nil
	}
	r.status.Error = text
	r.recordEvent(ctx, store.StepEvent{Name: req.Step, State: store.StepFailed, Error: text})
	return o, nil
}

// rejection says who rejected and why, as runs and releases record it.
func (o ApprovalOutcome) rejection() string {
	msg := "rejected by " + strings.Join(o.By, ", ")
	if o.Comment != "" {
		msg += ": " + o.Comment
	}
	return msg
}

func outcomeOf(a *store.Approval) ApprovalOutcome {
	o := ApprovalOutcome{ApprovalID: a.ID, State: a.State}
	var comments []string
	for _, d := range a.Decisions {
		o.By = append(o.By, d.Approver)
		if d.Comment != "" {
			comments = append(comments, d.Comment)
		}
	}
	o.Comment = strings.Join(comments, " / ")
	return o
}

func waitingFor(roles []string, quorum int) string {
	if quorum < 1 {
		quorum = 1
	}
	return fmt.Sprintf("waiting for %d approval(s) from %s", quorum, strings.Join(roles, " or "))
}

// ApprovalGateName is the registered name of ApprovalGate.
const ApprovalGateName = "ApprovalGate"

// ApprovalGateInput is a stand-alone approval: a run that only waits for people.
type ApprovalGateInput struct {
	RunID    uint            `json:"runId"`
	Approval ApprovalRequest `json:"approval"`
}

// ApprovalGateResult is the approval's outcome.
type ApprovalGateResult struct {
	Outcome ApprovalOutcome `json:"outcome"`
}

// ApprovalGateID is the workflow id of a named gate; one active at a time.
func ApprovalGateID(tenant, env, name string) string {
	return fmt.Sprintf("gate/%s/%s/%s", tenant, env, name)
}

// ApprovalGate waits for an approval, then marks the gate released. It is
// the approval step on its own, for pipelines that wrap other runs in it and
// for proving the wait end to end; ReleaseVersion calls awaitApproval itself.
func ApprovalGate(ctx workflow.Context, in ApprovalGateInput) (*ApprovalGateResult, error) {
	r, err := newRun(ctx, in.RunID)
	if err != nil {
		return nil, err
	}
	if in.Approval.Step == "" {
		in.Approval.Step = "approval"
	}
	o, err := awaitApproval(ctx, r, in.Approval)
	res := &ApprovalGateResult{Outcome: o}
	switch {
	case err != nil && (isCancel(ctx, err) || isType(err, ErrApprovalAborted)):
		r.finish(ctx, activities.FinishInput{Status: store.RunCancelled, Error: errorMessage(err)})
		return res, err
	case err != nil:
		r.finish(ctx, activities.FinishInput{Status: store.RunFailed, Error: errorMessage(err)})
		return res, err
	case o.State == store.ApprovalRejected:
		msg := o.rejection()
		r.finish(ctx, activities.FinishInput{Status: store.RunFailed, Error: msg})
		return res, temporal.NewNonRetryableApplicationError(msg, ErrApprovalRejected, nil)
	}
	_ = r.step(ctx, "released", func() error { return nil })
	r.finish(ctx, activities.FinishInput{Status: store.RunSucceeded})
	return res, nil
}

func isType(err error, kind string) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == kind
}
