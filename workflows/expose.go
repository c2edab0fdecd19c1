package workflows

import (
	"fmt"
	"time"

	"github.com/berth-dev/berth"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth/activities"
)

// expose puts new instances behind their service's load-balancer pool, opens
// the firewall for them and syncs the CMDB. It returns what it applied so the
// caller can undo it.
func expose(ctx workflow.Context, r *run, in activities.ExposeInput) error {
	var lbA *activities.LB
	var fw *activities.Firewall
	var plan activities.ExposePlan
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	if err := workflow.ExecuteLocalActivity(lctx, r.st.PlanExpose, in).Get(ctx, &plan); err != nil {
		return err
	}
	if len(plan.Pools) > 0 {
		err := r.step(ctx, "load balancer", func() error {
			var futures []workflow.Future
			for _, p := range plan.Pools {
				actx := workflow.WithActivityOptions(ctx, withQueue(lbOptions, p.Region))
				futures = append(futures, onRegion(actx, lbA.EnsurePool, p.Backend))
			}
			if err := waitAll(ctx, futures, nil); err != nil {
				return err
			}
			futures = futures[:0]
			for _, p := range plan.Pools {
				actx := workflow.WithActivityOptions(ctx, withQueue(lbOptions, p.Region))
				futures = append(futures, onRegion(actx, lbA.AddServers,
					activities.ServersInput{Backend: p.Backend.Name, Servers: p.Add}))
			}
			return waitAll(ctx, futures, nil)
		})
		if err != nil {
			return err
		}
	}
	if len(plan.Openings) > 0 && in.LB.Firewall == FirewallTicket {
		if err := waitFirewallTicket(ctx, r, in, plan); err != nil {
			return err
		}
	} else if len(plan.Openings) > 0 && in.LB.Firewall == FirewallChange {
		// Only environments in the new "change" mode come here, so no
		// history recorded before it can reach this branch.
		workflow.GetVersion(ctx, "firewall-change", workflow.DefaultVersion, 1)
		if err := openByChange(ctx, r, in, plan); err != nil {
			return err
		}
	} else if len(plan.Openings) > 0 {
		err := r.step(ctx, "firewall", func() error {
			var futures []workflow.Future
			var ids []string
			for _, ro := range plan.Openings {
				actx := workflow.WithActivityOptions(ctx, withQueue(firewallOptions, ro.Region))
				futures = append(futures, onRegion(actx, fw.Open, ro.Openings))
				for _, o := range ro.Openings {
					ids = append(ids, o.ID)
				}
			}
			if err := waitAll(ctx, futures, nil); err != nil {
				return err
			}
			return workflow.ExecuteLocalActivity(lctx, r.st.MarkOpenings,
				activities.OpeningsDone{IDs: ids, State: berth.OpeningOpen, RunID: in.RunID}).Get(ctx, nil)
		})
		if err != nil {
			return err
		}
	}
	syncCMDB(ctx, r, plan.CMDB)
	return nil
}

// FirewallTicket is the firewall mode where a person opens the ports and
// confirms it; the run waits for FirewallConfirmSignal.
const FirewallTicket = "ticket"

// FirewallChange is the firewall mode where the openings go to the network
// team's change API as one change per region; the run waits, durably, for
// it to be applied, and a rejection fails the run, which undoes itself.
const FirewallChange = "change"

// openByChange asks each region's change API for the openings and records
// them open once every change is applied.
func openByChange(ctx workflow.Context, r *run, in activities.ExposeInput, plan activities.ExposePlan) error {
	var fw *activities.Firewall
	return r.step(ctx, "firewall change", func() error {
		var futures []workflow.Future
		var ids []string
		for _, ro := range plan.Openings {
			actx := workflow.WithActivityOptions(ctx, withQueue(firewallChangeOptions, ro.Region))
			futures = append(futures, onRegion(actx, fw.OpenByChange, activities.ChangeInput{Openings: ro.Openings,
				Reason: fmt.Sprintf("berth run %d opens %d ports of %s", in.RunID, len(ro.Openings), in.Subject)}))
			for _, o := range ro.Openings {
				ids = append(ids, o.ID)
			}
		}
		if err := waitAll(ctx, futures, nil); err != nil {
			return err
		}
		lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
		return workflow.ExecuteLocalActivity(lctx, r.st.MarkOpenings,
			activities.OpeningsDone{IDs: ids, State: berth.OpeningOpen, RunID: in.RunID}).Get(ctx, nil)
	})
}

// FirewallConfirmSignal confirms that a run's requested openings are done.
const FirewallConfirmSignal = "firewall-confirmed"

// FirewallConfirmation is the signal's payload.
type FirewallConfirmation struct {
	By      string `json:"by"`
	Comment string `json:"comment,omitempty"`
}

// waitFirewallTicket records the openings as a change request and waits,
// durably, until a person confirms them or the ticket times out.
func waitFirewallTicket(ctx workflow.Context, r *run, in activities.ExposeInput, plan activities.ExposePlan) error {
	var ids []string
	for _, ro := range plan.Openings {
		for _, o := range ro.Openings {
			ids = append(ids, o.ID)
		}
	}
	timeout := in.LB.TicketTimeout
	if timeout <= 0 {
		timeout = 24 * time.Hour
	}
	const name = "firewall ticket"
	r.status.Step = name
	r.record(ctx, name, berth.StepWaiting, "")
	tctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	var conf FirewallConfirmation
	confirmed := false
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(workflow.GetSignalChannel(ctx, FirewallConfirmSignal), func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, &conf)
		confirmed = true
	})
	sel.AddFuture(workflow.NewTimer(tctx, timeout), func(workflow.Future) {})
	sel.Select(ctx)
	if !confirmed {
		if err := ctx.Err(); err != nil {
			r.record(ctx, name, berth.StepFailed, "cancelled")
			return err
		}
		msg := fmt.Sprintf("firewall change request for %d openings was not confirmed within %s", len(ids), timeout)
		r.status.Error = msg
		r.record(ctx, name, berth.StepFailed, msg)
		return temporal.NewNonRetryableApplicationError(msg, "TicketTimeout", nil)
	}
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	if err := workflow.ExecuteLocalActivity(lctx, r.st.MarkOpenings,
		activities.OpeningsDone{IDs: ids, State: berth.OpeningOpen, RunID: in.RunID}).Get(ctx, nil); err != nil {
		return err
	}
	r.status.Done = append(r.status.Done, name)
	detail := "confirmed by " + conf.By
	if conf.Comment != "" {
		detail += ": " + conf.Comment
	}
	r.recordEvent(ctx, berth.StepEvent{Name: name, State: berth.StepDone, Detail: detail})
	return nil
}

// unexpose takes instances out of the load balancer and the firewall, then
// records it and syncs the CMDB deletions.
func unexpose(ctx workflow.Context, r *run, in activities.UnexposeInput) error {
	in.RunID = r.id
	var fw *activities.Firewall
	var plan activities.UnexposePlan
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	if err := workflow.ExecuteLocalActivity(lctx, r.st.PlanUnexpose, in).Get(ctx, &plan); err != nil {
		return err
	}
	futures, err := removeFromLB(ctx, plan)
	if err != nil {
		return err
	}
	for _, ro := range plan.Openings {
		ids := make([]string, 0, len(ro.Openings))
		for _, o := range ro.Openings {
			ids = append(ids, o.ID)
		}
		actx := workflow.WithActivityOptions(ctx, withQueue(cleanupOptions, ro.Region))
		futures = append(futures, workflow.ExecuteActivity(actx, fw.Close, ids))
	}
	if err := waitAll(ctx, futures, nil); err != nil {
		return err
	}
	var cis []string
	if err := workflow.ExecuteLocalActivity(lctx, r.st.UnexposeDone, in).Get(ctx, &cis); err != nil {
		return err
	}
	// A worker killed between the removal and its record comes back with
	// an HAProxy built from the records, which still held the servers (the
	// chaos suite found it): removing again once the records agree closes
	// that window. Both removals do nothing where nothing is left.
	if workflow.GetVersion(ctx, "unexpose-after-record", workflow.DefaultVersion, 1) == 1 {
		var lbA *activities.LB
		var again []workflow.Future
		for _, p := range plan.Pools {
			actx := workflow.WithActivityOptions(ctx, withQueue(cleanupOptions, p.Region))
			again = append(again, workflow.ExecuteActivity(actx, lbA.EnsureRemoved, activities.EnsureRemovedInput{
				Backend: p.Backend, Names: p.Names, Pool: p.RemovePool}))
		}
		if err := waitAll(ctx, again, nil); err != nil {
			return err
		}
	}
	syncCMDB(ctx, r, cis)
	return nil
}

// removeFromLB takes the plan's servers out of their backends, then starts
// removing the pools that go; it returns those removals' futures.
func removeFromLB(ctx workflow.Context, plan activities.UnexposePlan) ([]workflow.Future, error) {
	var lbA *activities.LB
	var futures []workflow.Future
	for _, p := range plan.Pools {
		actx := workflow.WithActivityOptions(ctx, withQueue(cleanupOptions, p.Region))
		futures = append(futures, workflow.ExecuteActivity(actx, lbA.RemoveServers,
			activities.RemoveServersInput{Backend: p.Backend, Names: p.Names}))
	}
	if err := waitAll(ctx, futures, nil); err != nil {
		return nil, err
	}
	futures = futures[:0]
	for _, p := range plan.Pools {
		if p.RemovePool {
			actx := workflow.WithActivityOptions(ctx, withQueue(cleanupOptions, p.Region))
			futures = append(futures, workflow.ExecuteActivity(actx, lbA.RemovePool, p.Backend))
		}
	}
	return futures, nil
}

// syncCMDB pushes CMDB items; a failed push is recorded on the item and
// shown, and never fails the run.
func syncCMDB(ctx workflow.Context, r *run, ids []string) {
	if len(ids) == 0 {
		return
	}
	var c *activities.CMDB
	var res berth.SyncResult
	r.record(ctx, "cmdb", berth.StepRunning, "")
	actx := workflow.WithActivityOptions(ctx, cmdbOptions)
	err := workflow.ExecuteActivity(actx, c.SyncCMDB, ids).Get(ctx, &res)
	state, msg := berth.StepDone, ""
	if err != nil {
		state, msg = berth.StepFailed, errorMessage(err)
	} else if len(res.Failed) > 0 {
		state, msg = berth.StepFailed, "not synced (will be retried): "+joinNames(res.Failed)
	}
	r.record(ctx, "cmdb", state, msg)
}

func joinNames(ns []string) string {
	out := ""
	for i, n := range ns {
		if i > 0 {
			out += ", "
		}
		out += n
	}
	return out
}
