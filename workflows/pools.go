package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/lb"
)

// lbPools names an application's load-balancer pools and the weight its
// servers carry, for the steps that move servers between states.
type lbPools struct {
	appID   uint
	subject string
	weight  int
}

// plan reads which pools hold the instances.
func (p lbPools) plan(ctx workflow.Context, insts []berth.PlannedInstance) (activities.UnexposePlan, error) {
	var st *activities.Store
	var plan activities.UnexposePlan
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	err := workflow.ExecuteLocalActivity(lctx, st.PlanUnexpose, activities.UnexposeInput{ApplicationID: p.appID,
		Subject: p.subject, Instances: insts}).Get(ctx, &plan)
	return plan, err
}

// drain takes instances out of new traffic, pool by pool, and waits until
// their sessions end or timeout passes. It returns the plan it drained, so a
// caller can put the servers back.
func (p lbPools) drain(ctx workflow.Context, insts []berth.PlannedInstance, timeout time.Duration) (activities.UnexposePlan, error) {
	var lbA *activities.LB
	plan, err := p.plan(ctx, insts)
	if err != nil {
		return plan, err
	}
	for _, pool := range plan.Pools {
		actx := workflow.WithActivityOptions(ctx, withQueue(lbOptions, pool.Region))
		if err := onRegion(actx, lbA.SetServers, p.servers(pool, lb.StateDrain)).Get(ctx, nil); err != nil {
			return plan, err
		}
		dctx := workflow.WithActivityOptions(ctx, withQueue(drainOptions, pool.Region))
		var drained bool
		if err := onRegion(dctx, lbA.WaitDrained, activities.WaitDrainedInput{Backend: pool.Backend, Names: pool.Names,
			Timeout: timeout}).Get(ctx, &drained); err != nil {
			return plan, err
		}
	}
	return plan, nil
}

// set puts planned servers in a state, pool by pool, and fails at the
// first pool that cannot be set: a step that promises a state must not end
// without it.
func (p lbPools) set(ctx workflow.Context, plan activities.UnexposePlan, state string) error {
	var lbA *activities.LB
	for _, pool := range plan.Pools {
		actx := workflow.WithActivityOptions(ctx, withQueue(lbOptions, pool.Region))
		if err := onRegion(actx, lbA.SetServers, p.servers(pool, state)).Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

// restore is set, best effort: a pool that cannot be set is logged, and
// the others are still set.
func (p lbPools) restore(ctx workflow.Context, plan activities.UnexposePlan, state string) {
	for _, pool := range plan.Pools {
		if err := p.set(ctx, activities.UnexposePlan{Pools: []activities.PoolRemoval{pool}}, state); err != nil {
			workflow.GetLogger(ctx).Error("servers not set", "backend", pool.Backend, "state", state, "error", err)
		}
	}
}

func (p lbPools) servers(pool activities.PoolRemoval, state string) activities.ServersInput {
	servers := make([]lb.Server, 0, len(pool.Names))
	for _, n := range pool.Names {
		servers = append(servers, lb.Server{Name: n, Weight: p.weight, State: state})
	}
	return activities.ServersInput{Backend: pool.Backend, Servers: servers}
}

func (in ReleaseVersionInput) pools() lbPools {
	return lbPools{appID: in.ApplicationID, subject: in.subject(), weight: in.LB.Weight}
}

// drain takes instances out of new traffic and waits for their sessions.
func drain(ctx workflow.Context, in ReleaseVersionInput, insts []berth.PlannedInstance) error {
	_, err := in.pools().drain(ctx, insts, in.DrainTimeout)
	return err
}

// setServers puts instances in a load-balancer state, best effort.
func setServers(ctx workflow.Context, in ReleaseVersionInput, insts []berth.PlannedInstance, state string) {
	plan, err := in.pools().plan(ctx, insts)
	if err != nil {
		return
	}
	in.pools().restore(ctx, plan, state)
}

// waitServersUp waits until the load balancer reports the instances ready
// (health checks passing): a restarted or new instance may be marked down
// for a moment, and the next batch must not leave rotation before it is up.
func waitServersUp(ctx workflow.Context, in ReleaseVersionInput, insts []berth.PlannedInstance) error {
	plan, err := in.pools().plan(ctx, insts)
	if err != nil {
		return err
	}
	return waitPlanUp(ctx, plan, in.HealthTimeout)
}
