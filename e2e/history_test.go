package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// recordHistory writes a finished workflow's history to testdata/histories
// when BERTH_RECORD_HISTORIES=1, so the replay test guards it from then on.
func (hs *harness) recordHistory(t testing.TB, workflowID, runID, name string) {
	t.Helper()
	if os.Getenv("BERTH_RECORD_HISTORIES") != "1" {
		return
	}
	hs.writeHistory(t, workflowID, runID, filepath.Join(repoRoot(), "testdata", "histories", name+".json"))
}

// writeHistory saves a workflow's history as JSON (the form replay reads).
func (hs *harness) writeHistory(t testing.TB, workflowID, runID, path string) {
	t.Helper()
	it := hs.tc.GetWorkflowHistory(context.Background(), workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	hist := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		hist.Events = append(hist.Events, ev)
	}
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(hist)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o644))
}

// workflowResult waits for a workflow to end and decodes its result with
// the test key the berth processes seal payloads with.
func (hs *harness) workflowResult(t testing.TB, workflowID, runID string, out any) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, hs.tc.GetWorkflow(ctx, workflowID, runID).Get(ctx, nil))
	it := hs.tc.GetWorkflowHistory(ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT)
	require.True(t, it.HasNext())
	ev, err := it.Next()
	require.NoError(t, err)
	done := ev.GetWorkflowExecutionCompletedEventAttributes()
	require.NotNil(t, done, "%s did not complete: %s", workflowID, ev.GetEventType())
	require.NoError(t, hs.payloads.DataConverter().FromPayloads(done.GetResult(), out))
}
