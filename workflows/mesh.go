package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/compose"
)

// meshChange is the GetVersion change id that added the relays carrying an
// application's traffic between its hosts to deploys.
const meshChange = "mesh"

// meshFollowsChange is the GetVersion change id that made scales, releases
// and canaries bring the relays along when they change an application's
// hosts.
const meshFollowsChange = "mesh-follows"

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
	call := func() error { return onRegion(actx, d.SyncMesh, mi).Get(ctx, nil) }
	if remove || !spansHosts(insts) {
		return call()
	}
	r.meshed = true
	return r.step(ctx, "mesh", call)
}

// meshTarget is an application whose relays follow its placement.
type meshTarget struct {
	appID            uint
	tenant, env, app string
	// services are every service of the application (their ports, networks
	// and aliases); empty in the inputs of runs started before relays
	// followed scales, which then leave the relays alone.
	services []compose.ServiceSpec
	// skipHost, when set, is a host that is down: no relay there can be
	// reached, so its instances are left out (it is cleared when it answers).
	skipHost uint
}

// followMesh brings an application's relays in line with its live and
// planned instances after a run changed where they are: a new host gets its
// gateway and forwarders, a host that lost a service's last instance gets a
// forwarder for it. Called before new instances start, so they find their
// dependencies by name, and after old ones went.
func followMesh(ctx workflow.Context, r *run, t meshTarget) error {
	if len(t.services) == 0 || workflow.GetVersion(ctx, meshFollowsChange, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	var insts []berth.PlannedInstance
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	if err := workflow.ExecuteLocalActivity(lctx, r.st.LiveInstances, t.appID).Get(ctx, &insts); err != nil {
		return err
	}
	if t.skipHost != 0 {
		reachable := insts[:0]
		for _, pi := range insts {
			if pi.Host.ID != t.skipHost {
				reachable = append(reachable, pi)
			}
		}
		insts = reachable
	}
	return syncMesh(ctx, r, DeployStackInput{Tenant: t.tenant, Env: t.env, App: t.app, Spec: compose.Spec{Project: t.app, Services: t.services}}, insts, false)
}

func (in ReleaseVersionInput) mesh() meshTarget {
	t := meshTarget{appID: in.ApplicationID, tenant: in.Tenant, env: in.Env, app: in.App, services: in.AppServices}
	if in.OldLost && len(in.Instances) > 0 {
		t.skipHost = in.Instances[0].Host.ID
	}
	return t
}

func (in ScaleServiceInput) mesh() meshTarget {
	return meshTarget{appID: in.ApplicationID, tenant: in.Tenant, env: in.Env, app: in.App, services: in.AppServices}
}
