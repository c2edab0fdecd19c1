package workflows

import (
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
)

// HealPassName is the registered name of HealPass.
const HealPassName = "HealPass"

// HealScheduleID is the Temporal Schedule that runs HealPass.
const HealScheduleID = "berth-heal"

// HealPassInput: Grace is how long an instance must have been recorded
// before a pass touches it, so a run still starting it is never raced.
type HealPassInput struct {
	Grace         time.Duration `json:"grace"`
	HealthTimeout time.Duration `json:"healthTimeout"`
	// What replacing an instance whose container is gone needs, as for
	// any release; without a port range, such instances are only reported.
	PortMin      int           `json:"portMin,omitempty"`
	PortMax      int           `json:"portMax,omitempty"`
	DrainTimeout time.Duration `json:"drainTimeout,omitempty"`
}

// HealPassResult is what a pass found and did.
type HealPassResult struct {
	Hosts    int             `json:"hosts"`
	Findings []berth.Finding `json:"findings"`
}

// HealPass compares, host by host, the instances recorded as running with
// their containers. An instance whose container exited gets a heal run
// (HealInstance) that starts it again; one whose container is gone gets a
// heal run that replaces it (ReleaseVersion of its own version, for that
// instance only: a new instance, behind the load balancer, before the old
// record goes). Each heal run is a run of its own holding the
// application's lock: an application with a run under way is left for the
// next pass. An instance healed berth.MaxHeals times within
// berth.HealWindow is left for a person, which is recorded once. A host
// that does not answer is skipped.
func HealPass(ctx workflow.Context, in HealPassInput) (*HealPassResult, error) {
	var rc *activities.Reconcile
	var hl *activities.Heal
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	res := &HealPassResult{Findings: []berth.Finding{}}
	var hosts []berth.HostRef
	if err := workflow.ExecuteLocalActivity(lctx, rc.ReconcileHosts).Get(ctx, &hosts); err != nil {
		return nil, err
	}
	res.Hosts = len(hosts)
	now := workflow.Now(ctx)
	type exited struct {
		host berth.HostRef
		rec  berth.InstanceRecord
		// gone: the container itself is missing, so the instance is replaced.
		gone bool
	}
	var found []exited
	for _, h := range hosts {
		records, containers, err := hostState(ctx, h)
		if err != nil {
			workflow.GetLogger(ctx).Warn("host not compared", "host", h.Name, "error", err)
			continue
		}
		byName := map[string]berth.InstanceRecord{}
		for _, rec := range records {
			byName[rec.Instance.Name] = rec
		}
		seen := map[string]bool{}
		for _, c := range containers {
			seen[c.Name] = true
			rec, ok := byName[c.Name]
			if ok && !c.Running && rec.Instance.UID == c.UID && rec.State == berth.StateRunning && now.Sub(rec.CreatedAt) >= in.Grace {
				found = append(found, exited{host: h, rec: rec})
			}
		}
		if in.PortMin > 0 {
			for _, rec := range records {
				if !seen[rec.Instance.Name] && rec.State == berth.StateRunning && now.Sub(rec.CreatedAt) >= in.Grace {
					found = append(found, exited{host: h, rec: rec, gone: true})
				}
			}
		}
	}
	passRun := workflow.GetInfo(ctx).WorkflowExecution.RunID
	for _, e := range found {
		name := e.rec.Instance.Name
		var hs berth.HealStart
		if err := workflow.ExecuteLocalActivity(lctx, hl.BeginHeal, activities.BeginHealInput{Name: name, Host: e.host.Name,
			WorkflowID: HealInstanceID(name), Key: passRun + "/" + name}).Get(ctx, &hs); err != nil {
			return nil, err
		}
		switch hs.Verdict {
		case berth.HealGaveUp:
			res.Findings = append(res.Findings, berth.Finding{Kind: berth.FindingHealGaveUp, Host: e.host.Name, Target: name,
				Detail: fmt.Sprintf("its container exited again after %d heals within %s; left stopped for a person (restart it, or release a fixed version)",
					hs.Tries, berth.HealWindow)})
		case berth.HealOpened:
			if e.gone {
				res.Findings = append(res.Findings, startReplace(ctx, in, e.host, e.rec.Instance, hs))
			} else {
				res.Findings = append(res.Findings, startHeal(ctx, e.host, e.rec.Instance, hs, in.HealthTimeout))
			}
		}
	}
	if len(res.Findings) > 0 {
		if err := workflow.ExecuteLocalActivity(lctx, rc.RecordFindings, res.Findings).Get(ctx, nil); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// startHeal starts the heal run's workflow that starts an exited container again.
func startHeal(ctx workflow.Context, h berth.HostRef, pi berth.PlannedInstance, hs berth.HealStart, healthTimeout time.Duration) berth.Finding {
	f := berth.Finding{Kind: berth.FindingHealed, Host: h.Name, Target: pi.Name,
		Detail: fmt.Sprintf("its container had exited; heal run %d starts it again (heal %d of at most %d within %s)",
			hs.RunID, hs.Tries+1, berth.MaxHeals, berth.HealWindow)}
	return startHealRun(ctx, hs, f, HealInstanceName, HealInstanceInput{RunID: hs.RunID, ApplicationID: hs.ApplicationID,
		App: hs.App, Instance: pi, HealthTimeout: healthTimeout})
}

// startReplace starts the heal run's workflow that replaces an instance
// whose container is gone: a release of the service's own version for that
// instance alone (no release record: ReleaseID 0).
func startReplace(ctx workflow.Context, in HealPassInput, h berth.HostRef, pi berth.PlannedInstance, hs berth.HealStart) berth.Finding {
	var hl *activities.Heal
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	f := berth.Finding{Kind: berth.FindingHealed, Host: h.Name, Target: pi.Name,
		Detail: fmt.Sprintf("its container is gone; heal run %d replaces it with a new instance of the same version (heal %d of at most %d within %s)",
			hs.RunID, hs.Tries+1, berth.MaxHeals, berth.HealWindow)}
	var tg activities.EvacuationStep
	err := workflow.ExecuteLocalActivity(lctx, hl.ReplaceTarget, pi.Name).Get(ctx, &tg)
	if err == nil && len(tg.Instances) == 0 {
		err = fmt.Errorf("instance %s is no longer live", pi.Name)
	}
	if err != nil {
		f.Error = errorMessage(err)
		closeHealRun(ctx, hs.RunID, "the replacement could not be planned: "+f.Error)
		return f
	}
	return startHealRun(ctx, hs, f, ReleaseVersionName, ReleaseVersionInput{RunID: hs.RunID, ApplicationID: tg.ApplicationID,
		EnvironmentID: tg.EnvironmentID, ServiceID: tg.ServiceID, Tenant: tg.Tenant, Env: tg.Env, App: tg.App, Service: tg.Service,
		AppServices: tg.AppServices, Kind: berth.ReleaseImage, LastGoodImage: tg.Service.Image, Instances: tg.Instances, BatchSize: 1,
		PortMin: in.PortMin, PortMax: in.PortMax, HealthTimeout: in.HealthTimeout, DrainTimeout: in.DrainTimeout, LB: tg.LB})
}

// startHealRun starts a heal run's workflow, which outlives the pass, and
// ties the run record to it; a run whose workflow cannot start is closed
// as failed, so its lock is freed at once.
func startHealRun(ctx workflow.Context, hs berth.HealStart, f berth.Finding, workflowName string, input any) berth.Finding {
	var hl *activities.Heal
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: hs.WorkflowID, TaskQueue: CentralTaskQueue,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		Memo:                  map[string]any{"runId": hs.RunID, "startedBy": "self-healing"}})
	child := workflow.ExecuteChildWorkflow(cctx, workflowName, input)
	var exec workflow.Execution
	if err := child.GetChildWorkflowExecution().Get(ctx, &exec); err != nil {
		f.Error = errorMessage(err)
		closeHealRun(ctx, hs.RunID, "the heal workflow did not start: "+f.Error)
		return f
	}
	if err := workflow.ExecuteLocalActivity(lctx, hl.HealRunStarted, activities.RunStartedInput{RunID: hs.RunID,
		TemporalRunID: exec.RunID}).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("heal run not marked started", "run", hs.RunID, "error", err)
	}
	return f
}

// closeHealRun closes a heal run that could not start, freeing its lock.
func closeHealRun(ctx workflow.Context, runID uint, reason string) {
	var st *activities.Store
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	if err := workflow.ExecuteLocalActivity(lctx, st.Finish, activities.FinishInput{RunID: runID, Status: berth.RunFailed,
		Error: reason, At: workflow.Now(ctx)}).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Error("heal run left open", "run", runID, "error", err)
	}
}
