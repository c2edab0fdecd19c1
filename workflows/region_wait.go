package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
)

// regionWaitChange: a region activity that no worker picks up no longer
// fails the run at its schedule-to-start timeout; the run says it waits
// for that region's worker and goes on when the worker returns.
const regionWaitChange = "region-wait"

// regionWaitNotice is how long an activity may sit in its region's queue
// before the run's step says that it waits for the region's worker. A
// region's worker takes a task within milliseconds when it is up, so half a
// minute is a worker that is down, not a busy one; a busy one only makes
// the notice show early, as the activity is then simply asked again.
const regionWaitNotice = 30 * time.Second

type runKey struct{}

// withRun keeps the run in the workflow's context, so that code deep in a
// step (a region activity) can say on the run's step what it waits for.
func withRun(ctx workflow.Context, r *run) workflow.Context {
	return workflow.WithValue(ctx, runKey{}, r)
}

func runOf(ctx workflow.Context) *run {
	r, _ := ctx.Value(runKey{}).(*run)
	return r
}

// onRegion executes a host activity on the task queue that ctx's options
// name. If no worker of that region takes it within regionWaitNotice, the
// run's current step is marked waiting for the region's worker and the
// activity is asked for again with no queue limit: a region whose worker is
// down holds the runs that touch it, it does not fail them, and the runs of
// other regions go on. Cancelling the run ends the wait.
func onRegion(ctx workflow.Context, activity any, args ...any) workflow.Future {
	if workflow.GetVersion(ctx, regionWaitChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return workflow.ExecuteActivity(ctx, activity, args...)
	}
	o := workflow.GetActivityOptions(ctx)
	first := o
	if first.ScheduleToStartTimeout == 0 || first.ScheduleToStartTimeout > regionWaitNotice {
		first.ScheduleToStartTimeout = regionWaitNotice
	}
	f := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, first), activity, args...)
	out, set := workflow.NewFuture(ctx)
	workflow.Go(ctx, func(gctx workflow.Context) {
		err := f.Get(gctx, nil)
		if !queueTimedOut(err) || gctx.Err() != nil {
			set.Chain(f)
			return
		}
		region := strings.TrimPrefix(o.TaskQueue, RegionTaskQueue(""))
		r := runOf(gctx)
		since := workflow.Now(gctx)
		step := r.regionWaitBegins(gctx, region)
		o.ScheduleToStartTimeout = 0 // the region's worker may be down for as long as it takes
		again := workflow.ExecuteActivity(workflow.WithActivityOptions(gctx, o), activity, args...)
		// The wait ends when a worker took the task, which for the workflow
		// shows only as its end; the step says running again then.
		_ = again.Get(gctx, nil)
		r.regionWaitEnds(gctx, region, step, workflow.Now(gctx).Sub(since))
		set.Chain(again)
	})
	return out
}

// queueTimedOut says no worker took the activity in time.
func queueTimedOut(err error) bool {
	var te *temporal.TimeoutError
	return errors.As(err, &te) && te.TimeoutType() == enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START
}

// regionWaitBegins marks the current step waiting for a region's worker,
// once however many of the step's activities wait for it, and returns the
// step's name.
func (r *run) regionWaitBegins(ctx workflow.Context, region string) string {
	if r == nil {
		return ""
	}
	if r.regionWaits == nil {
		r.regionWaits = map[string]int{}
	}
	r.regionWaits[region]++
	if r.regionWaits[region] == 1 && r.status.Step != "" {
		r.recordEvent(ctx, berth.StepEvent{Name: r.status.Step, State: berth.StepWaiting, Detail: WaitingForRegion(region)})
	}
	return r.status.Step
}

// regionWaitEnds marks the step running again once no activity of it waits
// for the region any more.
func (r *run) regionWaitEnds(ctx workflow.Context, region, step string, waited time.Duration) {
	if r == nil {
		return
	}
	r.regionWaits[region]--
	if r.regionWaits[region] > 0 || step == "" {
		return
	}
	r.recordEvent(ctx, berth.StepEvent{Name: step, State: berth.StepRunning,
		Detail: fmt.Sprintf("region %s's worker returned after %s", region, waited.Round(time.Second))})
}

// WaitingForRegion is the step detail of a run held by a region without a worker.
func WaitingForRegion(region string) string {
	return "waiting for region " + region + "'s worker"
}
