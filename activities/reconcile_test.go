package activities

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
)

type fakeRuns struct {
	ReconcileRecords
	open      []berth.OpenRun
	abandoned []uint
	stranded  []berth.StrandedDecision
	terminals []string
	ended     []string
}

func (f *fakeRuns) OpenTerminalSessions(context.Context, time.Time) ([]string, error) {
	return f.terminals, nil
}
func (f *fakeRuns) AbandonTerminalSession(_ context.Context, id, _ string) error {
	f.ended = append(f.ended, id)
	return nil
}

func (f *fakeRuns) OpenRuns(context.Context, time.Time) ([]berth.OpenRun, error) { return f.open, nil }
func (f *fakeRuns) AbandonRun(_ context.Context, id uint) error {
	f.abandoned = append(f.abandoned, id)
	return nil
}

func (f *fakeRuns) RecordVolumeUse(context.Context, uint, []berth.VolumeUse, time.Time) ([]berth.VolumeUse, error) {
	return nil, nil
}

func (f *fakeRuns) StrandedDecisions(context.Context, time.Time) ([]berth.StrandedDecision, error) {
	return f.stranded, nil
}

type fakeStates map[string]error

// Signal fails for a workflow mapped to an error and records the others.
func (f fakeStates) Signal(_ context.Context, wf, name string, arg any) error {
	if err := f[wf]; err != nil {
		return err
	}
	f[wf+"/"+name] = nil
	return nil
}

func (f fakeStates) Closed(_ context.Context, wf, _ string) (bool, error) {
	err, known := f[wf]
	return known && err == nil, err
}

// A run Temporal cannot answer for is reported and the sweep goes on to
// close the runs whose workflows did end.
func TestSweepRunsGoesOnPastARunTemporalCannotAnswer(t *testing.T) {
	recs := &fakeRuns{open: []berth.OpenRun{{ID: 1, WorkflowID: "a"}, {ID: 2, WorkflowID: "b"}, {ID: 3, WorkflowID: "c"}}}
	r := &Reconcile{Records: recs, Workflows: fakeStates{"a": errors.New("unavailable"), "b": nil}}
	fs, err := r.SweepRuns(context.Background(), SweepRunsInput{})
	require.NoError(t, err)
	require.Len(t, fs, 2)
	require.Equal(t, "run 1", fs[0].Target)
	require.Contains(t, fs[0].Error, "unavailable")
	require.Equal(t, "run 2", fs[1].Target)
	require.Empty(t, fs[1].Error)
	require.Equal(t, []uint{2}, recs.abandoned, "only the run whose workflow ended is closed; c still runs")
}

// Each stranded decision is sent to its run again and reported; a run that
// cannot be signalled is reported with the error, and the others are sent.
func TestResendDecisionsSignalsEachWaitingRun(t *testing.T) {
	recs := &fakeRuns{stranded: []berth.StrandedDecision{
		{RunID: 7, WorkflowID: "gate/a", Decision: berth.ApprovalDecision{ApprovalID: 3, State: berth.ApprovalApproved, By: []string{"bob"}}},
		{RunID: 8, WorkflowID: "gate/b", Decision: berth.ApprovalDecision{ApprovalID: 4, State: berth.ApprovalRejected, By: []string{"carol"}}},
	}}
	states := fakeStates{"gate/b": errors.New("unavailable")}
	r := &Reconcile{Records: recs, Workflows: states}
	fs, err := r.ResendDecisions(context.Background(), ResendDecisionsInput{Signal: "approval"})
	require.NoError(t, err)
	require.Len(t, fs, 2)
	require.Equal(t, berth.Finding{Kind: berth.FindingDecisionResent, Target: "run 7",
		Detail: "approval 3 was approved by bob in the records, but its run still waited; the decision was sent again"}, fs[0])
	require.Contains(t, fs[1].Error, "unavailable")
	_, sent := states["gate/a/approval"]
	require.True(t, sent, "run 7's workflow got the approval signal")
	_, sent = states["gate/b/approval"]
	require.False(t, sent)
}

// A terminal session whose workflow has closed without its server recording
// the end is ended; one whose workflow runs, or that Temporal cannot answer
// for, is left.
func TestSweepTerminalsEndsTheSessionsOfDeadServers(t *testing.T) {
	recs := &fakeRuns{terminals: []string{"a1", "b2", "c3"}}
	r := &Reconcile{Records: recs, Workflows: fakeStates{"terminal/a1": nil, "terminal/b2": errors.New("unavailable")}}
	fs, err := r.SweepTerminals(context.Background(), SweepTerminalsInput{WorkflowPrefix: "terminal/"})
	require.NoError(t, err)
	require.Equal(t, []string{"a1"}, recs.ended)
	require.Len(t, fs, 1)
	require.Equal(t, berth.FindingTerminalClosed, fs[0].Kind)
	require.Equal(t, "terminal session a1", fs[0].Target)
}
