package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/compose"
	"github.com/berth-dev/berth/lb"
)

// ScaleServiceName is the registered name of ScaleService.
const ScaleServiceName = "ScaleService"

// ScaleServiceInput asks for a service to go from From to To instances.
type ScaleServiceInput struct {
	RunID         uint                `json:"runId"`
	ApplicationID uint                `json:"applicationId"`
	EnvironmentID uint                `json:"environmentId"`
	ServiceID     uint                `json:"serviceId"`
	Tenant        string              `json:"tenant"`
	Env           string              `json:"env"`
	App           string              `json:"app"`
	Service       compose.ServiceSpec `json:"service"`
	From          int                 `json:"from"`
	To            int                 `json:"to"`
	// Remove lists, for a scale-in, the instances that go: chosen (newest
	// first) and shown before the run starts.
	Remove        []berth.PlannedInstance `json:"remove,omitempty"`
	PortMin       int                     `json:"portMin"`
	PortMax       int                     `json:"portMax"`
	HealthTimeout time.Duration           `json:"healthTimeout"`
	DrainTimeout  time.Duration           `json:"drainTimeout"`
	LB            berth.LBSettings        `json:"lb"`
	// AppServices are every service of the application, so that the relays
	// between its hosts follow the new placement.
	AppServices []compose.ServiceSpec `json:"appServices,omitempty"`
}

// ScaleServiceResult lists what changed.
type ScaleServiceResult struct {
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
}

// ScaleServiceID is the workflow id of a service's scale.
func ScaleServiceID(tenant, env, app, service string) string {
	return fmt.Sprintf("scale/%s/%s/%s/%s", tenant, env, app, service)
}

func (in ScaleServiceInput) subject() string { return in.Tenant + "/" + in.Env + "/" + in.App }

// ScaleService adds instances (the same chain as a deploy: place, ports,
// start, healthy, load balancer, firewall, CMDB) or removes them without
// dropping a request (drain in the load balancer, wait for sessions to end,
// graceful stop, then remove, close the firewall, release ports, CMDB).
// A failed scale-out undoes itself in reverse.
func ScaleService(ctx workflow.Context, in ScaleServiceInput) (*ScaleServiceResult, error) {
	ctx, r, err := newRun(ctx, in.RunID)
	if err != nil {
		return nil, err
	}
	var res *ScaleServiceResult
	if in.To >= in.From {
		res, err = scaleOut(ctx, r, in)
	} else {
		res, err = scaleIn(ctx, r, in)
	}
	if err != nil {
		status := berth.RunFailed
		if isCancel(ctx, err) {
			status = berth.RunCancelled
		}
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		r.finish(dctx, activities.FinishInput{Status: status, Error: r.status.Error})
		return nil, err
	}
	r.status.Step = "done"
	// The instances exist now, so their count is recorded even if the run
	// was cancelled during its last, best-effort CMDB step.
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	lctx := workflow.WithLocalActivityOptions(dctx, storeOptions)
	if err := workflow.ExecuteLocalActivity(lctx, r.st.SetReplicas, in.ServiceID, in.To).Get(dctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("replica count not recorded", "error", err)
	}
	r.finish(dctx, activities.FinishInput{Status: berth.RunSucceeded})
	return res, nil
}

func scaleOut(ctx workflow.Context, r *run, in ScaleServiceInput) (*ScaleServiceResult, error) {
	var plan berth.Plan
	err := r.step(ctx, "plan", func() error {
		sr := serviceRequest(ctx, in.Service, in.To-in.From, true)
		req := berth.PlanRequest{RunID: in.RunID, ApplicationID: in.ApplicationID, EnvironmentID: in.EnvironmentID,
			NamePrefix: fmt.Sprintf("%s-%s-%s", in.Tenant, in.Env, in.App), PortMin: in.PortMin, PortMax: in.PortMax,
			Services: []berth.ServiceRequest{sr}}
		lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
		return workflow.ExecuteLocalActivity(lctx, r.st.PlanDeploy, req).Get(ctx, &plan)
	})
	if err != nil {
		r.status.Error = errorMessage(err)
		return nil, err
	}
	spec := compose.Spec{Project: in.App, Services: []compose.ServiceSpec{in.Service}}
	deploy := DeployStackInput{RunID: in.RunID, Tenant: in.Tenant, Env: in.Env, App: in.App, Spec: spec, HealthTimeout: in.HealthTimeout,
		PortMin: in.PortMin, PortMax: in.PortMax}
	labels := map[string]string{"berth.tenant": in.Tenant, "berth.env": in.Env, "berth.app": in.App, "berth.run": fmt.Sprint(in.RunID)}
	exposeIn := activities.ExposeInput{RunID: in.RunID, ApplicationID: in.ApplicationID, Subject: in.subject(),
		Services: []activities.ExposeService{{Name: in.Service.Name, HealthPath: healthPath(in.Service)}}, Instances: plan.Instances, LB: in.LB}

	undo := func(cause error) error {
		r.status.Error = errorMessage(cause)
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		undoErr := r.step(dctx, "undo", func() error {
			if err := unexpose(dctx, r, activities.UnexposeInput{ApplicationID: in.ApplicationID, Subject: in.subject(), Instances: plan.Instances}); err != nil {
				return err
			}
			return removeInstances(dctx, plan.Instances, false)
		})
		if undoErr != nil {
			r.status.Error = errorMessage(cause) + "; undo failed: " + errorMessage(undoErr)
		}
		return cause
	}
	if err := r.step(ctx, "images", func() error { return ensureImages(ctx, spec, plan.Instances) }); err != nil {
		return nil, undo(err)
	}
	if err := followMesh(ctx, r, in.mesh()); err != nil {
		return nil, undo(err)
	}
	var started []activities.InstanceResult
	err = r.step(ctx, "start "+in.Service.Name, func() error {
		var err error
		started, err = startInstances(ctx, deploy, plan.Instances, []string{in.Service.Name}, labels)
		return err
	})
	if err != nil {
		return nil, undo(err)
	}
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	if err := workflow.ExecuteLocalActivity(lctx, r.st.RecordInstances, started).Get(ctx, nil); err != nil {
		return nil, undo(err)
	}
	if err := expose(ctx, r, exposeIn); err != nil {
		return nil, undo(err)
	}
	res := &ScaleServiceResult{Added: []string{}, Removed: []string{}}
	for _, pi := range plan.Instances {
		res.Added = append(res.Added, pi.Name)
	}
	return res, nil
}

func scaleIn(ctx workflow.Context, r *run, in ScaleServiceInput) (*ScaleServiceResult, error) {
	pools := lbPools{appID: in.ApplicationID, subject: in.subject(), weight: in.LB.Weight}
	unexposeIn := activities.UnexposeInput{ApplicationID: in.ApplicationID, Subject: in.subject(), Instances: in.Remove}
	var plan activities.UnexposePlan
	err := r.step(ctx, "drain", func() error {
		var err error
		plan, err = pools.drain(ctx, in.Remove, in.DrainTimeout)
		return err
	})
	if err != nil {
		r.status.Error = errorMessage(err)
		// A scale-in that stops before removing must not quietly cut capacity.
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		pools.restore(dctx, plan, lb.StateReady)
		return nil, err
	}
	err = r.step(ctx, "remove", func() error {
		if err := unexpose(ctx, r, unexposeIn); err != nil {
			return err
		}
		return removeInstances(ctx, in.Remove, true)
	})
	if err == nil {
		err = followMesh(ctx, r, in.mesh())
	}
	if err != nil {
		r.status.Error = errorMessage(err)
		return nil, err
	}
	res := &ScaleServiceResult{Added: []string{}, Removed: []string{}}
	for _, pi := range in.Remove {
		res.Removed = append(res.Removed, pi.Name)
	}
	return res, nil
}

func healthPath(s compose.ServiceSpec) string {
	if s.Health != nil {
		return s.Health.HTTPPath
	}
	return ""
}
