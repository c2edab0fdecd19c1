package workflows

import (
	"errors"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/compose"
)

// startInstances starts every instance of the given services in parallel.
// An instance whose host refuses one of its ports, because something
// outside berth holds it, is given other ports and started again (a few
// rounds at most); insts is updated in place, so what is exposed next uses
// the ports it runs on.
func startInstances(ctx workflow.Context, in DeployStackInput, insts []berth.PlannedInstance, services []string, labels map[string]string) ([]activities.InstanceResult, error) {
	var d *activities.Docker
	var st *activities.Store
	want := map[string]*compose.ServiceSpec{}
	for i := range in.Spec.Services {
		want[in.Spec.Services[i].Name] = &in.Spec.Services[i]
	}
	inLevel := map[string]bool{}
	for _, s := range services {
		inLevel[s] = true
	}
	var pending []int
	for i, pi := range insts {
		if inLevel[pi.Service] {
			pending = append(pending, i)
		}
	}
	moves := workflow.GetVersion(ctx, "port-taken", workflow.DefaultVersion, 1)
	results := make([]activities.InstanceResult, 0, len(pending))
	for round := 0; ; round++ {
		futures := make([]workflow.Future, len(pending))
		for k, i := range pending {
			pi := insts[i]
			actx := workflow.WithActivityOptions(ctx, withQueue(instanceOptions, pi.Host.Region))
			futures[k] = onRegion(actx, d.StartInstance, activities.StartInstanceInput{
				Instance: pi, Service: *want[pi.Service], Labels: labels, HealthTimeout: in.HealthTimeout})
		}
		type refused struct {
			i     int
			taken []int
		}
		var again []refused
		err := waitAll(ctx, futures, func(k int, f workflow.Future) error {
			var res activities.InstanceResult
			err := f.Get(ctx, &res)
			if err == nil {
				results = append(results, res)
				return nil
			}
			var appErr *temporal.ApplicationError
			if moves == 1 && round < maxPortMoves && errors.As(err, &appErr) && appErr.Type() == string(berth.EPortTaken) {
				var pt activities.PortsTaken
				if appErr.HasDetails() && appErr.Details(&pt) == nil && len(pt.Ports) > 0 {
					again = append(again, refused{pending[k], pt.Ports})
					return nil
				}
			}
			return err
		})
		if err != nil || len(again) == 0 {
			return results, err
		}
		lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
		pending = pending[:0]
		for _, r := range again {
			var moved berth.PlannedInstance
			if err := workflow.ExecuteLocalActivity(lctx, st.MovePorts, activities.MovePortsInput{Name: insts[r.i].Name, Taken: r.taken,
				PortMin: in.PortMin, PortMax: in.PortMax}).Get(ctx, &moved); err != nil {
				return results, err
			}
			insts[r.i].Ports = moved.Ports
			pending = append(pending, r.i)
		}
	}
}

// maxPortMoves is how many times one start moves instances off ports held
// outside berth before it gives up: each move skips the held port for good.
const maxPortMoves = 3

// removeInstances removes containers in parallel, then releases their ports.
func removeInstances(ctx workflow.Context, insts []berth.PlannedInstance, graceful bool) error {
	var d *activities.Docker
	var st *activities.Store
	futures := make([]workflow.Future, 0, len(insts))
	for i := len(insts) - 1; i >= 0; i-- {
		pi := insts[i]
		actx := workflow.WithActivityOptions(ctx, withQueue(cleanupOptions, pi.Host.Region))
		futures = append(futures, workflow.ExecuteActivity(actx, d.RemoveInstance,
			activities.RemoveInstanceInput{Host: pi.Host, Name: pi.Name, UID: pi.UID, Graceful: graceful}))
	}
	var removed []string
	var first error
	for i, f := range futures {
		if err := f.Get(ctx, nil); err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		removed = append(removed, insts[len(insts)-1-i].Name)
	}
	// Only ports of containers known to be gone are released, so a port is
	// never handed out while a container may still hold it. Disconnected so
	// that a cancelled delete still releases what it did remove.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	lctx := workflow.WithLocalActivityOptions(dctx, storeOptions)
	if err := workflow.ExecuteLocalActivity(lctx, st.ReleaseInstances, removed).Get(dctx, nil); err != nil && first == nil {
		first = err
	}
	return first
}
