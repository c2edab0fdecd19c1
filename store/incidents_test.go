package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// A failed run opens one incident per subject and family, a second failure
// counts in it, a success of the family resolves it, and a failure after
// that is a new ticket whose delivery resolves the old one first.
func TestRunIncidentsOpenCountResolveReopen(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newPlanWorld(t, st)
		app, run := beginDeploy(t, st, w.env, "shop")
		require.NoError(t, st.FinishRun(ctx, run.ID, berth.RunFailed, "no host had room"))
		pending, err := st.PendingIncidents(ctx, 10)
		require.NoError(t, err)
		require.Len(t, pending, 1)
		n := pending[0]
		require.Equal(t, "run-failed/app:shop#1", n.TicketKey)
		require.Equal(t, berth.IncidentOpen, n.State)
		require.Equal(t, "no host had room", n.Detail)
		require.Equal(t, 1, n.Occurrences)
		require.NoError(t, st.MarkIncidentSent(ctx, n))
		pending, err = st.PendingIncidents(ctx, 10)
		require.NoError(t, err)
		require.Empty(t, pending, "delivered")

		second := redeploy(t, st, w.env, app)
		require.NoError(t, st.FinishRun(ctx, second.ID, berth.RunFailed, "still no room"))
		pending, err = st.PendingIncidents(ctx, 10)
		require.NoError(t, err)
		require.Len(t, pending, 1)
		require.Equal(t, 2, pending[0].Occurrences)
		require.Equal(t, "run-failed/app:shop#1", pending[0].TicketKey, "the same ticket, updated")

		// A failed delivery waits before it is tried again.
		require.NoError(t, st.MarkIncidentFailed(ctx, pending[0].ID, "503 busy"))
		due, err := st.PendingIncidents(ctx, 10)
		require.NoError(t, err)
		require.Empty(t, due, "backing off")
		incs, err := st.Incidents(ctx, store.IncidentFilter{State: berth.IncidentOpen})
		require.NoError(t, err)
		require.Len(t, incs, 1)
		require.Equal(t, "503 busy", incs[0].LastError)
		require.Equal(t, 1, incs[0].Attempts)

		good := redeploy(t, st, w.env, app)
		require.NoError(t, st.FinishRun(ctx, good.ID, berth.RunSucceeded, ""))
		incs, err = st.Incidents(ctx, store.IncidentFilter{})
		require.NoError(t, err)
		require.Len(t, incs, 1)
		require.Equal(t, berth.IncidentResolved, incs[0].State)
		require.Contains(t, incs[0].Resolution, "succeeded")

		// Back again after it was resolved: a new ticket.
		third := redeploy(t, st, w.env, app)
		require.NoError(t, st.FinishRun(ctx, third.ID, berth.RunFailed, "again"))
		incs, err = st.Incidents(ctx, store.IncidentFilter{State: berth.IncidentOpen})
		require.NoError(t, err)
		require.Len(t, incs, 1)
		require.Equal(t, "run-failed/app:shop#2", incs[0].TicketKey())
		require.Equal(t, 1, incs[0].Occurrences)
		pending, err = st.PendingIncidents(ctx, 10)
		require.NoError(t, err)
		require.Len(t, pending, 1)
		require.Equal(t, "run-failed/app:shop#1", pending[0].ResolveFirst, "ticket 1 was told open and never resolved: it is resolved before ticket 2 opens")

		// A cancelled run tells nobody.
		fourth := redeploy(t, st, w.env, app)
		require.NoError(t, st.FinishRun(ctx, fourth.ID, berth.RunCancelled, "by alice"))
		incs, err = st.Incidents(ctx, store.IncidentFilter{})
		require.NoError(t, err)
		require.Len(t, incs, 1)
		require.Equal(t, 1, incs[0].Occurrences)
	})
}

// Findings and alerts: a host down opens, its return resolves; a firing
// alert repeated is one occurrence, its resolution resolves it.
func TestFindingAndAlertIncidents(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		require.NoError(t, st.RecordFindings(ctx, []berth.Finding{{Kind: berth.FindingHostDown, Host: "h9", Target: "host", Detail: "3 probes unanswered"}}))
		require.NoError(t, st.RecordAlerts(ctx, []berth.AlertNotice{{Fingerprint: "abc", Firing: true, Title: "DiskFull", Severity: berth.SeverityMajor,
			Labels: map[string]string{"alertname": "DiskFull"}}}))
		require.NoError(t, st.RecordAlerts(ctx, []berth.AlertNotice{{Fingerprint: "abc", Firing: true, Title: "DiskFull",
			Labels: map[string]string{"alertname": "DiskFull"}}}))
		open, err := st.Incidents(ctx, store.IncidentFilter{State: berth.IncidentOpen})
		require.NoError(t, err)
		require.Len(t, open, 2)
		byKind := map[berth.IncidentKind]store.Incident{}
		for _, in := range open {
			byKind[in.Kind] = in
		}
		require.Equal(t, berth.SeverityCritical, byKind[berth.IncidentHostDown].Severity)
		require.Equal(t, 1, byKind[berth.IncidentAlert].Occurrences, "a repeated firing alert is one occurrence")

		require.NoError(t, st.RecordFindings(ctx, []berth.Finding{{Kind: berth.FindingHostBack, Host: "h9", Target: "host", Detail: "answers"}}))
		require.NoError(t, st.RecordAlerts(ctx, []berth.AlertNotice{{Fingerprint: "abc", Labels: map[string]string{"alertname": "DiskFull"}}}))
		open, err = st.Incidents(ctx, store.IncidentFilter{State: berth.IncidentOpen})
		require.NoError(t, err)
		require.Empty(t, open)
		pending, err := st.PendingIncidents(ctx, 10)
		require.NoError(t, err)
		require.Len(t, pending, 2, "never delivered: the resolutions are still told")
	})
}

// An approval nobody decided and a firewall ticket nobody confirmed each
// open an incident on the run's subject; the next good run there clears both.
func TestApprovalAndFirewallTicketIncidents(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := newPlanWorld(t, st)
		app, run := beginDeploy(t, st, w.env, "shop")
		a := newApproval(t, st, run.ID, nil)
		_, err := st.ExpireApproval(ctx, a.ID, nil)
		require.NoError(t, err)
		require.NoError(t, st.RecordStep(ctx, berth.StepEvent{RunID: run.ID, Name: "firewall ticket", State: berth.StepWaiting, At: time.Now()}))
		require.NoError(t, st.RecordStep(ctx, berth.StepEvent{RunID: run.ID, Name: "firewall ticket", State: berth.StepFailed,
			Error: "firewall change request for 2 openings was not confirmed within 1h0m0s", At: time.Now()}))
		require.NoError(t, st.FinishRun(ctx, run.ID, berth.RunFailed, "not confirmed"))
		open, err := st.Incidents(ctx, store.IncidentFilter{State: berth.IncidentOpen})
		require.NoError(t, err)
		kinds := map[berth.IncidentKind]store.Incident{}
		for _, in := range open {
			kinds[in.Kind] = in
		}
		require.Len(t, kinds, 3, "%+v", open)
		require.Contains(t, kinds[berth.IncidentApprovalTimeout].Title, "timed out")
		require.Contains(t, kinds[berth.IncidentFirewallTicket].Detail, "not confirmed within 1h0m0s")
		require.Equal(t, "shop", kinds[berth.IncidentRunFailed].Subject)

		good := redeploy(t, st, w.env, app)
		require.NoError(t, st.FinishRun(ctx, good.ID, berth.RunSucceeded, ""))
		open, err = st.Incidents(ctx, store.IncidentFilter{State: berth.IncidentOpen})
		require.NoError(t, err)
		require.Empty(t, open)
	})
}

// A run on a long subject (an instance's) still finishes: its incident key
// is kept within its column.
func TestLongSubjectIncident(t *testing.T) {
	forEachBackend(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		long := strings.Repeat("a", 60) + "/dev/" + strings.Repeat("b", 60) + "/web/" + strings.Repeat("c", 59) + "-1"
		require.Len(t, long, 191, "as long as a run's subject may be")
		run := &store.Run{Kind: berth.KindRestart, WorkflowID: "restart-long", Subject: long, StartedBy: "alice"}
		require.NoError(t, st.DB().Create(run).Error)
		require.NoError(t, st.FinishRun(ctx, run.ID, berth.RunFailed, "no"))
		incs, err := st.Incidents(ctx, store.IncidentFilter{State: berth.IncidentOpen})
		require.NoError(t, err)
		require.Len(t, incs, 1)
		require.LessOrEqual(t, len(incs[0].Key), 191)
		require.Contains(t, incs[0].Key, "run-failed/instance:aaa")
	})
}
