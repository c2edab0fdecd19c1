package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

func newApproval(t *testing.T, st *store.Store, runID uint, mut func(*store.Approval)) *store.Approval {
	t.Helper()
	a := &store.Approval{RunID: runID, Step: "approval", TenantID: 7, RoleList: []berth.Role{berth.RoleApprover},
		StartedBy: "dev", SeparateDuties: true, Summary: "shop 1.4.1 → 1.4.2", OnTimeout: "fail"}
	if mut != nil {
		mut(a)
	}
	got, err := st.CreateApproval(context.Background(), a)
	require.NoError(t, err)
	return got
}

var approverOn7 = []store.RoleBinding{{TenantID: 7, Role: berth.RoleApprover}}

func TestApprovalIsIdempotentPerRunStep(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		a := newApproval(t, st, 1, nil)
		b := newApproval(t, st, 1, nil)
		require.Equal(t, a.ID, b.ID, "a retried activity finds the approval it made")
		require.Equal(t, []berth.Role{berth.RoleApprover}, b.RoleList)
		require.Equal(t, berth.ApprovalPending, b.State)
		require.Equal(t, 1, b.Quorum)
	})
}

func TestDecideRules(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		a := newApproval(t, st, 1, func(a *store.Approval) { a.RequireComment = true })
		var denied *store.DeniedError
		var invalid *store.InvalidError

		_, _, err := st.Decide(ctx, store.DecideInput{ApprovalID: a.ID, Approver: "eve", Decision: "approve", Comment: "ok",
			Bindings: []store.RoleBinding{{TenantID: 7, Role: berth.RoleDeveloper}, {TenantID: 8, Role: berth.RoleApprover}}})
		require.ErrorAs(t, err, &denied, "an approver of another tenant may not decide")

		_, _, err = st.Decide(ctx, store.DecideInput{ApprovalID: a.ID, Approver: "dev", Decision: "approve", Comment: "mine", Bindings: approverOn7})
		require.ErrorAs(t, err, &denied)
		require.Contains(t, denied.Msg, "separation of duties")

		_, _, err = st.Decide(ctx, store.DecideInput{ApprovalID: a.ID, Approver: "bob", Decision: "approve", Comment: "  ", Bindings: approverOn7})
		require.ErrorAs(t, err, &invalid)
		require.Contains(t, invalid.Msg, "comment is required")

		_, _, err = st.Decide(ctx, store.DecideInput{ApprovalID: a.ID, Approver: "bob", Decision: "maybe", Bindings: approverOn7})
		require.ErrorAs(t, err, &invalid)

		got, closed, err := st.Decide(ctx, store.DecideInput{ApprovalID: a.ID, Approver: "bob", Decision: "approve", Comment: "looks right",
			Bindings: []store.RoleBinding{{TenantID: 0, Role: berth.RoleApprover}}})
		require.NoError(t, err, "a platform-wide approver may decide")
		require.True(t, closed)
		require.Equal(t, berth.ApprovalApproved, got.State)
		require.NotNil(t, got.DecidedAt)

		_, _, err = st.Decide(ctx, store.DecideInput{ApprovalID: a.ID, Approver: "carol", Decision: "reject", Comment: "late", Bindings: approverOn7})
		ce := requireConflict(t, err)
		require.Contains(t, ce.Msg, "already approved (by bob)")

		_, _, err = st.Decide(ctx, store.DecideInput{ApprovalID: 999, Approver: "bob", Decision: "approve", Bindings: approverOn7})
		require.ErrorIs(t, err, store.ErrNotFound)

		// Rejected by default when separation of duties is off: the starter may decide.
		own := newApproval(t, st, 2, func(a *store.Approval) { a.SeparateDuties = false })
		got, closed, err = st.Decide(ctx, store.DecideInput{ApprovalID: own.ID, Approver: "dev", Decision: "reject", Bindings: approverOn7})
		require.NoError(t, err)
		require.True(t, closed)
		require.Equal(t, berth.ApprovalRejected, got.State)
	})
}

func TestDecideQuorum(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		a := newApproval(t, st, 1, func(a *store.Approval) { a.Quorum = 2 })
		got, closed, err := st.Decide(ctx, store.DecideInput{ApprovalID: a.ID, Approver: "bob", Decision: "approve", Bindings: approverOn7})
		require.NoError(t, err)
		require.False(t, closed)
		require.Equal(t, berth.ApprovalPending, got.State)
		require.Equal(t, 1, got.Approvals())

		_, _, err = st.Decide(ctx, store.DecideInput{ApprovalID: a.ID, Approver: "bob", Decision: "approve", Bindings: approverOn7})
		ce := requireConflict(t, err)
		require.Contains(t, ce.Msg, "already decided", "one person counts once")

		mine, err := st.Approvals(ctx, store.ApprovalFilter{DecidableBy: &store.DecidableBy{Name: "bob", Bindings: approverOn7}})
		require.NoError(t, err)
		require.Empty(t, mine, "bob has decided; it left his inbox")
		theirs, err := st.Approvals(ctx, store.ApprovalFilter{DecidableBy: &store.DecidableBy{Name: "carol", Bindings: approverOn7}})
		require.NoError(t, err)
		require.Len(t, theirs, 1)

		got, closed, err = st.Decide(ctx, store.DecideInput{ApprovalID: a.ID, Approver: "carol", Decision: "approve", Bindings: approverOn7})
		require.NoError(t, err)
		require.True(t, closed)
		require.Equal(t, berth.ApprovalApproved, got.State)
		require.Len(t, got.Decisions, 2)
	})
}

func TestInboxFilter(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		newApproval(t, st, 1, nil)                                                                             // tenant 7, approver
		newApproval(t, st, 2, func(a *store.Approval) { a.TenantID = 8 })                                      // another tenant
		newApproval(t, st, 3, func(a *store.Approval) { a.RoleList = []berth.Role{berth.RoleReleaseManager} }) // another role
		newApproval(t, st, 4, func(a *store.Approval) { a.StartedBy = "bob" })                                 // bob's own run
		inbox := func(name string, bs ...store.RoleBinding) []uint {
			as, err := st.Approvals(ctx, store.ApprovalFilter{DecidableBy: &store.DecidableBy{Name: name, Bindings: bs}})
			require.NoError(t, err)
			ids := []uint{}
			for _, a := range as {
				ids = append(ids, a.RunID)
			}
			return ids
		}
		require.Equal(t, []uint{1}, inbox("bob", approverOn7...))
		require.Equal(t, []uint{1, 4}, inbox("carol", approverOn7...))
		require.Equal(t, []uint{1, 2, 4}, inbox("carol", store.RoleBinding{Role: berth.RoleApprover}))
		require.Equal(t, []uint{3}, inbox("rm", store.RoleBinding{TenantID: 7, Role: berth.RoleReleaseManager}))
		require.Empty(t, inbox("dev", store.RoleBinding{TenantID: 7, Role: berth.RoleDeveloper}))
	})
}

func TestExpireApproval(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		a := newApproval(t, st, 1, nil)
		got, err := st.ExpireApproval(ctx, a.ID, []berth.Role{berth.RoleReleaseManager})
		require.NoError(t, err)
		require.Equal(t, berth.ApprovalEscalated, got.State)
		require.Equal(t, []berth.Role{berth.RoleReleaseManager}, got.RoleList)
		_, _, err = st.Decide(ctx, store.DecideInput{ApprovalID: a.ID, Approver: "bob", Decision: "approve", Bindings: approverOn7})
		var denied *store.DeniedError
		require.ErrorAs(t, err, &denied, "once escalated, only the new roles decide")
		got, err = st.ExpireApproval(ctx, a.ID, []berth.Role{berth.RoleReleaseManager})
		require.NoError(t, err)
		require.Equal(t, berth.ApprovalTimedOut, got.State, "a second timeout ends it")
		_, _, err = st.Decide(ctx, store.DecideInput{ApprovalID: a.ID, Approver: "rm", Decision: "approve",
			Bindings: []store.RoleBinding{{Role: berth.RoleReleaseManager}}})
		ce := requireConflict(t, err)
		require.Contains(t, ce.Msg, "timed out")

		// A decision that committed first wins over the timer.
		b := newApproval(t, st, 2, nil)
		_, _, err = st.Decide(ctx, store.DecideInput{ApprovalID: b.ID, Approver: "bob", Decision: "approve", Bindings: approverOn7})
		require.NoError(t, err)
		got, err = st.ExpireApproval(ctx, b.ID, nil)
		require.NoError(t, err)
		require.Equal(t, berth.ApprovalApproved, got.State)

		c := newApproval(t, st, 3, nil)
		require.NoError(t, st.CancelApproval(ctx, c.ID))
		got, err = st.Approval(ctx, c.ID)
		require.NoError(t, err)
		require.Equal(t, berth.ApprovalCancelled, got.State)
	})
}

// TestDecideRace: approve and reject from different people, and the same
// person twice, at the same moment: exactly one decision closes the approval.
func TestDecideRace(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		for round := 0; round < 5; round++ {
			a := newApproval(t, st, uint(100+round), nil)
			type res struct {
				closed bool
				err    error
			}
			inputs := []store.DecideInput{
				{ApprovalID: a.ID, Approver: "bob", Decision: "approve", Bindings: approverOn7},
				{ApprovalID: a.ID, Approver: "carol", Decision: "reject", Bindings: approverOn7},
				{ApprovalID: a.ID, Approver: "bob", Decision: "approve", Bindings: approverOn7},
				{ApprovalID: a.ID, Approver: "dave", Decision: "approve", Bindings: approverOn7},
			}
			out := make([]res, len(inputs))
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i, in := range inputs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					_, closed, err := st.Decide(ctx, in)
					out[i] = res{closed, err}
				}()
			}
			close(start)
			wg.Wait()
			closedN := 0
			for _, r := range out {
				if r.err == nil && r.closed {
					closedN++
				} else {
					requireConflict(t, r.err)
				}
			}
			require.Equal(t, 1, closedN, "round %d: %+v", round, out)
			got, err := st.Approval(ctx, a.ID)
			require.NoError(t, err)
			require.Len(t, got.Decisions, 1, "the losers' decisions are not recorded")
		}
	})
}

// A decision whose run still records its step as waiting is stranded (the
// API died before signalling it); once the run records the step's outcome,
// or the run has ended, or the decision is younger than the grace, it is not.
func TestStrandedDecisions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		runs := make([]*store.Run, 3)
		for i := range runs {
			runs[i] = &store.Run{Kind: "gate", WorkflowID: fmt.Sprintf("gate/%d", i), Status: berth.RunRunning}
			require.NoError(t, st.CreateRun(ctx, runs[i], ""))
			require.NoError(t, st.RecordStep(ctx, berth.StepEvent{RunID: runs[i].ID, Name: "approval", State: berth.StepWaiting}))
			a := newApproval(t, st, runs[i].ID, func(a *store.Approval) { a.WorkflowID = runs[i].WorkflowID })
			_, closed, err := st.Decide(ctx, store.DecideInput{ApprovalID: a.ID, Approver: "bob", Decision: "approve", Comment: "go", Bindings: approverOn7})
			require.NoError(t, err)
			require.True(t, closed)
		}
		pending := newApproval(t, st, 99, nil)
		require.Equal(t, berth.ApprovalPending, pending.State)

		got, err := st.StrandedDecisions(ctx, time.Now().Add(-time.Hour))
		require.NoError(t, err)
		require.Empty(t, got, "decisions younger than the grace are left to the API's own signal")

		require.NoError(t, st.RecordStep(ctx, berth.StepEvent{RunID: runs[1].ID, Name: "approval", State: berth.StepDone}))
		require.NoError(t, st.FinishRun(ctx, runs[2].ID, berth.RunFailed, "terminated"))
		got, err = st.StrandedDecisions(ctx, time.Now().Add(time.Second))
		require.NoError(t, err)
		require.Equal(t, []berth.StrandedDecision{{RunID: runs[0].ID, WorkflowID: "gate/0",
			Decision: berth.ApprovalDecision{ApprovalID: got[0].Decision.ApprovalID, State: berth.ApprovalApproved, By: []string{"bob"}, Comment: "go"}}}, got)
	})
}

// What the metrics read: open approvals and since when the oldest waits.
func TestOpenApprovals(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		n, oldest, err := st.OpenApprovals(ctx)
		require.NoError(t, err)
		require.Zero(t, n)
		require.True(t, oldest.IsZero())
		first := newApproval(t, st, 1, nil)
		newApproval(t, st, 2, nil)
		n, oldest, err = st.OpenApprovals(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 2, n)
		require.WithinDuration(t, first.CreatedAt, oldest, time.Second)
		require.WithinDuration(t, time.Now(), oldest, time.Minute)
	})
}
