package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/compose"
)

// startInstances starts every instance of the given services in parallel.
func startInstances(ctx workflow.Context, in DeployStackInput, insts []berth.PlannedInstance, services []string, labels map[string]string) ([]activities.InstanceResult, error) {
	var d *activities.Docker
	want := map[string]*compose.ServiceSpec{}
	for i := range in.Spec.Services {
		want[in.Spec.Services[i].Name] = &in.Spec.Services[i]
	}
	inLevel := map[string]bool{}
	for _, s := range services {
		inLevel[s] = true
	}
	var futures []workflow.Future
	for _, pi := range insts {
		if !inLevel[pi.Service] {
			continue
		}
		actx := workflow.WithActivityOptions(ctx, withQueue(instanceOptions, pi.Host.Region))
		futures = append(futures, workflow.ExecuteActivity(actx, d.StartInstance, activities.StartInstanceInput{
			Instance: pi, Service: *want[pi.Service], Labels: labels, HealthTimeout: in.HealthTimeout}))
	}
	results := make([]activities.InstanceResult, len(futures))
	err := waitAll(ctx, futures, func(i int, f workflow.Future) error { return f.Get(ctx, &results[i]) })
	return results, err
}

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
