package workflows

import (
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
)

// DrainHostName is the registered name of DrainHost.
const DrainHostName = "DrainHost"

// DrainHostInput moves every instance off one host.
type DrainHostInput struct {
	RunID     uint          `json:"runId"`
	Host      berth.HostRef `json:"host"`
	StartedBy string        `json:"startedBy"`
	// What each move's release needs, as for any release.
	PortMin       int           `json:"portMin"`
	PortMax       int           `json:"portMax"`
	HealthTimeout time.Duration `json:"healthTimeout"`
	DrainTimeout  time.Duration `json:"drainTimeout"`
	// Lost: the host is down (self-healing marked it so, and this is its
	// recovery run). It is not cordoned, its instances are replaced and
	// recorded lost instead of drained and removed, and it stays down.
	Lost bool `json:"lost,omitempty"`
}

// DrainHostResult lists the moves, one per service that had instances on the host.
type DrainHostResult struct {
	Moves []string `json:"moves"`
}

// DrainHostID is the workflow id of a host's drain.
func DrainHostID(host string) string { return "drain-host/" + host }

// HostLockKey is a host's lock: provisioning and draining hold it, so a
// check never marks a host ready in the middle of its drain.
func HostLockKey(host string) string { return ProvisionHostID(host) }

// RecoverHostID is the workflow id of self-healing's recovery of a host
// that went down: a DrainHost with Lost set.
func RecoverHostID(host string) string { return "recover-host/" + host }

// EvacuateID is the workflow id of one service's move off a host; with an
// empty subject, the prefix the store puts before each move's subject.
func EvacuateID(host, subject string) string { return "evacuate/" + host + "/" + subject }

// lockWait is how long a drain waits before asking again for an
// application another run holds.
const lockWait = 10 * time.Second

// DrainHost cordons the host (draining: placement passes over it), then
// moves its instances off, one service at a time: each move is an evacuate
// run holding the service's application's lock, a rolling release of the
// service's own version that replaces only the instances on this host, one
// at a time, starting each new instance elsewhere before the old one is
// drained and removed, so capacity never drops below the replica count and
// no request is dropped. An application another run holds is waited for.
// With nothing left on it the host is drained, for maintenance, until
// undrained. A failed move stops the drain; the host stays draining.
//
// With Lost (self-healing's recovery of a host that went down), the host
// stays down, and each move replaces the instances with new ones elsewhere
// and records the old ones lost, since nothing on the host can be reached.
func DrainHost(ctx workflow.Context, in DrainHostInput) (*DrainHostResult, error) {
	ctx, r, err := newRun(ctx, in.RunID)
	if err != nil {
		return nil, err
	}
	var dr *activities.Drain
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	setState := func(state berth.HostState) error {
		return workflow.ExecuteLocalActivity(lctx, dr.SetHostState, activities.HostStateInput{HostID: in.Host.ID, State: state}).Get(ctx, nil)
	}
	res := &DrainHostResult{Moves: []string{}}
	if !in.Lost {
		err = r.step(ctx, "cordon", func() error { return setState(berth.HostDraining) })
	}
	for n := 1; err == nil; n++ {
		var ev activities.EvacuationStep
		if err = workflow.ExecuteLocalActivity(lctx, dr.NextEvacuation, activities.NextEvacuationInput{HostID: in.Host.ID,
			Key: fmt.Sprintf("%d/%d", in.RunID, n), WorkflowPrefix: EvacuateID(in.Host.Name, ""), StartedBy: in.StartedBy}).Get(ctx, &ev); err != nil {
			r.status.Error = errorMessage(err)
			break
		}
		if ev.Done {
			break
		}
		if ev.Busy != "" {
			// No run was opened: the same move number asks again.
			r.status.Step = "waiting for " + ev.Busy
			if err = workflow.Sleep(ctx, lockWait); err != nil {
				break
			}
			n--
			continue
		}
		subject := ev.Tenant + "/" + ev.Env + "/" + ev.App + "/" + ev.Service.Name
		err = r.step(ctx, fmt.Sprintf("move %s (%d instance(s))", subject, len(ev.Instances)), func() error {
			return evacuate(ctx, in, ev)
		})
		if err == nil {
			res.Moves = append(res.Moves, subject)
		}
	}
	if err == nil && !in.Lost {
		err = r.step(ctx, "drained", func() error { return setState(berth.HostDrained) })
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if err != nil {
		status := berth.RunFailed
		if isCancel(ctx, err) {
			status = berth.RunCancelled
		}
		r.finish(dctx, activities.FinishInput{Status: status, Error: r.status.Error})
		return nil, err
	}
	r.status.Step = "done"
	r.finish(dctx, activities.FinishInput{Status: berth.RunSucceeded})
	return res, nil
}

// evacuate runs one move as a child release of the service's own version,
// replacing only the instances on the host, one at a time; the child
// records its own run (the evacuate run the move opened).
func evacuate(ctx workflow.Context, in DrainHostInput, ev activities.EvacuationStep) error {
	var dr *activities.Drain
	rel := ReleaseVersionInput{RunID: ev.RunID, ApplicationID: ev.ApplicationID, EnvironmentID: ev.EnvironmentID, ServiceID: ev.ServiceID,
		Tenant: ev.Tenant, Env: ev.Env, App: ev.App, Service: ev.Service, AppServices: ev.AppServices, Kind: berth.ReleaseImage,
		LastGoodImage: ev.Service.Image, Instances: ev.Instances, BatchSize: 1, PortMin: in.PortMin, PortMax: in.PortMax,
		HealthTimeout: in.HealthTimeout, DrainTimeout: in.DrainTimeout, LB: ev.LB, OldLost: in.Lost}
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: ev.WorkflowID,
		TaskQueue: CentralTaskQueue, ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		Memo:                  map[string]any{"runId": ev.RunID, "startedBy": in.StartedBy}})
	child := workflow.ExecuteChildWorkflow(cctx, ReleaseVersionName, rel)
	var exec workflow.Execution
	if err := child.GetChildWorkflowExecution().Get(ctx, &exec); err != nil {
		dctx, _ := workflow.NewDisconnectedContext(ctx)
		var st *activities.Store
		lctx := workflow.WithLocalActivityOptions(dctx, storeOptions)
		if ferr := workflow.ExecuteLocalActivity(lctx, st.Finish, activities.FinishInput{RunID: ev.RunID, Status: berth.RunFailed,
			Error: "the move's workflow did not start: " + errorMessage(err), At: workflow.Now(ctx)}).Get(dctx, nil); ferr != nil {
			workflow.GetLogger(ctx).Error("move run left open", "run", ev.RunID, "error", ferr)
		}
		return err
	}
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	if err := workflow.ExecuteLocalActivity(lctx, dr.EvacuationStarted, activities.RunStartedInput{RunID: ev.RunID,
		TemporalRunID: exec.RunID}).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("move run not marked started", "run", ev.RunID, "error", err)
	}
	return child.Get(ctx, nil)
}
