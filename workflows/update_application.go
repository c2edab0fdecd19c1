package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/compose"
)

// UpdateApplicationName is the registered name of UpdateApplication.
const UpdateApplicationName = "UpdateApplication"

// UpdateApplicationInput moves a running application to another compose
// version, service by service.
type UpdateApplicationInput struct {
	RunID         uint   `json:"runId"`
	ApplicationID uint   `json:"applicationId"`
	EnvironmentID uint   `json:"environmentId"`
	Tenant        string `json:"tenant"`
	Env           string `json:"env"`
	App           string `json:"app"`
	// Version is the application version the run moves to; FromVersion is
	// the one it leaves, and goes back to on failure.
	Version     int `json:"version"`
	FromVersion int `json:"fromVersion"`
	// Changes are in the order they are applied: the new file's services in
	// dependency order, then the services it drops.
	Changes []ServiceUpdate `json:"changes"`
	// Services are every service of the new version, for the relays
	// between the application's hosts.
	Services      []compose.ServiceSpec `json:"services"`
	BatchSize     int                   `json:"batchSize"`
	PortMin       int                   `json:"portMin"`
	PortMax       int                   `json:"portMax"`
	HealthTimeout time.Duration         `json:"healthTimeout"`
	DrainTimeout  time.Duration         `json:"drainTimeout"`
	LB            berth.LBSettings      `json:"lb"`
	// Approval, when set, is asked for (with the plan and the diff in its
	// summary) before anything is touched.
	Approval *berth.ApprovalRequest `json:"approval,omitempty"`
}

// ServiceUpdate is one service's change with what it needs to apply it and
// to undo it.
type ServiceUpdate struct {
	compose.ServiceChange
	ServiceID uint `json:"serviceId,omitempty"`
	// From is the service as it runs (nil when added); To is what it
	// becomes (nil when removed).
	From *compose.ServiceSpec `json:"from,omitempty"`
	To   *compose.ServiceSpec `json:"to,omitempty"`
	// Instances are its live instances, oldest first.
	Instances []berth.PlannedInstance `json:"instances,omitempty"`
}

// UpdateApplicationResult says what the update did.
type UpdateApplicationResult struct {
	Version int                     `json:"version"`
	Changes []compose.ServiceChange `json:"changes"`
}

// UpdateApplicationID is the workflow id of an application's update.
func UpdateApplicationID(tenant, env, app string) string {
	return fmt.Sprintf("update/%s/%s/%s", tenant, env, app)
}

func (in UpdateApplicationInput) subject() string { return in.Tenant + "/" + in.Env + "/" + in.App }

// rollout is the release-shaped input the batch helpers take, for one
// service of the update.
func (in UpdateApplicationInput) rollout(u ServiceUpdate, spec *compose.ServiceSpec) ReleaseVersionInput {
	rin := ReleaseVersionInput{RunID: in.RunID, ApplicationID: in.ApplicationID, EnvironmentID: in.EnvironmentID,
		ServiceID: u.ServiceID, Tenant: in.Tenant, Env: in.Env, App: in.App, Instances: u.Instances,
		BatchSize: in.BatchSize, PortMin: in.PortMin, PortMax: in.PortMax, HealthTimeout: in.HealthTimeout,
		DrainTimeout: in.DrainTimeout, LB: in.LB, AppServices: in.Services, waitUp: true}
	if spec != nil {
		rin.Service = *spec
	}
	return rin
}

// applied is what one service's change did so far: enough to undo it.
type applied struct {
	u ServiceUpdate
	// released are new instances that replaced old ones (kept counts the
	// old ones they replaced, oldest first); added are new instances beyond
	// those; retired are old instances that were removed outright.
	released []berth.PlannedInstance
	added    []berth.PlannedInstance
	retired  []berth.PlannedInstance
}

// UpdateApplication applies a compose change to a running application
// without downtime: a changed spec or image is replaced in rolling batches
// behind the load balancer with health gates, as a release is; a new
// replica count scales; an added service is deployed after what it depends
// on; a removed service is drained, stopped and removed with its ports,
// openings and CMDB items. If any step fails, every change made so far is
// undone, service by service in reverse, and the application is left at the
// version it had.
func UpdateApplication(ctx workflow.Context, in UpdateApplicationInput) (*UpdateApplicationResult, error) {
	ctx, r, err := newRun(ctx, in.RunID)
	if err != nil {
		return nil, err
	}
	if in.Approval != nil {
		if err := approveChange(ctx, r, *in.Approval, in.ApplicationID, "", "changed"); err != nil {
			return nil, err
		}
	}
	res := &UpdateApplicationResult{Version: in.Version, Changes: []compose.ServiceChange{}}
	var done []*applied
	for _, u := range in.Changes {
		res.Changes = append(res.Changes, u.ServiceChange)
		if !u.Changed() {
			continue
		}
		a := &applied{u: u}
		done = append(done, a)
		if err = r.step(ctx, stepOf(u), func() error { return applyChange(ctx, r, in, a) }); err != nil {
			break
		}
	}
	if err == nil {
		r.status.Step = "done"
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		if err := recordUpdate(dctx, r, in, true); err != nil {
			workflow.GetLogger(ctx).Error("update not recorded", "error", err)
		}
		r.finish(dctx, activities.FinishInput{Status: berth.RunSucceeded})
		return res, nil
	}

	reason := errorMessage(err)
	status := berth.RunFailed
	if isCancel(ctx, err) {
		status, reason = berth.RunCancelled, "cancelled"
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	rbErr := r.step(dctx, fmt.Sprintf("roll back to version %d", in.FromVersion), func() error {
		for i := len(done) - 1; i >= 0; i-- {
			if err := undoChange(dctx, r, in, done[i]); err != nil {
				return fmt.Errorf("service %s: %s", done[i].u.Service, errorMessage(err))
			}
		}
		return nil
	})
	if rbErr != nil {
		reason += "; rollback failed: " + errorMessage(rbErr)
	} else {
		reason += fmt.Sprintf("; rolled back to version %d", in.FromVersion)
	}
	if err := recordUpdate(dctx, r, in, false); err != nil {
		workflow.GetLogger(ctx).Error("rollback not recorded", "error", err)
	}
	r.status.Error = reason
	r.finish(dctx, activities.FinishInput{Status: status, Error: reason})
	return nil, temporal.NewNonRetryableApplicationError(reason, "UpdateFailed", err)
}

// stepOf names a service's step as users read it in the run.
func stepOf(u ServiceUpdate) string {
	switch u.Kind {
	case compose.ChangeAdd:
		return fmt.Sprintf("add %s (%d)", u.Service, u.ToReplicas)
	case compose.ChangeRemove:
		return "remove " + u.Service
	case compose.ChangeScale:
		return fmt.Sprintf("scale %s %d → %d", u.Service, u.FromReplicas, u.ToReplicas)
	case compose.ChangeImage:
		return fmt.Sprintf("update %s image", u.Service)
	}
	return "update " + u.Service
}

// applyChange makes one service's change, recording in a what it did, so an
// undo can take back even a change that failed halfway.
func applyChange(ctx workflow.Context, r *run, in UpdateApplicationInput, a *applied) error {
	u := a.u
	switch u.Kind {
	case compose.ChangeAdd:
		fresh, _, err := startBatch(ctx, r, in.rollout(u, u.To), *u.To, u.ToReplicas, fmt.Sprintf("%d/%s/add", in.RunID, u.Service), false, nil, nil)
		a.added = fresh
		return err
	case compose.ChangeRemove:
		if err := retire(ctx, r, in, u.Instances, true); err != nil {
			return err
		}
		a.retired = u.Instances
		return nil
	}
	// Scale, image or spec: fewer instances go first, so nothing is
	// replaced only to be removed.
	keep := u.Instances
	if u.ToReplicas < len(keep) {
		extra := keep[u.ToReplicas:]
		if err := retire(ctx, r, in, extra, false); err != nil {
			return err
		}
		a.retired, keep = extra, keep[:u.ToReplicas]
	}
	if u.Kind != compose.ChangeScale {
		rin := in.rollout(u, u.To)
		batch := max(1, min(in.BatchSize, len(keep)))
		for b := 0; b*batch < len(keep); b++ {
			old := keep[b*batch : min((b+1)*batch, len(keep))]
			fresh, err := replaceBatch(ctx, r, rin, *u.To, old, fmt.Sprintf("%d/%s/batch-%d", in.RunID, u.Service, b+1))
			// A batch whose new instances serve counts as replaced even if
			// removing its old ones failed: the undo must bring it back too.
			a.released = append(a.released, fresh...)
			if err != nil {
				return err
			}
		}
	}
	if n := u.ToReplicas - len(u.Instances); n > 0 {
		fresh, _, err := startBatch(ctx, r, in.rollout(u, u.To), *u.To, n, fmt.Sprintf("%d/%s/add", in.RunID, u.Service), false, nil, nil)
		a.added = fresh
		return err
	}
	return nil
}

// undoChange takes back what applyChange did, newest first: added
// instances go, replaced ones are replaced again with the running spec in
// batches, and retired ones are started again.
func undoChange(ctx workflow.Context, r *run, in UpdateApplicationInput, a *applied) error {
	u := a.u
	if len(a.added) > 0 {
		if err := retire(ctx, r, in, a.added, u.Kind == compose.ChangeAdd); err != nil {
			return err
		}
	}
	if len(a.released) > 0 {
		rin := in.rollout(u, u.From)
		batch := max(1, min(in.BatchSize, len(a.released)))
		for b := 0; b*batch < len(a.released); b++ {
			group := a.released[b*batch : min((b+1)*batch, len(a.released))]
			if _, err := replaceBatch(ctx, r, rin, *u.From, group, fmt.Sprintf("%d/%s/rollback-%d", in.RunID, u.Service, b+1)); err != nil {
				return err
			}
		}
	}
	if len(a.retired) > 0 {
		if _, _, err := startBatch(ctx, r, in.rollout(u, u.From), *u.From, len(a.retired), fmt.Sprintf("%d/%s/restore", in.RunID, u.Service), true, nil, nil); err != nil {
			return err
		}
	}
	return nil
}

// retire takes instances out of rotation without dropping a request, then
// removes them with their ports, openings and CMDB items; dropPool removes
// the service's pool and CMDB item too (the service is going).
func retire(ctx workflow.Context, r *run, in UpdateApplicationInput, insts []berth.PlannedInstance, dropPool bool) error {
	if len(insts) == 0 {
		return nil
	}
	pools := lbPools{appID: in.ApplicationID, subject: in.subject(), weight: in.LB.Weight}
	if _, err := pools.drain(ctx, insts, in.DrainTimeout); err != nil {
		return err
	}
	if err := unexpose(ctx, r, activities.UnexposeInput{ApplicationID: in.ApplicationID, Subject: in.subject(),
		Instances: insts, DropPools: dropPool}); err != nil {
		return err
	}
	if err := removeInstances(ctx, insts, true); err != nil {
		return err
	}
	return followMesh(ctx, r, meshTarget{appID: in.ApplicationID, tenant: in.Tenant, env: in.Env, app: in.App, services: in.Services})
}

// recordUpdate writes the services' records: after a success, what each
// became and the application's new version; after a rollback, only that
// services added by the update are gone again.
func recordUpdate(ctx workflow.Context, r *run, in UpdateApplicationInput, succeeded bool) error {
	out := activities.FinishUpdateInput{ApplicationID: in.ApplicationID}
	if succeeded {
		out.Version = in.Version
	}
	for _, u := range in.Changes {
		switch {
		case !succeeded && u.Kind == compose.ChangeAdd:
			out.Services = append(out.Services, berth.ServiceSetting{Name: u.Service, Removed: true})
		case !succeeded:
		case u.Kind == compose.ChangeRemove:
			out.Services = append(out.Services, berth.ServiceSetting{Name: u.Service, Removed: true})
		default:
			out.Services = append(out.Services, berth.ServiceSetting{Name: u.Service, Image: u.ToImage, Replicas: u.ToReplicas})
		}
	}
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	return workflow.ExecuteLocalActivity(lctx, r.st.FinishUpdate, out).Get(ctx, nil)
}
