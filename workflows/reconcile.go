package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
)

// ReconcileName is the registered name of Reconcile.
const ReconcileName = "Reconcile"

// ReconcileScheduleID is the Temporal Schedule that runs Reconcile.
const ReconcileScheduleID = "berth-reconcile"

// ReconcileInput says how old a leftover must be before it is touched, so
// that a run still making it is never raced.
type ReconcileInput struct {
	Grace time.Duration `json:"grace"`
}

// ReconcileResult is every difference found, and what was done about it.
type ReconcileResult struct {
	Hosts    int             `json:"hosts"`
	Findings []berth.Finding `json:"findings"`
}

// resendDecisionsChange is the GetVersion change id that made a pass send
// decisions stranded by an API crash to their waiting runs again.
const resendDecisionsChange = "resend-decisions"

// pruneImagesChange is the GetVersion change id that made a pass prune, on
// every host it could compare, the built images no kept release names.
const pruneImagesChange = "prune-images"

// sweepTerminalsChange is the GetVersion change id that made a pass end the
// records of terminal sessions whose relaying server died.
const sweepTerminalsChange = "sweep-terminals"

// firewallDriftChange is the GetVersion change id that made a pass compare
// each region's firewall rules with the recorded openings and repair them.
const firewallDriftChange = "firewall-drift"

// ReconcileID is the workflow id of a reconciler pass asked for by hand.
func ReconcileID() string { return "reconcile/now" }

// Reconcile finds what runs that died without their undo left behind, and
// repairs it. Runs whose workflow ended without recording an outcome are
// closed (lock and approvals freed). Then, host by host, the records are
// compared with the engine: a container berth made that no live record
// holds, of a run that has ended, is removed; an instance planned by an
// ended run that never started is removed and its ports released; a live
// instance whose container is gone is reported. Nothing younger than the
// grace is touched. Every finding goes to the audit trail.
func Reconcile(ctx workflow.Context, in ReconcileInput) (*ReconcileResult, error) {
	var rc *activities.Reconcile
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	res := &ReconcileResult{Findings: []berth.Finding{}}
	var swept []berth.Finding
	if err := workflow.ExecuteLocalActivity(lctx, rc.SweepRuns, activities.SweepRunsInput{Grace: in.Grace}).Get(ctx, &swept); err != nil {
		return nil, err
	}
	res.Findings = append(res.Findings, swept...)
	if workflow.GetVersion(ctx, resendDecisionsChange, workflow.DefaultVersion, 1) == 1 {
		var resent []berth.Finding
		if err := workflow.ExecuteLocalActivity(lctx, rc.ResendDecisions,
			activities.ResendDecisionsInput{Grace: in.Grace, Signal: ApprovalSignal}).Get(ctx, &resent); err != nil {
			return nil, err
		}
		res.Findings = append(res.Findings, resent...)
	}
	if workflow.GetVersion(ctx, sweepTerminalsChange, workflow.DefaultVersion, 1) == 1 {
		var ended []berth.Finding
		if err := workflow.ExecuteLocalActivity(lctx, rc.SweepTerminals,
			activities.SweepTerminalsInput{Grace: in.Grace, WorkflowPrefix: TerminalSessionID("")}).Get(ctx, &ended); err != nil {
			return nil, err
		}
		res.Findings = append(res.Findings, ended...)
	}
	var hosts []berth.HostRef
	if err := workflow.ExecuteLocalActivity(lctx, rc.ReconcileHosts).Get(ctx, &hosts); err != nil {
		return nil, err
	}
	var openIDs []uint
	if err := workflow.ExecuteLocalActivity(lctx, rc.OpenRunIDs).Get(ctx, &openIDs); err != nil {
		return nil, err
	}
	open := map[uint]bool{}
	for _, id := range openIDs {
		open[id] = true
	}
	res.Hosts = len(hosts)
	var reached []berth.HostRef
	for _, h := range hosts {
		fs, err := reconcileHost(ctx, h, open, in.Grace)
		if err != nil {
			// An unreachable host is a finding of its own; the others go on.
			fs = append(fs, berth.Finding{Kind: berth.FindingMissing, Host: h.Name, Target: "host",
				Detail: "could not compare the host with the records", Error: errorMessage(err)})
		} else {
			reached = append(reached, h)
		}
		res.Findings = append(res.Findings, fs...)
	}
	if workflow.GetVersion(ctx, firewallDriftChange, workflow.DefaultVersion, 1) == 1 {
		fs, err := reconcileFirewall(ctx)
		if err != nil {
			return nil, err
		}
		res.Findings = append(res.Findings, fs...)
	}
	if len(reached) > 0 && workflow.GetVersion(ctx, pruneImagesChange, workflow.DefaultVersion, 1) == 1 {
		var keep []string
		if err := workflow.ExecuteLocalActivity(lctx, rc.KeptImages).Get(ctx, &keep); err != nil {
			return nil, err
		}
		for _, h := range reached {
			res.Findings = append(res.Findings, pruneHostImages(ctx, h, keep, in.Grace)...)
		}
	}
	if len(res.Findings) > 0 {
		if err := workflow.ExecuteLocalActivity(lctx, rc.RecordFindings, res.Findings).Get(ctx, nil); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// hostState reads what the records say a host holds, then the containers
// berth made that its engine lists.
func hostState(ctx workflow.Context, h berth.HostRef) ([]berth.InstanceRecord, []berth.HostContainer, error) {
	var rc *activities.Reconcile
	var d *activities.Docker
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	var records []berth.InstanceRecord
	if err := workflow.ExecuteLocalActivity(lctx, rc.HostRecords, h.ID).Get(ctx, &records); err != nil {
		return nil, nil, err
	}
	var containers []berth.HostContainer
	actx := workflow.WithActivityOptions(ctx, withQueue(probeOptions, h.Region))
	if err := workflow.ExecuteActivity(actx, d.HostContainers, h).Get(ctx, &containers); err != nil {
		return records, nil, err
	}
	return records, containers, nil
}

// reconcileHost compares one host's containers with its records and
// repairs what it may.
func reconcileHost(ctx workflow.Context, h berth.HostRef, open map[uint]bool, grace time.Duration) ([]berth.Finding, error) {
	var d *activities.Docker
	var st *activities.Store
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	records, containers, err := hostState(ctx, h)
	if err != nil {
		return nil, err
	}
	now := workflow.Now(ctx)
	old := func(t time.Time) bool { return now.Sub(t) >= grace }
	byName := map[string]berth.InstanceRecord{}
	for _, rec := range records {
		byName[rec.Instance.Name] = rec
	}
	seen := map[string]bool{}
	var out []berth.Finding
	var release []string
	remove := func(name, uid string, f berth.Finding) bool {
		cctx := workflow.WithActivityOptions(ctx, withQueue(cleanupOptions, h.Region))
		err := workflow.ExecuteActivity(cctx, d.RemoveInstance, activities.RemoveInstanceInput{Host: h, Name: name, UID: uid}).Get(ctx, nil)
		if err != nil {
			f.Error = errorMessage(err)
		}
		out = append(out, f)
		return err == nil
	}
	for _, c := range containers {
		if c.Host != "" && c.Host != h.Name {
			// Another host record on the same engine placed it: not ours
			// to judge. (Recorded histories carry no Host: replay is unchanged.)
			continue
		}
		seen[c.Name] = true
		rec, held := byName[c.Name]
		switch {
		case held && rec.Instance.UID == c.UID && rec.State == berth.StatePlanned && !open[rec.RunID] && old(rec.CreatedAt):
			// Made by a run that died between start and record.
			// Its ports go only once its container is known to be gone.
			if remove(c.Name, c.UID, berth.Finding{Kind: berth.FindingAbandoned, Host: h.Name, Target: c.Name,
				Detail: fmt.Sprintf("planned by run %d, which ended before recording it; container removed, ports released", rec.RunID)}) {
				release = append(release, c.Name)
			}
		case held && rec.Instance.UID == c.UID:
		case open[c.RunID] || !old(c.Created):
			// Its run may still record it, or undo it.
		default:
			remove(c.Name, c.UID, berth.Finding{Kind: berth.FindingOrphan, Host: h.Name, Target: c.Name,
				Detail: fmt.Sprintf("no live record holds it and its run %d has ended; removed", c.RunID)})
		}
	}
	for _, rec := range records {
		if seen[rec.Instance.Name] {
			continue
		}
		switch {
		case rec.State == berth.StatePlanned && !open[rec.RunID] && old(rec.CreatedAt):
			release = append(release, rec.Instance.Name)
			out = append(out, berth.Finding{Kind: berth.FindingAbandoned, Host: h.Name, Target: rec.Instance.Name,
				Detail: fmt.Sprintf("planned by run %d, which ended before starting it; ports released", rec.RunID)})
		case rec.State == berth.StateRunning && old(rec.CreatedAt):
			out = append(out, berth.Finding{Kind: berth.FindingMissing, Host: h.Name, Target: rec.Instance.Name,
				Detail: "recorded as running but the host has no container for it"})
		}
	}
	if len(release) > 0 {
		if err := workflow.ExecuteLocalActivity(lctx, st.ReleaseInstances, release).Get(ctx, nil); err != nil {
			return out, err
		}
	}
	return out, nil
}

// pruneHostImages frees a host's disk of the images berth built that no
// kept release names: a service keeps its current, last-good and newest
// release's images; older ones stay in the registry only.
func pruneHostImages(ctx workflow.Context, h berth.HostRef, keep []string, grace time.Duration) []berth.Finding {
	var d *activities.Docker
	actx := workflow.WithActivityOptions(ctx, withQueue(pruneOptions, h.Region))
	var removed []string
	err := workflow.ExecuteActivity(actx, d.PruneImages, activities.PruneImagesInput{Host: h, Keep: keep, Grace: grace, Now: workflow.Now(ctx)}).Get(ctx, &removed)
	out := make([]berth.Finding, 0, len(removed)+1)
	for _, tag := range removed {
		out = append(out, berth.Finding{Kind: berth.FindingImagePruned, Host: h.Name, Target: tag,
			Detail: "built for a release older than its service's current, last-good and newest ones, and used by no container; removed from the host (the registry keeps it)"})
	}
	if err != nil {
		out = append(out, berth.Finding{Kind: berth.FindingImagePruned, Host: h.Name, Target: "images",
			Detail: "could not prune the host's built images", Error: errorMessage(err)})
	}
	return out
}

// reconcileFirewall repairs each region's firewall against the records,
// all regions at once. A region that cannot be reached is a finding; the
// others go on.
func reconcileFirewall(ctx workflow.Context) ([]berth.Finding, error) {
	var rc *activities.Reconcile
	var fw *activities.Firewall
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	var plans []activities.FirewallPlan
	if err := workflow.ExecuteLocalActivity(lctx, rc.FirewallRecords).Get(ctx, &plans); err != nil {
		return nil, err
	}
	futures := make([]workflow.Future, len(plans))
	for i, p := range plans {
		actx := workflow.WithActivityOptions(ctx, withQueue(firewallRepairOptions, p.Region))
		futures[i] = workflow.ExecuteActivity(actx, fw.Repair, p.Input)
	}
	var out []berth.Finding
	for i, f := range futures {
		region := plans[i].Region
		var rep activities.FirewallRepair
		if err := f.Get(ctx, &rep); err != nil {
			out = append(out, berth.Finding{Kind: berth.FindingFirewallRepaired, Target: "region " + region,
				Detail: "could not compare the firewall with the records", Error: errorMessage(err)})
			continue
		}
		for _, id := range rep.Reopened {
			out = append(out, berth.Finding{Kind: berth.FindingFirewallRepaired, Target: id,
				Detail: fmt.Sprintf("opened again in region %s: its rule had gone", region)})
		}
		for _, id := range rep.Closed {
			out = append(out, berth.Finding{Kind: berth.FindingFirewallRepaired, Target: id,
				Detail: fmt.Sprintf("closed in region %s: no live opening is recorded for its rule", region)})
		}
	}
	return out, nil
}
