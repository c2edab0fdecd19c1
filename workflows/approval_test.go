package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
)

// approvalFake stands in for the approval records: what the workflow
// created, and what each timeout finds in the database.
type approvalFake struct {
	created  []berth.Approval
	expires  []activities.ExpireInput
	cancels  []uint
	onExpire func(n int, in activities.ExpireInput) berth.Approval
}

func newGateEnv(t *testing.T) (*testsuite.TestWorkflowEnvironment, *recorder, *approvalFake) {
	t.Helper()
	env, rec := newEnv(t)
	env.RegisterWorkflowWithOptions(ApprovalGate, workflow.RegisterOptions{Name: ApprovalGateName})
	f := &approvalFake{}
	env.OnActivity(st.CreateApproval, mock.Anything, mock.Anything).Return(func(_ context.Context, a berth.Approval) (*berth.Approval, error) {
		rec.add(func() { f.created = append(f.created, a) })
		a.ID, a.State = 42, berth.ApprovalPending
		return &a, nil
	})
	env.OnActivity(st.ExpireApproval, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ExpireInput) (*berth.Approval, error) {
		var n int
		rec.add(func() { f.expires = append(f.expires, in); n = len(f.expires) })
		a := berth.Approval{ID: in.ApprovalID, State: berth.ApprovalTimedOut}
		if f.onExpire != nil {
			a = f.onExpire(n, in)
		}
		return &a, nil
	}).Maybe()
	env.OnActivity(st.CancelApproval, mock.Anything, mock.Anything).Return(func(_ context.Context, id uint) error {
		rec.add(func() { f.cancels = append(f.cancels, id) })
		return nil
	}).Maybe()
	return env, rec, f
}

func gateInput(mut func(*berth.ApprovalRequest)) ApprovalGateInput {
	req := berth.ApprovalRequest{Step: "approve prod", Roles: []berth.Role{berth.RoleApprover}, Quorum: 1, SeparateDuties: true,
		RequireComment: true, StartedBy: "dev", TenantID: 3, EnvironmentID: 4, Timeout: time.Hour, OnTimeout: berth.OnTimeoutFail,
		Summary: "shop 1.4.1 → 1.4.2"}
	if mut != nil {
		mut(&req)
	}
	return ApprovalGateInput{RunID: 9, Approval: req}
}

func signalAt(env *testsuite.TestWorkflowEnvironment, after time.Duration, d berth.ApprovalDecision) {
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(ApprovalSignal, d) }, after)
}

func TestApprovalGateApproved(t *testing.T) {
	env, rec, f := newGateEnv(t)
	signalAt(env, 10*time.Minute, berth.ApprovalDecision{ApprovalID: 42, State: berth.ApprovalApproved, By: []string{"bob"}, Comment: "ship it"})

	env.ExecuteWorkflow(ApprovalGateName, gateInput(nil))

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res ApprovalGateResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, berth.ApprovalOutcome{ApprovalID: 42, State: berth.ApprovalApproved, By: []string{"bob"}, Comment: "ship it"}, res.Outcome)
	require.Equal(t, []string{"approve prod waiting", "approve prod done", "released running", "released done"}, rec.stepLog())
	require.Equal(t, berth.RunSucceeded, rec.onlyFinish(t).Status)
	require.Len(t, f.created, 1)
	c := f.created[0]
	require.Equal(t, uint(9), c.RunID)
	require.Equal(t, []berth.Role{berth.RoleApprover}, c.Roles)
	require.True(t, c.SeparateDuties && c.RequireComment)
	require.Equal(t, "dev", c.StartedBy)
	require.Equal(t, "shop 1.4.1 → 1.4.2", c.Summary)
	require.NotNil(t, c.DeadlineAt)
	require.Empty(t, f.expires, "the timer never fired")
}

func TestApprovalGateRejected(t *testing.T) {
	env, rec, _ := newGateEnv(t)
	signalAt(env, time.Minute, berth.ApprovalDecision{ApprovalID: 42, State: berth.ApprovalRejected, By: []string{"carol"}, Comment: "not on a Friday"})

	env.ExecuteWorkflow(ApprovalGateName, gateInput(nil))

	err := env.GetWorkflowError()
	require.Error(t, err)
	require.Equal(t, berth.ErrApprovalRejected, appError(t, err).Type())
	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunFailed, fin.Status)
	require.Equal(t, "rejected by carol: not on a Friday", fin.Error)
	require.Equal(t, []string{"approve prod waiting", "approve prod failed"}, rec.stepLog())
}

// The first terminal decision for this approval wins: a signal for another
// approval, a non-terminal one, a repeat and a late reject change nothing.
func TestApprovalGateIgnoresDuplicateAndForeignSignals(t *testing.T) {
	env, rec, _ := newGateEnv(t)
	signalAt(env, time.Minute, berth.ApprovalDecision{ApprovalID: 41, State: berth.ApprovalRejected, By: []string{"mallory"}})
	signalAt(env, 2*time.Minute, berth.ApprovalDecision{ApprovalID: 42, State: berth.ApprovalPending, By: []string{"bob"}})
	signalAt(env, 3*time.Minute, berth.ApprovalDecision{ApprovalID: 42, State: berth.ApprovalApproved, By: []string{"bob", "carol"}})
	signalAt(env, 3*time.Minute, berth.ApprovalDecision{ApprovalID: 42, State: berth.ApprovalApproved, By: []string{"bob", "carol"}})
	signalAt(env, 3*time.Minute, berth.ApprovalDecision{ApprovalID: 42, State: berth.ApprovalRejected, By: []string{"dave"}})

	env.ExecuteWorkflow(ApprovalGateName, gateInput(func(r *berth.ApprovalRequest) { r.Quorum = 2 }))

	require.NoError(t, env.GetWorkflowError())
	var res ApprovalGateResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, []string{"bob", "carol"}, res.Outcome.By)
	require.Equal(t, berth.RunSucceeded, rec.onlyFinish(t).Status)
}

func TestApprovalGateQuorumIsAskedOfTheStore(t *testing.T) {
	env, _, f := newGateEnv(t)
	signalAt(env, time.Minute, berth.ApprovalDecision{ApprovalID: 42, State: berth.ApprovalApproved, By: []string{"bob", "carol"}})
	env.ExecuteWorkflow(ApprovalGateName, gateInput(func(r *berth.ApprovalRequest) { r.Quorum = 2 }))
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, 2, f.created[0].Quorum)
}

func TestApprovalGateTimeoutFails(t *testing.T) {
	env, rec, f := newGateEnv(t)
	env.ExecuteWorkflow(ApprovalGateName, gateInput(nil))

	err := env.GetWorkflowError()
	require.Error(t, err)
	require.Equal(t, berth.ErrApprovalTimedOut, appError(t, err).Type())
	require.Equal(t, []activities.ExpireInput{{ApprovalID: 42}}, f.expires)
	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunFailed, fin.Status)
	require.Contains(t, fin.Error, "not decided within 1h0m0s; run failed")
}

func TestApprovalGateTimeoutAborts(t *testing.T) {
	env, rec, _ := newGateEnv(t)
	env.ExecuteWorkflow(ApprovalGateName, gateInput(func(r *berth.ApprovalRequest) { r.OnTimeout = berth.OnTimeoutAbort }))

	err := env.GetWorkflowError()
	require.Equal(t, berth.ErrApprovalAborted, appError(t, err).Type())
	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunCancelled, fin.Status)
	require.Contains(t, fin.Error, "run aborted")
}

func TestApprovalGateEscalatesThenApproved(t *testing.T) {
	env, rec, f := newGateEnv(t)
	f.onExpire = func(n int, in activities.ExpireInput) berth.Approval {
		return berth.Approval{ID: in.ApprovalID, State: berth.ApprovalEscalated, Roles: in.EscalateTo}
	}
	// After the first hour nobody decided; a release manager approves 30 minutes into the escalation.
	signalAt(env, 90*time.Minute, berth.ApprovalDecision{ApprovalID: 42, State: berth.ApprovalApproved, By: []string{"rm"}})

	env.ExecuteWorkflow(ApprovalGateName, gateInput(func(r *berth.ApprovalRequest) {
		r.OnTimeout, r.EscalateTo = berth.OnTimeoutEscalate, []berth.Role{berth.RoleReleaseManager}
	}))

	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []activities.ExpireInput{{ApprovalID: 42, EscalateTo: []berth.Role{berth.RoleReleaseManager}}}, f.expires)
	require.Equal(t, []string{"approve prod waiting", "approve prod waiting", "approve prod done", "released running", "released done"}, rec.stepLog())
	require.Equal(t, berth.RunSucceeded, rec.onlyFinish(t).Status)
}

func TestApprovalGateEscalatedThenTimesOut(t *testing.T) {
	env, rec, f := newGateEnv(t)
	f.onExpire = func(n int, in activities.ExpireInput) berth.Approval {
		if n == 1 {
			return berth.Approval{ID: in.ApprovalID, State: berth.ApprovalEscalated}
		}
		return berth.Approval{ID: in.ApprovalID, State: berth.ApprovalTimedOut}
	}
	env.ExecuteWorkflow(ApprovalGateName, gateInput(func(r *berth.ApprovalRequest) {
		r.OnTimeout, r.EscalateTo = berth.OnTimeoutEscalate, []berth.Role{berth.RoleReleaseManager}
	}))

	require.Equal(t, berth.ErrApprovalTimedOut, appError(t, env.GetWorkflowError()).Type())
	require.Len(t, f.expires, 2)
	require.Nil(t, f.expires[1].EscalateTo, "escalation happens once")
	require.Equal(t, berth.RunFailed, rec.onlyFinish(t).Status)
}

// A decision the server committed just before the timer fired, whose signal
// had not arrived yet, wins: the database says approved.
func TestApprovalGateDecisionBeatsTimer(t *testing.T) {
	env, rec, f := newGateEnv(t)
	f.onExpire = func(int, activities.ExpireInput) berth.Approval {
		return berth.Approval{ID: 42, State: berth.ApprovalApproved,
			Decisions: []berth.Decision{{Approver: "bob", Decision: berth.DecisionApprove, Comment: "just in time"}}}
	}
	env.ExecuteWorkflow(ApprovalGateName, gateInput(nil))

	require.NoError(t, env.GetWorkflowError())
	var res ApprovalGateResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, []string{"bob"}, res.Outcome.By)
	require.Equal(t, "just in time", res.Outcome.Comment)
	require.Equal(t, berth.RunSucceeded, rec.onlyFinish(t).Status)
}

func TestApprovalGateCancelledWhileWaiting(t *testing.T) {
	env, rec, f := newGateEnv(t)
	env.RegisterDelayedCallback(env.CancelWorkflow, 5*time.Minute)
	env.ExecuteWorkflow(ApprovalGateName, gateInput(nil))

	require.Error(t, env.GetWorkflowError())
	require.Equal(t, []uint{42}, f.cancels, "the approval leaves every inbox")
	require.Equal(t, berth.RunCancelled, rec.onlyFinish(t).Status)
	require.Equal(t, []string{"approve prod waiting", "approve prod failed"}, rec.stepLog())
}
