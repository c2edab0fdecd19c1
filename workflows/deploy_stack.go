package workflows

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/compose"
)

// DeployStackName is the registered name of DeployStack.
const DeployStackName = "DeployStack"

// DeployStackInput is a validated compose project to deploy into an environment.
type DeployStackInput struct {
	RunID         uint         `json:"runId"`
	ApplicationID uint         `json:"applicationId"`
	EnvironmentID uint         `json:"environmentId"`
	Tenant        string       `json:"tenant"`
	Env           string       `json:"env"`
	App           string       `json:"app"`
	Spec          compose.Spec `json:"spec"`
	PortMin       int          `json:"portMin"`
	PortMax       int          `json:"portMax"`
	// HealthTimeout bounds the wait for each instance to become healthy.
	HealthTimeout time.Duration `json:"healthTimeout"`
	// LB says how services are put behind the load balancer (version exposeVersion on).
	LB berth.LBSettings `json:"lb"`
	// Approval, when set (a clone into an environment that approves
	// releases), is asked for before anything is planned.
	Approval *berth.ApprovalRequest `json:"approval,omitempty"`
}

// exposeChange is the GetVersion change id that added the load balancer,
// firewall and CMDB steps to deploys and deletes.
const exposeChange = "expose"

// DeployStackResult lists the instances the deploy started.
type DeployStackResult struct {
	Instances []activities.InstanceResult `json:"instances"`
}

// DeployStackID is the workflow id of an application's deploy: one at a time.
func DeployStackID(tenant, env, app string) string {
	return fmt.Sprintf("deploy/%s/%s/%s", tenant, env, app)
}

// AppLockKey is held by the active deploy or delete of an application.
func AppLockKey(tenant, env, app string) string { return berth.AppLockKey(tenant, env, app) }

// DeployStack plans placement and ports, makes sure images are on their
// hosts, starts instances level by level in depends_on order with each
// level's instances in parallel, and records them. On any failure it removes
// every container it made and releases every port, in reverse.
func DeployStack(ctx workflow.Context, in DeployStackInput) (*DeployStackResult, error) {
	ctx, r, err := newRun(ctx, in.RunID)
	if err != nil {
		return nil, err
	}
	if in.Approval != nil {
		// Rejected, the application never existed.
		if err := approveChange(ctx, r, *in.Approval, in.ApplicationID, berth.StateDeleted, "deployed"); err != nil {
			return nil, err
		}
	}
	r.exposeVersion = workflow.GetVersion(ctx, exposeChange, workflow.DefaultVersion, 1)
	var plan berth.Plan
	err = r.step(ctx, "plan", func() error {
		req := berth.PlanRequest{RunID: in.RunID, ApplicationID: in.ApplicationID, EnvironmentID: in.EnvironmentID,
			NamePrefix: fmt.Sprintf("%s-%s-%s", in.Tenant, in.Env, in.App), PortMin: in.PortMin, PortMax: in.PortMax}
		for _, s := range in.Spec.Services {
			req.Services = append(req.Services, serviceRequest(ctx, s, s.Replicas, false))
		}
		lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
		return workflow.ExecuteLocalActivity(lctx, r.st.PlanDeploy, req).Get(ctx, &plan)
	})
	if err != nil {
		return nil, r.fail(ctx, in, nil, err)
	}

	err = r.step(ctx, "images", func() error { return ensureImages(ctx, in.Spec, plan.Instances) })
	if err != nil {
		return nil, r.fail(ctx, in, plan.Instances, err)
	}
	if workflow.GetVersion(ctx, meshChange, workflow.DefaultVersion, 1) >= 1 {
		if err := syncMesh(ctx, r, in, plan.Instances, false); err != nil {
			return nil, r.fail(ctx, in, plan.Instances, err)
		}
	}

	labels := map[string]string{"berth.tenant": in.Tenant, "berth.env": in.Env, "berth.app": in.App,
		"berth.run": fmt.Sprint(in.RunID)}
	result := &DeployStackResult{}
	for _, level := range dependencyLevels(in.Spec) {
		var started []activities.InstanceResult
		err = r.step(ctx, "start "+strings.Join(level, ", "), func() error {
			var err error
			started, err = startInstances(ctx, in, plan.Instances, level, labels)
			return err
		})
		if err != nil {
			return nil, r.fail(ctx, in, plan.Instances, err)
		}
		lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
		if err := workflow.ExecuteLocalActivity(lctx, r.st.RecordInstances, started).Get(ctx, nil); err != nil {
			return nil, r.fail(ctx, in, plan.Instances, err)
		}
		result.Instances = append(result.Instances, started...)
	}
	if r.exposeVersion >= 1 {
		r.exposed = true
		exposeIn := activities.ExposeInput{RunID: in.RunID, ApplicationID: in.ApplicationID,
			Subject: in.Tenant + "/" + in.Env + "/" + in.App, Instances: plan.Instances, LB: in.LB}
		for _, s := range in.Spec.Services {
			exposeIn.Services = append(exposeIn.Services, activities.ExposeService{Name: s.Name, HealthPath: healthPath(s)})
		}
		if err := expose(ctx, r, exposeIn); err != nil {
			return nil, r.fail(ctx, in, plan.Instances, err)
		}
	}
	r.status.Step = "done"
	r.finish(ctx, activities.FinishInput{Status: berth.RunSucceeded, ApplicationID: in.ApplicationID, AppState: berth.StateRunning})
	return result, nil
}

// ensureImages checks each (host, image) pair once, all in parallel.
func ensureImages(ctx workflow.Context, spec compose.Spec, insts []berth.PlannedInstance) error {
	var d *activities.Docker
	images := map[string]string{}
	for _, s := range spec.Services {
		images[s.Name] = s.Image
	}
	seen := map[string]bool{}
	var futures []workflow.Future
	for _, pi := range insts {
		key := fmt.Sprintf("%d|%s", pi.Host.ID, images[pi.Service])
		if seen[key] {
			continue
		}
		seen[key] = true
		actx := workflow.WithActivityOptions(ctx, withQueue(imageOptions, pi.Host.Region))
		futures = append(futures, onRegion(actx, d.EnsureImage,
			activities.EnsureImageInput{Host: pi.Host, Image: images[pi.Service]}))
	}
	return waitAll(ctx, futures, nil)
}

// waitAll waits for every future, so nothing is left running behind a
// failure, and returns the first error in start order.
func waitAll(ctx workflow.Context, futures []workflow.Future, get func(int, workflow.Future) error) error {
	var first error
	for i, f := range futures {
		var err error
		if get != nil {
			err = get(i, f)
		} else {
			err = f.Get(ctx, nil)
		}
		if err != nil && first == nil {
			first = err
		}
	}
	return first
}

func withQueue(o workflow.ActivityOptions, region string) workflow.ActivityOptions {
	o.TaskQueue = RegionTaskQueue(region)
	return o
}

// dependencyLevels groups services so that each level depends only on
// earlier ones; names within a level are sorted.
func dependencyLevels(spec compose.Spec) [][]string {
	level := map[string]int{}
	maxLevel := 0
	// Spec.Services is already in dependency order, so one pass suffices.
	for _, s := range spec.Services {
		l := 0
		for _, d := range s.DependsOn {
			if level[d]+1 > l {
				l = level[d] + 1
			}
		}
		level[s.Name] = l
		if l > maxLevel {
			maxLevel = l
		}
	}
	levels := make([][]string, maxLevel+1)
	for _, s := range spec.Services {
		levels[level[s.Name]] = append(levels[level[s.Name]], s.Name)
	}
	for _, l := range levels {
		sort.Strings(l)
	}
	return levels
}

// fail undoes what the deploy made, in reverse (containers, then ports),
// and closes the run. It runs on a disconnected context so that a cancelled
// deploy is still cleaned up.
func (r *run) fail(ctx workflow.Context, in DeployStackInput, insts []berth.PlannedInstance, cause error) error {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	msg := errorMessage(cause)
	status := berth.RunFailed
	if isCancel(ctx, cause) {
		status, msg = berth.RunCancelled, "cancelled"
	}
	if len(insts) > 0 {
		undoErr := r.step(dctx, "undo", func() error {
			if r.exposed {
				err := unexpose(dctx, r, activities.UnexposeInput{ApplicationID: in.ApplicationID,
					Subject: in.Tenant + "/" + in.Env + "/" + in.App, Instances: insts, DropPools: true})
				if err != nil {
					return err
				}
			}
			if err := removeInstances(dctx, insts, false); err != nil {
				return err
			}
			if r.meshed {
				// Relays started before any instance; with no instance left
				// they and the application's networks go too.
				return syncMesh(dctx, r, in, insts, true)
			}
			return nil
		})
		if undoErr != nil {
			msg += "; undo failed: " + errorMessage(undoErr)
		}
	}
	r.finish(dctx, activities.FinishInput{Status: status, Error: msg, ApplicationID: in.ApplicationID, AppState: berth.StateFailed})
	return cause
}
