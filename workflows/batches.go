package workflows

import (
	"fmt"
	"strings"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/compose"
	"github.com/berth-dev/berth/lb"
)

// startBatch starts n instances of spec planned under key, records them and
// puts them behind the load balancer with in.LB's weight, waiting until it
// reports them up (in.waitUp). On failure it takes back what it started and
// then calls afterUndo; the undo it returns does the same for a caller
// whose later step fails.
func startBatch(ctx workflow.Context, r *run, in ReleaseVersionInput, spec compose.ServiceSpec, n int, key string, surge bool,
	replaces []berth.PlannedInstance, afterUndo func(workflow.Context)) ([]berth.PlannedInstance, func(error) error, error) {
	var plan berth.Plan
	req := berth.PlanRequest{RunID: in.RunID, ApplicationID: in.ApplicationID, EnvironmentID: in.EnvironmentID, Key: key,
		NamePrefix: fmt.Sprintf("%s-%s-%s", in.Tenant, in.Env, in.App), PortMin: in.PortMin, PortMax: in.PortMax,
		Services: []berth.ServiceRequest{serviceRequest(ctx, spec, n, true)}, Surge: surge}
	for _, pi := range replaces {
		req.Replaces = append(req.Replaces, pi.Name)
	}
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	if err := workflow.ExecuteLocalActivity(lctx, r.st.PlanDeploy, req).Get(ctx, &plan); err != nil {
		return nil, nil, err
	}
	deploy := DeployStackInput{RunID: in.RunID, Tenant: in.Tenant, Env: in.Env, App: in.App, HealthTimeout: in.HealthTimeout, PortMin: in.PortMin, PortMax: in.PortMax,
		Spec: compose.Spec{Project: in.App, Services: []compose.ServiceSpec{spec}}}
	labels := map[string]string{"berth.tenant": in.Tenant, "berth.env": in.Env, "berth.app": in.App, "berth.run": fmt.Sprint(in.RunID)}
	undo := func(cause error) error {
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		if err := unexpose(dctx, r, activities.UnexposeInput{ApplicationID: in.ApplicationID, Subject: in.subject(), Instances: plan.Instances}); err != nil {
			return fmt.Errorf("%s; undo of the batch failed: %s", errorMessage(cause), errorMessage(err))
		}
		if err := removeInstances(dctx, plan.Instances, false); err != nil {
			return fmt.Errorf("%s; undo of the batch failed: %s", errorMessage(cause), errorMessage(err))
		}
		if afterUndo != nil {
			afterUndo(dctx)
		}
		return cause
	}
	if err := followMesh(ctx, r, in.mesh()); err != nil {
		return nil, nil, undo(err)
	}
	started, err := startInstances(ctx, deploy, plan.Instances, []string{spec.Name}, labels)
	if err != nil {
		return nil, nil, undo(err)
	}
	if err := workflow.ExecuteLocalActivity(lctx, r.st.RecordInstances, started).Get(ctx, nil); err != nil {
		return nil, nil, undo(err)
	}
	exposeIn := activities.ExposeInput{RunID: in.RunID, ApplicationID: in.ApplicationID, Subject: in.subject(),
		Services: []activities.ExposeService{{Name: spec.Name, HealthPath: healthPath(spec)}}, Instances: plan.Instances, LB: in.LB}
	if err := expose(ctx, r, exposeIn); err != nil {
		return nil, nil, undo(err)
	}
	if in.waitUp {
		if err := waitServersUp(ctx, in, plan.Instances); err != nil {
			return nil, nil, undo(err)
		}
	}
	return plan.Instances, undo, nil
}

// replaceBatch starts len(old) instances of spec (planned under key, so a
// retry finds them), exposes them, then drains and removes old. On failure
// it removes the new instances and puts old back in rotation.
func replaceBatch(ctx workflow.Context, r *run, in ReleaseVersionInput, spec compose.ServiceSpec, old []berth.PlannedInstance, key string) ([]berth.PlannedInstance, error) {
	fresh, undo, err := startBatch(ctx, r, in, spec, len(old), key, true, old, func(dctx workflow.Context) {
		setServers(dctx, in, old, lb.StateReady)
	})
	if err != nil {
		return nil, err
	}
	// The new instances serve; the old ones leave without dropping a
	// request. Lost ones serve nothing: there is nothing to wait for.
	if !in.OldLost {
		if err := drain(ctx, in, old); err != nil {
			return nil, undo(err)
		}
	}
	oldOut := activities.UnexposeInput{ApplicationID: in.ApplicationID, Subject: in.subject(), Instances: old}
	if err := unexpose(ctx, r, oldOut); err != nil {
		return nil, undo(err)
	}
	// From here the old instances are out of rotation for good: finishing
	// their removal beats undoing the batch.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if in.OldLost {
		if err := loseInstances(dctx, r, old); err != nil {
			return fresh, err
		}
	} else if err := removeInstances(dctx, old, true); err != nil {
		return fresh, err
	}
	return fresh, followMesh(dctx, r, in.mesh())
}

// loseInstances records instances on a host that stopped answering as lost:
// no longer live, their ports kept until their containers are removed.
func loseInstances(ctx workflow.Context, r *run, insts []berth.PlannedInstance) error {
	names := make([]string, len(insts))
	for i, pi := range insts {
		names[i] = pi.Name
	}
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	return workflow.ExecuteLocalActivity(lctx, r.st.LoseInstances, names).Get(ctx, nil)
}

// installBatch drains a batch, installs the package in each instance in
// parallel, runs the post-upload command (when given) in each, and puts the
// healthy ones back in rotation. A command exiting non-zero fails the batch.
func installBatch(ctx workflow.Context, r *run, in ReleaseVersionInput, group []berth.PlannedInstance, sha string, command []string) error {
	if err := drain(ctx, in, group); err != nil {
		return err
	}
	if err := installPackage(ctx, r, in, group, sha, command); err != nil {
		return err
	}
	setServers(ctx, in, group, lb.StateReady)
	if in.waitUp {
		return waitServersUp(ctx, in, group)
	}
	return nil
}

// installInBatches installs a package batch by batch, so a rollback never
// takes the whole service out of rotation at once.
func installInBatches(ctx workflow.Context, r *run, in ReleaseVersionInput, insts []berth.PlannedInstance, sha string, batch int) error {
	for i := 0; i < len(insts); i += batch {
		if err := installBatch(ctx, r, in, insts[i:min(i+batch, len(insts))], sha, nil); err != nil {
			return err
		}
	}
	return nil
}

// installPackage installs a package into each instance in parallel, then
// runs the post-upload command (when given) in each. It leaves the load
// balancer alone: a batch drains first, a canary carries no weight yet.
func installPackage(ctx workflow.Context, r *run, in ReleaseVersionInput, insts []berth.PlannedInstance, sha string, command []string) error {
	var d *activities.Docker
	futures := make([]workflow.Future, 0, len(insts))
	for _, pi := range insts {
		actx := workflow.WithActivityOptions(ctx, withQueue(instanceOptions, pi.Host.Region))
		futures = append(futures, onRegion(actx, d.InstallPackage, activities.InstallPackageInput{
			Instance: pi, Service: in.Service, SHA256: sha, HealthTimeout: in.HealthTimeout.Milliseconds()}))
	}
	if err := waitAll(ctx, futures, nil); err != nil {
		return err
	}
	if len(command) > 0 {
		return runCommand(ctx, r, in, insts, command)
	}
	return nil
}

// runCommand runs the post-upload command in each instance of a batch in
// parallel, keeps every output with the release, and fails when any exit
// code is not 0.
func runCommand(ctx workflow.Context, r *run, in ReleaseVersionInput, group []berth.PlannedInstance, command []string) error {
	var d *activities.Docker
	results := make([]activities.RunCommandResult, len(group))
	futures := make([]workflow.Future, 0, len(group))
	for _, pi := range group {
		actx := workflow.WithActivityOptions(ctx, withQueue(instanceOptions, pi.Host.Region))
		futures = append(futures, onRegion(actx, d.RunCommand, activities.RunCommandInput{Instance: pi, Command: command}))
	}
	var firstErr error
	for i, f := range futures {
		if err := f.Get(ctx, &results[i]); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	outs := []berth.ReleaseOutput{}
	var failed []string
	for i, res := range results {
		if res.Instance == "" {
			continue
		}
		outs = append(outs, berth.ReleaseOutput{ReleaseID: in.ReleaseID, Instance: res.Instance, ExitCode: res.ExitCode,
			Output: res.Output, Truncated: res.Truncated})
		if res.ExitCode != 0 {
			failed = append(failed, fmt.Sprintf("%s (exit code %d)", group[i].Name, res.ExitCode))
		}
	}
	if len(outs) > 0 {
		lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
		if err := workflow.ExecuteLocalActivity(lctx, r.st.RecordReleaseOutputs, outs).Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Error("command output not recorded", "release", in.ReleaseID, "error", err)
		}
	}
	if firstErr != nil {
		return firstErr
	}
	if len(failed) > 0 {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("command %s failed in %s", strings.Join(command, " "),
			strings.Join(failed, ", ")), string(berth.EUnhealthy), nil)
	}
	return nil
}

// capacityChange is the GetVersion change id that made plans carry what
// each instance takes, so placement counts quotas and host capacity.
const capacityChange = "capacity"

// serviceRequest asks for n instances of spec: a deploy sets the service's
// count, add places them beside the live ones.
func serviceRequest(ctx workflow.Context, spec compose.ServiceSpec, n int, add bool) berth.ServiceRequest {
	sr := berth.ServiceRequest{Name: spec.Name, Image: spec.Image, Replicas: n, Add: add}
	for _, p := range spec.Ports {
		sr.Ports = append(sr.Ports, berth.PortRequest{ContainerPort: p.ContainerPort, Protocol: p.Protocol})
	}
	if workflow.GetVersion(ctx, capacityChange, workflow.DefaultVersion, 1) >= 1 {
		sr.Resources = spec.Resources()
	}
	return sr
}
