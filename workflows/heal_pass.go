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
}

// HealPassResult is what a pass found and did.
type HealPassResult struct {
	Hosts    int             `json:"hosts"`
	Findings []berth.Finding `json:"findings"`
}

// HealPass compares, host by host, the instances recorded as running with
// their containers, and starts a heal run (HealInstance, a run of its own
// holding the application's lock) for each whose container exited. An
// application with a run under way is left for the next pass; an instance
// healed berth.MaxHeals times within berth.HealWindow is left for a person,
// which is recorded once. A host that does not answer is skipped.
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
		for _, c := range containers {
			rec, ok := byName[c.Name]
			if ok && !c.Running && rec.Instance.UID == c.UID && rec.State == berth.StateRunning && now.Sub(rec.CreatedAt) >= in.Grace {
				found = append(found, exited{host: h, rec: rec})
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
			res.Findings = append(res.Findings, startHeal(ctx, e.host, e.rec.Instance, hs, in.HealthTimeout))
		}
	}
	if len(res.Findings) > 0 {
		if err := workflow.ExecuteLocalActivity(lctx, rc.RecordFindings, res.Findings).Get(ctx, nil); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// startHeal starts the heal run's workflow, which outlives the pass, and
// ties the run record to it; a run whose workflow cannot start is closed
// as failed, so its lock is freed at once.
func startHeal(ctx workflow.Context, h berth.HostRef, pi berth.PlannedInstance, hs berth.HealStart, healthTimeout time.Duration) berth.Finding {
	var hl *activities.Heal
	var st *activities.Store
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	f := berth.Finding{Kind: berth.FindingHealed, Host: h.Name, Target: pi.Name,
		Detail: fmt.Sprintf("its container had exited; heal run %d starts it again (heal %d of at most %d within %s)",
			hs.RunID, hs.Tries+1, berth.MaxHeals, berth.HealWindow)}
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: hs.WorkflowID, TaskQueue: CentralTaskQueue,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		Memo:                  map[string]any{"runId": hs.RunID, "startedBy": "self-healing"}})
	child := workflow.ExecuteChildWorkflow(cctx, HealInstanceName, HealInstanceInput{RunID: hs.RunID, ApplicationID: hs.ApplicationID,
		App: hs.App, Instance: pi, HealthTimeout: healthTimeout})
	var exec workflow.Execution
	if err := child.GetChildWorkflowExecution().Get(ctx, &exec); err != nil {
		f.Error = errorMessage(err)
		if ferr := workflow.ExecuteLocalActivity(lctx, st.Finish, activities.FinishInput{RunID: hs.RunID, Status: berth.RunFailed,
			Error: "the heal workflow did not start: " + f.Error, At: workflow.Now(ctx)}).Get(ctx, nil); ferr != nil {
			workflow.GetLogger(ctx).Error("heal run left open", "run", hs.RunID, "error", ferr)
		}
		return f
	}
	if err := workflow.ExecuteLocalActivity(lctx, hl.HealRunStarted, activities.RunStartedInput{RunID: hs.RunID,
		TemporalRunID: exec.RunID}).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("heal run not marked started", "run", hs.RunID, "error", err)
	}
	return f
}
