package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/compose"
)

// HealInstanceName is the registered name of HealInstance.
const HealInstanceName = "HealInstance"

// HealInstanceInput is one heal run: start an instance whose container
// exited, as HealPass found it.
type HealInstanceInput struct {
	RunID         uint                  `json:"runId"`
	ApplicationID uint                  `json:"applicationId"`
	App           string                `json:"app"` // tenant/env/app
	Instance      berth.PlannedInstance `json:"instance"`
	HealthTimeout time.Duration         `json:"healthTimeout"`
	// Restart: the container runs but fails its health check, so it is
	// restarted rather than started.
	Restart bool `json:"restart,omitempty"`
}

// HealInstanceID is the workflow id of an instance's heal run.
func HealInstanceID(instance string) string { return "heal/" + instance }

// HealInstance starts the exited container again (or restarts one that
// runs but fails its health check), waits until it answers,
// and waits until the load balancer's own checks take it back. Its server
// was never taken out of rotation (HAProxy's checks marked it down), so
// nothing in the load balancer is changed. It holds the application's
// lock, so no release or scale races it.
func HealInstance(ctx workflow.Context, in HealInstanceInput) error {
	ctx, r, err := newRun(ctx, in.RunID)
	if err != nil {
		return err
	}
	step, action := "start", berth.KindStart
	if in.Restart {
		step, action = "restart", berth.KindRestart
	}
	err = r.step(ctx, step, func() error {
		var d *activities.Docker
		actx := workflow.WithActivityOptions(ctx, withQueue(instanceOptions, in.Instance.Host.Region))
		return onRegion(actx, d.ActOnInstance, activities.InstanceActionInput{Instance: in.Instance,
			Service: compose.ServiceSpec{Name: in.Instance.Service}, Action: action, Since: workflow.Now(ctx),
			HealthTimeout: in.HealthTimeout.Milliseconds()}).Get(ctx, nil)
	})
	if err == nil {
		err = r.step(ctx, "ready", func() error {
			pools := lbPools{appID: in.ApplicationID, subject: in.App}
			plan, err := pools.plan(ctx, []berth.PlannedInstance{in.Instance})
			if err != nil {
				return err
			}
			return waitPlanUp(ctx, plan, in.HealthTimeout)
		})
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if err != nil {
		status := berth.RunFailed
		if isCancel(ctx, err) {
			status = berth.RunCancelled
		}
		r.finish(dctx, activities.FinishInput{Status: status, Error: r.status.Error})
		return err
	}
	r.status.Step = "done"
	r.finish(dctx, activities.FinishInput{Status: berth.RunSucceeded})
	return nil
}
