package server

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/mocks"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/workflows"
)

// No run dies of a Temporal timer: a run may wait for an approval or a
// firewall ticket for weeks, and a timeout would end it without its undo.
func TestRunsOutliveTheirLongestPlannedWait(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open("sqlite", filepath.Join(t.TempDir(), "berth.db"))
	require.NoError(t, err)
	require.NoError(t, st.Migrate(ctx))
	t.Cleanup(func() { _ = st.Close() })
	tc := &mocks.Client{}
	wr := &mocks.WorkflowRun{}
	wr.On("GetRunID").Return("temporal-run")
	var opts client.StartWorkflowOptions
	tc.On("ExecuteWorkflow", mock.Anything, mock.Anything, workflows.ApprovalGateName, mock.Anything).
		Run(func(args mock.Arguments) { opts = args.Get(1).(client.StartWorkflowOptions) }).Return(wr, nil)
	s := New(Config{Token: "bootstrap-token-0123456789abcdef"}, st, tc, slog.New(slog.NewTextHandler(io.Discard, nil)))

	run := &store.Run{Kind: berth.KindGate, WorkflowID: "gate/acme/prod/g", Subject: "acme/prod/g", StartedBy: "alice"}
	require.NoError(t, st.CreateRun(ctx, run, run.WorkflowID))
	require.NoError(t, s.startRun(ctx, run, workflows.ApprovalGateName, workflows.ApprovalGateInput{RunID: run.ID}))
	require.Equal(t, run.WorkflowID, opts.ID)
	for name, d := range map[string]time.Duration{"execution": opts.WorkflowExecutionTimeout, "run": opts.WorkflowRunTimeout} {
		require.True(t, d == 0 || d > berth.MaxPlannedWait, "the %s timeout (%v) would end runs that wait as planned", name, d)
	}
}
