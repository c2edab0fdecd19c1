package workflows

import (
	"errors"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
)

// StatusQuery is the query every berth workflow answers with its Status.
const StatusQuery = "status"

// Status is what a running workflow says about itself.
type Status struct {
	Step  string   `json:"step"`
	Done  []string `json:"done"`
	Error string   `json:"error,omitempty"`
}

// run tracks a workflow's steps: it keeps the status query's answer and
// writes each change of step to the store.
type run struct {
	id     uint
	status Status
	// Nil-receiver activity references: the worker's registered ones are used.
	st *activities.Store
	// exposeVersion is the GetVersion of exposeChange for this run; exposed
	// says the expose step began, so an undo must take it back.
	exposeVersion workflow.Version
	exposed       bool
	// meshed says relays were set up between hosts, so an undo removes them.
	meshed bool
	// regionWaits counts, per region, the activities waiting for that
	// region's worker (region_wait.go).
	regionWaits map[string]int
}

// newRun returns ctx with the run in it, for the steps' region activities.
func newRun(ctx workflow.Context, id uint) (workflow.Context, *run, error) {
	r := &run{id: id, status: Status{Done: []string{}}}
	err := workflow.SetQueryHandler(ctx, StatusQuery, func() (Status, error) { return r.status, nil })
	return withRun(ctx, r), r, err
}

func (r *run) record(ctx workflow.Context, name string, state berth.StepState, errMsg string) {
	r.recordEvent(ctx, berth.StepEvent{Name: name, State: state, Error: errMsg})
}

// recordEvent writes a step event; on a cancelled run it writes on a
// disconnected context, so the step's end is never lost.
func (r *run) recordEvent(ctx workflow.Context, ev berth.StepEvent) {
	if ctx.Err() != nil {
		ctx, _ = workflow.NewDisconnectedContext(ctx)
	}
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	name := ev.Name
	ev.RunID, ev.At = r.id, workflow.Now(ctx).UTC()
	// A step record that cannot be written must not fail the deploy itself.
	if err := workflow.ExecuteLocalActivity(lctx, r.st.RecordStep, ev).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("step not recorded", "step", name, "error", err)
	}
}

// step runs fn as a named step, recording its start and end.
func (r *run) step(ctx workflow.Context, name string, fn func() error) error {
	r.status.Step = name
	r.record(ctx, name, berth.StepRunning, "")
	err := fn()
	if err != nil {
		r.status.Error = errorMessage(err)
		// Disconnected so a cancelled run still closes the step it was in;
		// on ctx the record would be cancelled before it is written.
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		r.record(dctx, name, berth.StepFailed, r.status.Error)
		return err
	}
	r.status.Done = append(r.status.Done, name)
	r.record(ctx, name, berth.StepDone, "")
	return nil
}

// finish records the run's outcome; it runs on a disconnected context so a
// cancelled run still closes its record.
func (r *run) finish(ctx workflow.Context, in activities.FinishInput) {
	in.RunID, in.At = r.id, workflow.Now(ctx).UTC()
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	lctx := workflow.WithLocalActivityOptions(dctx, storeOptions)
	if err := workflow.ExecuteLocalActivity(lctx, r.st.Finish, in).Get(dctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("run outcome not recorded", "run", r.id, "error", err)
	}
}

// errorMessage unwraps Temporal's activity error wrappers to the message a
// user can act on.
func errorMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	var canceled *temporal.CanceledError
	if errors.As(err, &canceled) {
		return "cancelled"
	}
	var timeout *temporal.TimeoutError
	if errors.As(err, &timeout) {
		return "timed out: " + timeout.Error()
	}
	return err.Error()
}

func isCancel(ctx workflow.Context, err error) bool {
	return temporal.IsCanceledError(err) || errors.Is(ctx.Err(), workflow.ErrCanceled)
}
