package workflows

import (
	"fmt"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
)

// DeleteStackName is the registered name of DeleteStack.
const DeleteStackName = "DeleteStack"

// DeleteStackInput names the application to delete.
type DeleteStackInput struct {
	RunID         uint   `json:"runId"`
	ApplicationID uint   `json:"applicationId"`
	Tenant        string `json:"tenant"`
	Env           string `json:"env"`
	App           string `json:"app"`
	// Approval, when set (environments that approve releases), is asked for
	// before anything is touched: a delete there is a change like any other.
	Approval *berth.ApprovalRequest `json:"approval,omitempty"`
	// PriorState is what the application goes back to when the delete is
	// rejected, times out or is cancelled while it waits.
	PriorState berth.State `json:"priorState,omitempty"`
}

// DeleteStackResult lists the instances removed.
type DeleteStackResult struct {
	Removed []string `json:"removed"`
}

// DeleteStackID is the workflow id of an application's delete.
func DeleteStackID(tenant, env, app string) string {
	return fmt.Sprintf("delete/%s/%s/%s", tenant, env, app)
}

// DeleteStack stops and removes every live instance gracefully, releases
// their ports and marks the application deleted. Instance records stay as
// history.
func DeleteStack(ctx workflow.Context, in DeleteStackInput) (*DeleteStackResult, error) {
	ctx, r, err := newRun(ctx, in.RunID)
	if err != nil {
		return nil, err
	}
	if in.Approval != nil {
		prior := in.PriorState
		if prior == "" || prior == berth.StateDeleting {
			prior = berth.StateRunning
		}
		if err := approveChange(ctx, r, *in.Approval, in.ApplicationID, prior, "deleted"); err != nil {
			return nil, err
		}
	}
	var insts []berth.PlannedInstance
	err = r.step(ctx, "load", func() error {
		lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
		return workflow.ExecuteLocalActivity(lctx, r.st.LiveInstances, in.ApplicationID).Get(ctx, &insts)
	})
	if err == nil && workflow.GetVersion(ctx, exposeChange, workflow.DefaultVersion, 1) >= 1 {
		// Out of the load balancer and the firewall first, so no new request
		// reaches an instance that is about to stop.
		err = r.step(ctx, "unexpose", func() error {
			return unexpose(ctx, r, activities.UnexposeInput{ApplicationID: in.ApplicationID,
				Subject: in.Tenant + "/" + in.Env + "/" + in.App, Instances: insts, DropPools: true})
		})
	}
	if err == nil {
		err = r.step(ctx, "remove", func() error { return removeInstances(ctx, insts, true) })
	}
	if err != nil {
		status := berth.RunFailed
		if isCancel(ctx, err) {
			status = berth.RunCancelled
		}
		// What could not be removed stays live and visible; the app is
		// failed, and a new delete retries the rest.
		r.finish(ctx, activities.FinishInput{Status: status, Error: errorMessage(err), ApplicationID: in.ApplicationID, AppState: berth.StateFailed})
		return nil, err
	}
	res := &DeleteStackResult{Removed: []string{}}
	for _, pi := range insts {
		res.Removed = append(res.Removed, pi.Name)
	}
	r.status.Step = "done"
	r.finish(ctx, activities.FinishInput{Status: berth.RunSucceeded, ApplicationID: in.ApplicationID, AppState: berth.StateDeleted})
	return res, nil
}

// approveChange waits for a change's approval. A rejection, a timeout or
// a cancel ends the run, the application left in state, with why and
// "nothing was <done>".
func approveChange(ctx workflow.Context, r *run, req berth.ApprovalRequest, appID uint, state berth.State, done string) error {
	o, err := awaitApproval(ctx, r, req)
	var reason string
	status := berth.RunFailed
	switch {
	case err != nil && (isCancel(ctx, err) || isType(err, berth.ErrApprovalAborted)):
		reason, status = errorMessage(err), berth.RunCancelled
	case err != nil:
		reason = errorMessage(err)
	case o.State == berth.ApprovalRejected:
		reason = o.Rejection()
	default:
		return nil
	}
	reason += "; nothing was " + done
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	r.status.Error = reason
	r.finish(dctx, activities.FinishInput{Status: status, Error: reason, ApplicationID: appID, AppState: state})
	return temporal.NewNonRetryableApplicationError(reason, berth.ErrApprovalRejected, err)
}
