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
	// HostDownAfter is how many passes in a row a ready host's engine may
	// not answer before it is marked down and its instances are replaced
	// elsewhere (0: hosts are never marked down, and only skipped).
	HostDownAfter int `json:"hostDownAfter,omitempty"`
}

// hostDownChange is the GetVersion change id that made a pass probe its
// hosts in parallel, mark a host down after HostDownAfter unanswered
// passes, recover its instances, and take it back when it answers.
const hostDownChange = "host-down"

// healUnhealthyChange is the GetVersion change id that made a pass restart
// an instance whose container runs but fails its health check.
const healUnhealthyChange = "heal-unhealthy"

// HealPassResult is what a pass found and did.
type HealPassResult struct {
	Hosts    int             `json:"hosts"`
	Findings []berth.Finding `json:"findings"`
}

// HealPass compares, host by host, the instances recorded as running with
// their containers. An instance whose container exited gets a heal run
// (HealInstance) that starts it again (one whose container runs but fails
// the health check its compose file gave Docker, one that restarts it); one whose container is gone gets a
// heal run that replaces it (ReleaseVersion of its own version, for that
// instance only: a new instance, behind the load balancer, before the old
// record goes). Each heal run is a run of its own holding the
// application's lock: an application with a run under way is left for the
// next pass. An instance healed berth.MaxHeals times within
// berth.HealWindow is left for a person, which is recorded once. A host
// that does not answer is skipped; with HostDownAfter, see watchHost.
func HealPass(ctx workflow.Context, in HealPassInput) (*HealPassResult, error) {
	var rc *activities.Reconcile
	var hl *activities.Heal
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	res := &HealPassResult{Findings: []berth.Finding{}}
	watch := in.HostDownAfter > 0 && workflow.GetVersion(ctx, hostDownChange, workflow.DefaultVersion, 1) == 1
	var hosts []berth.HostRef
	listHosts := rc.ReconcileHosts
	if watch {
		listHosts = hl.WatchedHosts
	}
	if err := workflow.ExecuteLocalActivity(lctx, listHosts).Get(ctx, &hosts); err != nil {
		return nil, err
	}
	res.Hosts = len(hosts)
	var states []probedHost
	if watch {
		states = probeHosts(ctx, hosts)
	}
	now := workflow.Now(ctx)
	type exited struct {
		host berth.HostRef
		rec  berth.InstanceRecord
		// gone: the container itself is missing, so the instance is replaced.
		gone bool
		// unhealthy: it runs but fails its health check, so it is restarted.
		unhealthy bool
	}
	var found []exited
	for i, h := range hosts {
		var records []berth.InstanceRecord
		var containers []berth.HostContainer
		var err error
		if watch {
			records, containers, err = states[i].records, states[i].containers, states[i].err
			fs, down, werr := watchHost(ctx, in, h, err)
			if werr != nil {
				return nil, werr
			}
			res.Findings = append(res.Findings, fs...)
			if down {
				continue
			}
		} else {
			records, containers, err = hostState(ctx, h)
		}
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
			if ok && c.Unhealthy && rec.Instance.UID == c.UID && rec.State == berth.StateRunning && now.Sub(rec.CreatedAt) >= in.Grace &&
				workflow.GetVersion(ctx, healUnhealthyChange, workflow.DefaultVersion, 1) == 1 {
				found = append(found, exited{host: h, rec: rec, unhealthy: true})
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
				res.Findings = append(res.Findings, startHeal(ctx, e.host, e.rec.Instance, hs, in.HealthTimeout, e.unhealthy))
			}
		}
	}
	if watch && workflow.GetVersion(ctx, healTopUpChange, workflow.DefaultVersion, 1) == 1 {
		res.Findings = append(res.Findings, topUp(ctx, in, passRun)...)
	}
	if len(res.Findings) > 0 {
		if err := workflow.ExecuteLocalActivity(lctx, rc.RecordFindings, res.Findings).Get(ctx, nil); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// healTopUpChange is the GetVersion change id that made a pass bring a
// service with fewer live instances than its replicas back to them.
const healTopUpChange = "heal-top-up"

// TopUpID is the workflow id of a heal run that brings a service back to
// its replicas.
func TopUpID(serviceID uint) string { return fmt.Sprintf("heal-scale/%d", serviceID) }

// topUp gives every running service with fewer live instances than its
// replicas (a record lost to a crash, a recovery that could not finish) a
// heal run that scales it back out through the normal chain (placement,
// ports, load balancer, firewall, CMDB), under its application's lock and
// with the same backoff as an instance's heals.
func topUp(ctx workflow.Context, in HealPassInput, passRun string) []berth.Finding {
	var hl *activities.Heal
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	var short []berth.ShortService
	if err := workflow.ExecuteLocalActivity(lctx, hl.ShortServices).Get(ctx, &short); err != nil {
		return []berth.Finding{{Kind: berth.FindingMissing, Target: "services", Detail: "could not compare services with their replicas",
			Error: errorMessage(err)}}
	}
	var out []berth.Finding
	for _, ss := range short {
		var hs berth.HealStart
		if err := workflow.ExecuteLocalActivity(lctx, hl.BeginServiceHeal, activities.BeginServiceHealInput{ServiceID: ss.ServiceID,
			WorkflowID: TopUpID(ss.ServiceID), Key: fmt.Sprintf("%s/top-up/%d", passRun, ss.ServiceID)}).Get(ctx, &hs); err != nil {
			out = append(out, berth.Finding{Kind: berth.FindingMissing, Target: fmt.Sprintf("service %d", ss.ServiceID),
				Detail: "could not open a heal run to bring it back to its replicas", Error: errorMessage(err)})
			continue
		}
		switch hs.Verdict {
		case berth.HealGaveUp:
			out = append(out, berth.Finding{Kind: berth.FindingHealGaveUp, Target: hs.Subject, Detail: fmt.Sprintf(
				"it has %d live instance(s) of %d and was scaled back %d times within %s; left for a person", ss.Live, ss.Replicas, hs.Tries, berth.HealWindow)})
			continue
		case berth.HealOpened:
		default:
			continue
		}
		var tg activities.EvacuationStep
		if err := workflow.ExecuteLocalActivity(lctx, hl.TopUpTarget, ss.ServiceID).Get(ctx, &tg); err != nil {
			closeHealRun(ctx, hs.RunID, "the scale-out could not be planned: "+errorMessage(err))
			out = append(out, berth.Finding{Kind: berth.FindingHealed, Target: hs.Subject, Detail: "could not plan bringing it back to its replicas",
				Error: errorMessage(err)})
			continue
		}
		if len(tg.Instances) >= ss.Replicas {
			// Topped up meanwhile (a run finished between the reads).
			var st *activities.Store
			if err := workflow.ExecuteLocalActivity(lctx, st.Finish, activities.FinishInput{RunID: hs.RunID, Status: berth.RunSucceeded,
				At: workflow.Now(ctx)}).Get(ctx, nil); err != nil {
				workflow.GetLogger(ctx).Error("heal run left open", "run", hs.RunID, "error", err)
			}
			continue
		}
		f := berth.Finding{Kind: berth.FindingHealed, Target: hs.Subject, Detail: fmt.Sprintf(
			"it had %d live instance(s) of %d; heal run %d starts %d more (heal %d of at most %d within %s)",
			len(tg.Instances), ss.Replicas, hs.RunID, ss.Replicas-len(tg.Instances), hs.Tries+1, berth.MaxHeals, berth.HealWindow)}
		out = append(out, startHealRun(ctx, hs, f, ScaleServiceName, ScaleServiceInput{RunID: hs.RunID, ApplicationID: tg.ApplicationID,
			EnvironmentID: tg.EnvironmentID, ServiceID: tg.ServiceID, Tenant: tg.Tenant, Env: tg.Env, App: tg.App, Service: tg.Service,
			From: len(tg.Instances), To: ss.Replicas, PortMin: in.PortMin, PortMax: in.PortMax, HealthTimeout: in.HealthTimeout,
			DrainTimeout: in.DrainTimeout, LB: tg.LB, AppServices: tg.AppServices}))
	}
	return out
}

// startHeal starts the heal run's workflow that starts an exited container again.
func startHeal(ctx workflow.Context, h berth.HostRef, pi berth.PlannedInstance, hs berth.HealStart, healthTimeout time.Duration, restart bool) berth.Finding {
	what := "its container had exited; heal run %d starts it again"
	if restart {
		what = "its container runs but fails its health check; heal run %d restarts it"
	}
	f := berth.Finding{Kind: berth.FindingHealed, Host: h.Name, Target: pi.Name,
		Detail: fmt.Sprintf(what+" (heal %d of at most %d within %s)", hs.RunID, hs.Tries+1, berth.MaxHeals, berth.HealWindow)}
	return startHealRun(ctx, hs, f, HealInstanceName, HealInstanceInput{RunID: hs.RunID, ApplicationID: hs.ApplicationID,
		App: hs.App, Instance: pi, HealthTimeout: healthTimeout, Restart: restart})
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

// probedHost is what a pass read of one host: its records and containers,
// or why its engine did not answer.
type probedHost struct {
	records    []berth.InstanceRecord
	containers []berth.HostContainer
	err        error
}

// probeHosts reads every host at once, so that one engine that does not
// answer (each probe tries for a while) does not hold up the others.
func probeHosts(ctx workflow.Context, hosts []berth.HostRef) []probedHost {
	out := make([]probedHost, len(hosts))
	wg := workflow.NewWaitGroup(ctx)
	for i, h := range hosts {
		wg.Add(1)
		workflow.Go(ctx, func(gctx workflow.Context) {
			defer wg.Done()
			out[i].records, out[i].containers, out[i].err = hostState(gctx, h)
		})
	}
	wg.Wait(ctx)
	return out
}

// watchHost records whether the host's engine answered this pass. A ready
// host that did not answer HostDownAfter passes in a row is marked down.
// While a down host does not answer, a recovery run (DrainHost with Lost)
// replaces its live instances on the environments' other ready hosts, each
// move under its application's lock, so runs holding one are waited for.
// Once it answers again, the containers of its lost instances are removed
// (their records closed and ports freed) and a check (ProvisionHost) marks
// it ready. down says the host is down, so the pass leaves its instances
// alone.
func watchHost(ctx workflow.Context, in HealPassInput, h berth.HostRef, probeErr error) ([]berth.Finding, bool, error) {
	var hl *activities.Heal
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	msg := ""
	if probeErr != nil {
		msg = errorMessage(probeErr)
	}
	var probe berth.HostProbe
	if err := workflow.ExecuteLocalActivity(lctx, hl.RecordProbe, activities.ProbeInput{HostID: h.ID, OK: probeErr == nil, Error: msg,
		DownAfter: in.HostDownAfter}).Get(ctx, &probe); err != nil {
		return nil, false, err
	}
	var out []berth.Finding
	if probe.WentDown {
		out = append(out, berth.Finding{Kind: berth.FindingHostDown, Host: h.Name, Target: "host",
			Detail: fmt.Sprintf("its engine did not answer %d passes in a row (last: %s); marked down, and its %d live instance(s) are replaced on the other ready hosts of their environments",
				probe.Failures, msg, probe.Live)})
	}
	if probe.State != berth.HostDown {
		return out, false, nil
	}
	passRun := workflow.GetInfo(ctx).WorkflowExecution.RunID
	if probeErr != nil {
		if probe.Live > 0 {
			out = append(out, startHostRun(ctx, h, berth.KindRecoverHost, RecoverHostID(h.Name), passRun, DrainHostName,
				func(runID uint) any {
					return DrainHostInput{RunID: runID, Host: h, StartedBy: healActor, PortMin: in.PortMin, PortMax: in.PortMax,
						HealthTimeout: in.HealthTimeout, DrainTimeout: in.DrainTimeout, Lost: true}
				}, "its live instances are replaced on other hosts by recovery run %d")...)
		}
		return out, true, nil
	}
	out = append(out, removeLost(ctx, h)...)
	if probe.Live == 0 {
		out = append(out, removeRelays(ctx, h)...)
	}
	out = append(out, startHostRun(ctx, h, berth.KindProvisionHost, ProvisionHostID(h.Name), passRun, ProvisionHostName,
		func(runID uint) any { return ProvisionHostInput{RunID: runID, Host: h} },
		"its engine answers again; check run %d marks it ready")...)
	return out, true, nil
}

// healActor is who self-healing's runs are started by (store.HealActor).
const healActor = "self-healing"

// startHostRun opens a run of self-healing's on a host under the host's
// lock and starts its workflow; a host another run holds is left for the
// next pass.
func startHostRun(ctx workflow.Context, h berth.HostRef, kind berth.RunKind, workflowID, passRun, workflowName string,
	input func(runID uint) any, detail string) []berth.Finding {
	var hl *activities.Heal
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	var hs berth.HealStart
	if err := workflow.ExecuteLocalActivity(lctx, hl.BeginHostRun, activities.HostRunInput{HostID: h.ID, Kind: kind, WorkflowID: workflowID,
		LockKey: HostLockKey(h.Name), Key: passRun + "/" + string(kind) + "/" + h.Name}).Get(ctx, &hs); err != nil {
		return []berth.Finding{{Kind: berth.FindingHostDown, Host: h.Name, Target: "host", Detail: "could not open a " + string(kind) + " run",
			Error: errorMessage(err)}}
	}
	switch hs.Verdict {
	case berth.HealOpened:
	case berth.HealGaveUp:
		return []berth.Finding{{Kind: berth.FindingHealGaveUp, Host: h.Name, Target: "host",
			Detail: fmt.Sprintf("its %s runs failed %d times within %s; left for a person (check or drain the host)", kind, hs.Tries, berth.HealWindow)}}
	default:
		return nil
	}
	kindOf := berth.FindingHealed
	if kind == berth.KindProvisionHost {
		kindOf = berth.FindingHostBack
	}
	f := berth.Finding{Kind: kindOf, Host: h.Name, Target: "host", Detail: fmt.Sprintf(detail, hs.RunID)}
	return []berth.Finding{startHealRun(ctx, hs, f, workflowName, input(hs.RunID))}
}

// removeLost removes, from a host that answers again, the containers of
// the instances lost with it, then closes their records and frees their
// ports. What fails is tried again by the next pass.
func removeLost(ctx workflow.Context, h berth.HostRef) []berth.Finding {
	var hl *activities.Heal
	var d *activities.Docker
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	var lost []berth.PlannedInstance
	if err := workflow.ExecuteLocalActivity(lctx, hl.LostInstances, h.ID).Get(ctx, &lost); err != nil {
		return []berth.Finding{{Kind: berth.FindingLostRemoved, Host: h.Name, Target: "host", Detail: "could not list its lost instances",
			Error: errorMessage(err)}}
	}
	futures := make([]workflow.Future, len(lost))
	actx := workflow.WithActivityOptions(ctx, withQueue(lostOptions, h.Region))
	for i, pi := range lost {
		futures[i] = workflow.ExecuteActivity(actx, d.RemoveInstance, activities.RemoveInstanceInput{Host: h, Name: pi.Name, UID: pi.UID})
	}
	out := make([]berth.Finding, 0, len(lost))
	var removed []string
	for i, f := range futures {
		fd := berth.Finding{Kind: berth.FindingLostRemoved, Host: h.Name, Target: lost[i].Name,
			Detail: "lost when its host stopped answering, and replaced elsewhere; its container was removed once the host answered again, and its ports released"}
		if err := f.Get(ctx, nil); err != nil {
			fd.Detail, fd.Error = "lost when its host stopped answering; its container could not be removed yet", errorMessage(err)
		} else {
			removed = append(removed, lost[i].Name)
		}
		out = append(out, fd)
	}
	if err := workflow.ExecuteLocalActivity(lctx, hl.CloseLost, removed).Get(ctx, nil); err != nil {
		return append(out, berth.Finding{Kind: berth.FindingLostRemoved, Host: h.Name, Target: "host", Detail: "could not close the records of its lost instances",
			Error: errorMessage(err)})
	}
	return out
}

// removeRelays removes the relays a host that held no live instance kept
// while it was down: the moves of its instances could not reach it.
func removeRelays(ctx workflow.Context, h berth.HostRef) []berth.Finding {
	var d *activities.Docker
	actx := workflow.WithActivityOptions(ctx, withQueue(lostOptions, h.Region))
	var n int
	if err := workflow.ExecuteActivity(actx, d.RemoveHostRelays, h).Get(ctx, &n); err != nil {
		return []berth.Finding{{Kind: berth.FindingLostRemoved, Host: h.Name, Target: "relays", Detail: "could not remove the relays it kept while down",
			Error: errorMessage(err)}}
	}
	if n == 0 {
		return nil
	}
	return []berth.Finding{{Kind: berth.FindingLostRemoved, Host: h.Name, Target: "relays",
		Detail: fmt.Sprintf("%d relay container(s) of applications that no longer run on it, kept while it was down, removed", n)}}
}
