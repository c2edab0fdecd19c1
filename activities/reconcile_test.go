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
}

func (f *fakeRuns) OpenRuns(context.Context, time.Time) ([]berth.OpenRun, error) { return f.open, nil }
func (f *fakeRuns) AbandonRun(_ context.Context, id uint) error {
	f.abandoned = append(f.abandoned, id)
	return nil
}

type fakeStates map[string]error

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
