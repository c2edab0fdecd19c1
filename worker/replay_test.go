package worker

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/codec"
	"github.com/stretchr/testify/require"
	sdkworker "go.temporal.io/sdk/worker"
)

// TestReplayRecordedHistories replays every history recorded from real runs
// (testdata/histories, written by `make record-histories`) against today's
// workflow code under the registered names. A change that would break a
// running workflow fails here; such changes go behind workflow.GetVersion.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "testdata", "histories", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no recorded histories: run make record-histories")
	// Histories recorded since payloads are encrypted were sealed with the
	// harness's test key; older ones are plain and pass through the codec.
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "histories", "payload.key"))
	require.NoError(t, err)
	keys, err := codec.ParseKeys(string(raw))
	require.NoError(t, err)
	payloads, err := codec.New(keys...)
	require.NoError(t, err)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := sdkworker.NewWorkflowReplayerWithOptions(sdkworker.WorkflowReplayerOptions{DataConverter: payloads.DataConverter()})
			require.NoError(t, err)
			RegisterWorkflows(r)
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, f))
		})
	}
}
