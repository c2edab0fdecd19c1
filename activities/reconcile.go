package activities

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"go.temporal.io/sdk/activity"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/firewall"
)

// ReconcileRecords is the part of the store the reconciler reads and repairs.
type ReconcileRecords interface {
	ReadyHostsAll(ctx context.Context) ([]berth.HostRef, error)
	HostRecords(ctx context.Context, hostID uint) ([]berth.InstanceRecord, error)
	OpenRuns(ctx context.Context, before time.Time) ([]berth.OpenRun, error)
	OpenRunIDs(ctx context.Context) ([]uint, error)
	AbandonRun(ctx context.Context, id uint) error
	RecordFindings(ctx context.Context, fs []berth.Finding) error
	StrandedDecisions(ctx context.Context, before time.Time) ([]berth.StrandedDecision, error)
	KeptImages(ctx context.Context) ([]string, error)
	RecordVolumeUse(ctx context.Context, hostID uint, uses []berth.VolumeUse, at time.Time) ([]berth.VolumeUse, error)
	OpenTerminalSessions(ctx context.Context, before time.Time) ([]string, error)
	AbandonTerminalSession(ctx context.Context, id, reason string) error
	FirewallRecords(ctx context.Context) ([]berth.RegionFirewall, error)
}

// WorkflowStates says whether a run's workflow has closed; the worker's
// Temporal client answers.
type WorkflowStates interface {
	Closed(ctx context.Context, workflowID, runID string) (bool, error)
	// Signal sends a signal to a workflow's current run; one that has
	// closed meanwhile is no error.
	Signal(ctx context.Context, workflowID, name string, arg any) error
}

// Reconcile holds the reconciler's reads and repairs of the records. Its
// activities run as local activities on the central worker.
type Reconcile struct {
	Records   ReconcileRecords
	Workflows WorkflowStates
}

// ReconcileHosts lists every ready host, the hosts a pass looks at.
func (r *Reconcile) ReconcileHosts(ctx context.Context) ([]berth.HostRef, error) {
	hs, err := r.Records.ReadyHostsAll(ctx)
	return hs, storeErr(err)
}

// VolumeUseInput is one host's volumes as a disk pass measured them.
type VolumeUseInput struct {
	HostID uint              `json:"hostId"`
	Uses   []berth.VolumeUse `json:"uses"`
	At     time.Time         `json:"at"`
}

// RecordVolumeUse keeps a host's measured volumes and returns those that
// went over their size since the last pass.
func (r *Reconcile) RecordVolumeUse(ctx context.Context, in VolumeUseInput) ([]berth.VolumeUse, error) {
	over, err := r.Records.RecordVolumeUse(ctx, in.HostID, in.Uses, in.At)
	return over, storeErr(err)
}

// HostRecords lists what the records say a host holds.
func (r *Reconcile) HostRecords(ctx context.Context, hostID uint) ([]berth.InstanceRecord, error) {
	rs, err := r.Records.HostRecords(ctx, hostID)
	return rs, storeErr(err)
}

// FirewallRepairInput is what one region's firewall should hold.
type FirewallRepairInput struct {
	Want []firewall.Opening `json:"want"`
	// Keep are the ids of the region's openings requested or open: a rule
	// for one of them is never closed, since a run may be making it now.
	Keep []string `json:"keep"`
}

// FirewallPlan is, per region, what its firewall should hold.
type FirewallPlan struct {
	Region string              `json:"region"`
	Input  FirewallRepairInput `json:"input"`
}

// FirewallRecords reads what every region's firewall should hold.
func (r *Reconcile) FirewallRecords(ctx context.Context) ([]FirewallPlan, error) {
	regions, err := r.Records.FirewallRecords(ctx)
	if err != nil {
		return nil, storeErr(err)
	}
	out := make([]FirewallPlan, len(regions))
	for i, rf := range regions {
		out[i] = FirewallPlan{Region: rf.Region, Input: FirewallRepairInput{Want: []firewall.Opening{}, Keep: rf.Keep}}
		for _, o := range rf.Want {
			out[i].Input.Want = append(out[i].Input.Want, firewall.Opening{ID: o.OpeningID, Protocol: o.Protocol,
				DestIP: o.DestIP, DestPort: o.DestPort, Source: o.Source})
		}
	}
	return out, nil
}

// OpenRunIDs lists the runs still pending or running.
func (r *Reconcile) OpenRunIDs(ctx context.Context) ([]uint, error) {
	ids, err := r.Records.OpenRunIDs(ctx)
	return ids, storeErr(err)
}

// SweepRunsInput says how old an open run must be before its workflow is
// asked whether it still runs.
type SweepRunsInput struct {
	Grace time.Duration `json:"grace"`
}

// SweepRuns closes every open run whose workflow has ended without saying
// so (terminated, or timed out): its lock and approvals are freed. Repeating
// it is harmless.
func (r *Reconcile) SweepRuns(ctx context.Context, in SweepRunsInput) ([]berth.Finding, error) {
	if r.Workflows == nil {
		return nil, nil
	}
	runs, err := r.Records.OpenRuns(ctx, time.Now().Add(-in.Grace))
	if err != nil {
		return nil, storeErr(err)
	}
	out := []berth.Finding{}
	for _, run := range runs {
		target := "run " + strconv.FormatUint(uint64(run.ID), 10)
		closed, err := r.Workflows.Closed(ctx, run.WorkflowID, run.TemporalRunID)
		if err != nil {
			// One run Temporal cannot answer for must not stop the pass.
			out = append(out, berth.Finding{Kind: berth.FindingRunClosed, Target: target,
				Detail: "could not ask Temporal whether its workflow still runs", Error: err.Error()})
			continue
		}
		if !closed {
			continue
		}
		f := berth.Finding{Kind: berth.FindingRunClosed, Target: target,
			Detail: fmt.Sprintf("%s of %s ended without recording its outcome; closed as failed, lock and approvals freed", run.Kind, run.Subject)}
		if err := r.Records.AbandonRun(ctx, run.ID); err != nil {
			f.Error = err.Error()
		}
		out = append(out, f)
	}
	return out, nil
}

// SweepTerminalsInput: sessions older than Grace are checked; a session's
// workflow id is WorkflowPrefix and its id.
type SweepTerminalsInput struct {
	Grace          time.Duration `json:"grace"`
	WorkflowPrefix string        `json:"workflowPrefix"`
}

// SweepTerminals ends the records of terminal sessions whose workflow has
// closed although no server recorded their end (the server relaying them
// died): what was typed up to its last save is kept.
func (r *Reconcile) SweepTerminals(ctx context.Context, in SweepTerminalsInput) ([]berth.Finding, error) {
	if r.Workflows == nil {
		return nil, nil
	}
	ids, err := r.Records.OpenTerminalSessions(ctx, time.Now().Add(-in.Grace))
	if err != nil {
		return nil, storeErr(err)
	}
	out := []berth.Finding{}
	for _, id := range ids {
		closed, err := r.Workflows.Closed(ctx, in.WorkflowPrefix+id, "")
		if err != nil || !closed {
			continue
		}
		f := berth.Finding{Kind: berth.FindingTerminalClosed, Target: "terminal session " + id,
			Detail: "its server stopped relaying it before recording its end; ended, with what was typed up to its last save"}
		if err := r.Records.AbandonTerminalSession(ctx, id, "the server relaying it stopped"); err != nil {
			f.Error = err.Error()
		}
		out = append(out, f)
	}
	return out, nil
}

// ResendDecisionsInput says how old a decision must be before the run that
// still waits for it is sent it again, and the signal's name.
type ResendDecisionsInput struct {
	Grace  time.Duration `json:"grace"`
	Signal string        `json:"signal"`
}

// ResendDecisions sends every decision the records hold, but whose run
// still waits on its step, to the run again. Without it such a run waits
// until its approval's timeout (days) and then times out although it was
// decided. The run ignores a decision it already has, so a repeat is
// harmless.
func (r *Reconcile) ResendDecisions(ctx context.Context, in ResendDecisionsInput) ([]berth.Finding, error) {
	if r.Workflows == nil {
		return nil, nil
	}
	ds, err := r.Records.StrandedDecisions(ctx, time.Now().Add(-in.Grace))
	if err != nil {
		return nil, storeErr(err)
	}
	out := []berth.Finding{}
	for _, d := range ds {
		f := berth.Finding{Kind: berth.FindingDecisionResent, Target: "run " + strconv.FormatUint(uint64(d.RunID), 10),
			Detail: fmt.Sprintf("approval %d was %s by %s in the records, but its run still waited; the decision was sent again",
				d.Decision.ApprovalID, d.Decision.State, strings.Join(d.Decision.By, ", "))}
		if err := r.Workflows.Signal(ctx, d.WorkflowID, in.Signal, d.Decision); err != nil {
			f.Error = err.Error()
		}
		out = append(out, f)
	}
	return out, nil
}

// RecordFindings keeps a pass's findings in the audit trail.
func (r *Reconcile) RecordFindings(ctx context.Context, fs []berth.Finding) error {
	return storeErr(r.Records.RecordFindings(ctx, fs))
}

// HostContainers lists the containers berth made on a host: those with an
// instance uid label, running or not.
func (d *Docker) HostContainers(ctx context.Context, h berth.HostRef) ([]berth.HostContainer, error) {
	eng, err := d.engine(ctx, h)
	if err != nil {
		return nil, err
	}
	list, err := eng.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", LabelUID)})
	if err != nil {
		return nil, fmt.Errorf("list containers on %s: %w", h.Name, err)
	}
	out := make([]berth.HostContainer, 0, len(list.Items))
	for _, c := range list.Items {
		if len(c.Names) == 0 {
			continue
		}
		run, _ := strconv.ParseUint(c.Labels["berth.run"], 10, 64)
		out = append(out, berth.HostContainer{Name: trimSlash(c.Names[0]), ID: c.ID, UID: c.Labels[LabelUID], RunID: uint(run), Host: c.Labels[LabelHost],
			Created: time.Unix(c.Created, 0).UTC(), Running: c.State == "running",
			Unhealthy: c.State == "running" && ((c.Health != nil && c.Health.Status == "unhealthy") || strings.Contains(c.Status, "(unhealthy)"))})
	}
	return out, nil
}

func trimSlash(s string) string {
	if len(s) > 0 && s[0] == '/' {
		return s[1:]
	}
	return s
}

// KeptImages lists the images no host may prune: those of the releases
// still kept and those live services run.
func (r *Reconcile) KeptImages(ctx context.Context) ([]string, error) {
	imgs, err := r.Records.KeptImages(ctx)
	return imgs, storeErr(err)
}

// PruneImagesInput prunes one host's built images.
type PruneImagesInput struct {
	Host berth.HostRef `json:"host"`
	Keep []string      `json:"keep"`
	// Grace spares images younger than it: a build whose release is not
	// recorded yet.
	Grace time.Duration `json:"grace"`
	// Now is the workflow's time, so that the grace is measured the same
	// way on a retry.
	Now time.Time `json:"now"`
}

// PruneImages removes from a host the tags in the registry of images berth
// built from packages (labelled LabelPackage) that Keep does not name and
// no container was made from, of images older than the grace. An image
// goes with its last tag; the registry keeps it, so a rollback can pull it
// again. Removing what is already gone is nothing, so a retry is harmless.
// It returns the tags removed.
func (d *Docker) PruneImages(ctx context.Context, in PruneImagesInput) ([]string, error) {
	if d.Registry == "" {
		return nil, nil // nothing is built without a registry
	}
	eng, err := d.engine(ctx, in.Host)
	if err != nil {
		return nil, err
	}
	list, err := eng.ImageList(ctx, client.ImageListOptions{Filters: make(client.Filters).Add("label", LabelPackage)})
	if err != nil {
		return nil, fmt.Errorf("list images on %s: %w", in.Host.Name, err)
	}
	keep := make(map[string]bool, len(in.Keep))
	for _, k := range in.Keep {
		keep[k] = true
	}
	// Any container, stopped or not, holds the tag it was made from: the
	// tag removed from under it would leave it unable to say what it runs.
	// (An image's last tag the engine refuses to remove while a container
	// uses the image; another tag of the same image may go.)
	used := map[string]bool{}
	cs, err := eng.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("list containers on %s: %w", in.Host.Name, err)
	}
	for _, c := range cs.Items {
		used[c.Image] = true
	}
	var removed []string
	for _, img := range list.Items {
		if in.Now.Sub(time.Unix(img.Created, 0)) < in.Grace {
			continue
		}
		for _, tag := range img.RepoTags {
			// Only tags in our registry: a tag a kept release names stays,
			// and with it the image; the other tags of the image go.
			if keep[tag] || used[tag] || !strings.HasPrefix(tag, d.Registry+"/") {
				continue
			}
			activity.RecordHeartbeat(ctx, tag)
			if _, err := eng.ImageRemove(ctx, tag, client.ImageRemoveOptions{}); err != nil {
				if cerrdefs.IsNotFound(err) || cerrdefs.IsConflict(err) {
					continue
				}
				return removed, fmt.Errorf("remove image %s on %s: %w", tag, in.Host.Name, err)
			}
			removed = append(removed, tag)
		}
	}
	return removed, nil
}
