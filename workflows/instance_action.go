package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/compose"
	"github.com/berth-dev/berth/lb"
)

// InstanceActionName is the registered name of InstanceAction.
const InstanceActionName = "InstanceAction"

// InstanceActionInput is a person's restart, stop or start of one instance.
type InstanceActionInput struct {
	RunID         uint   `json:"runId"`
	ApplicationID uint   `json:"applicationId"`
	Tenant        string `json:"tenant"`
	Env           string `json:"env"`
	App           string `json:"app"`
	// Action is berth.KindRestart, KindStop or KindStart.
	Action   berth.RunKind         `json:"action"`
	Instance berth.PlannedInstance `json:"instance"`
	// Service is the instance's service spec, for its health check.
	Service       compose.ServiceSpec `json:"service"`
	HealthTimeout time.Duration       `json:"healthTimeout"`
	DrainTimeout  time.Duration       `json:"drainTimeout"`
	LB            berth.LBSettings    `json:"lb"`
}

// InstanceActionID is the workflow id of an action on an instance; the
// application's lock already keeps a second one from starting.
func InstanceActionID(instance string) string { return "instance/" + instance }

func (in InstanceActionInput) pools() lbPools {
	return lbPools{appID: in.ApplicationID, subject: in.Tenant + "/" + in.Env + "/" + in.App, weight: in.LB.Weight}
}

// InstanceAction restarts, stops or starts one instance without dropping a
// request: drain it in the load balancer and wait for its sessions, act on
// the container, wait until it is healthy, and put it back in rotation once
// the load balancer's own checks pass. A stopped instance stays out of
// rotation (maint) and is recorded as stopped. A failed action puts the
// instance's servers back as they were before the drain, ready, so the
// load balancer's health checks decide again whether it serves.
func InstanceAction(ctx workflow.Context, in InstanceActionInput) error {
	ctx, r, err := newRun(ctx, in.RunID)
	if err != nil {
		return err
	}
	pools := in.pools()
	insts := []berth.PlannedInstance{in.Instance}
	var drained *activities.UnexposePlan
	act := func() error {
		var d *activities.Docker
		actx := workflow.WithActivityOptions(ctx, withQueue(instanceOptions, in.Instance.Host.Region))
		return onRegion(actx, d.ActOnInstance, activities.InstanceActionInput{Instance: in.Instance,
			Service: in.Service, Action: in.Action, Since: workflow.Now(ctx), HealthTimeout: in.HealthTimeout.Milliseconds()}).Get(ctx, nil)
	}
	setState := func(ctx workflow.Context, state berth.State) error {
		lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
		return workflow.ExecuteLocalActivity(lctx, r.st.SetInstanceState, activities.InstanceStateInput{
			Name: in.Instance.Name, State: state}).Get(ctx, nil)
	}
	var steps []namedStep
	if in.Action != berth.KindStart {
		steps = append(steps, namedStep{"drain", func() error {
			plan, err := pools.drain(ctx, insts, in.DrainTimeout)
			drained = &plan
			return err
		}})
	}
	steps = append(steps, namedStep{string(in.Action), func() error {
		if err := act(); err != nil {
			return err
		}
		if in.Action == berth.KindStop {
			if err := setState(ctx, berth.StateStopped); err != nil {
				return err
			}
			plan, err := pools.plan(ctx, insts)
			if err != nil {
				return err
			}
			return pools.set(ctx, plan, lb.StateMaint)
		}
		return setState(ctx, berth.StateRunning)
	}})
	if in.Action != berth.KindStop {
		steps = append(steps, namedStep{"ready", func() error {
			plan, err := pools.plan(ctx, insts)
			if err != nil {
				return err
			}
			if err := pools.set(ctx, plan, lb.StateReady); err != nil {
				return err
			}
			return waitPlanUp(ctx, plan, in.HealthTimeout)
		}})
	}
	for _, s := range steps {
		if err = r.step(ctx, s.name, s.fn); err != nil {
			break
		}
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if err != nil {
		status := berth.RunFailed
		if isCancel(ctx, err) {
			status = berth.RunCancelled
		}
		if drained != nil {
			// Back as before the drain: the load balancer's checks decide.
			pools.restore(dctx, *drained, lb.StateReady)
		}
		r.finish(dctx, activities.FinishInput{Status: status, Error: r.status.Error})
		return err
	}
	r.status.Step = "done"
	r.finish(dctx, activities.FinishInput{Status: berth.RunSucceeded})
	return nil
}

// namedStep is one step of a run whose steps depend on its input.
type namedStep struct {
	name string
	fn   func() error
}

// waitPlanUp waits until the load balancer reports the planned servers ready.
func waitPlanUp(ctx workflow.Context, plan activities.UnexposePlan, timeout time.Duration) error {
	var lbA *activities.LB
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	for _, p := range plan.Pools {
		actx := workflow.WithActivityOptions(ctx, withQueue(drainOptions, p.Region))
		if err := onRegion(actx, lbA.WaitUp, activities.WaitUpInput{Backend: p.Backend, Names: p.Names, Timeout: timeout}).Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}
