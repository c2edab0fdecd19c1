package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
)

// meshChange is the GetVersion change id that added the relays carrying an
// application's traffic between its hosts to deploys.
const meshChange = "mesh"

// spansHosts says whether instances run on more than one host.
func spansHosts(insts []berth.PlannedInstance) bool {
	for _, pi := range insts {
		if pi.Host.ID != insts[0].Host.ID {
			return true
		}
	}
	return false
}

// syncMesh puts the relays for a deploy's placement on its hosts before any
// instance starts, so a service finds the services it depends on by name
// from its first moment. On one host it only clears relays an earlier
// placement left; that is no step of the run.
func syncMesh(ctx workflow.Context, r *run, in DeployStackInput, insts []berth.PlannedInstance, remove bool) error {
	if len(insts) == 0 {
		return nil
	}
	var d *activities.Docker
	mi := activities.SyncMeshInput{Tenant: in.Tenant, Env: in.Env, App: in.App, Services: in.Spec.Services,
		Instances: insts, Remove: remove}
	actx := workflow.WithActivityOptions(ctx, withQueue(meshOptions, insts[0].Host.Region))
	call := func() error { return workflow.ExecuteActivity(actx, d.SyncMesh, mi).Get(ctx, nil) }
	if remove || !spansHosts(insts) {
		return call()
	}
	r.meshed = true
	return r.step(ctx, "mesh", call)
}
