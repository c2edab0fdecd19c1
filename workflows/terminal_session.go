package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth/activities"
)

// TerminalSessionName is the registered name of TerminalSession.
const TerminalSessionName = "TerminalSession"

// TerminalSessionInput is the session to run (no secret: the worker proves
// itself to the API's relay with a key of its own).
type TerminalSessionInput = activities.TerminalInput

// TerminalSessionResult is how it ended.
type TerminalSessionResult = activities.TerminalResult

// TerminalSessionID is the workflow id of one session.
func TerminalSessionID(id string) string { return "terminal/" + id }

// TerminalSession holds an interactive session in an instance on a worker of
// its host's region, which runs the exec and dials the API's relay back:
// the API never talks to hosts. One attempt: a retry would run the command
// a second time.
func TerminalSession(ctx workflow.Context, in TerminalSessionInput) (*TerminalSessionResult, error) {
	var d *activities.Docker
	actx := workflow.WithActivityOptions(ctx, withQueue(terminalOptions, in.Instance.Host.Region))
	var res TerminalSessionResult
	err := workflow.ExecuteActivity(actx, d.Terminal, in).Get(ctx, &res)
	return &res, err
}
