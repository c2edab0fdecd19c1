package server

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/workflows"
)

// A session's workflow may run as long as the longest session: the one-
// minute bound of a read's workflow once cut every terminal after a minute.
func TestTerminalWorkflowOutlivesTheLongestSession(t *testing.T) {
	o := terminalStartOptions("abc")
	require.Equal(t, workflows.TerminalSessionID("abc"), o.ID)
	require.Equal(t, workflows.CentralTaskQueue, o.TaskQueue)
	require.Greater(t, o.WorkflowExecutionTimeout, berth.TerminalMax)
	require.Greater(t, o.WorkflowExecutionTimeout, readOptions("x").WorkflowExecutionTimeout)
}
