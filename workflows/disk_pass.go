package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
)

// DiskPassName is the registered name of DiskPass.
const DiskPassName = "DiskPass"

// DiskScheduleID is the Temporal Schedule that runs DiskPass.
const DiskScheduleID = "berth-disk"

// DiskPassInput is empty: a pass measures every ready host.
type DiskPassInput struct{}

// DiskPassResult is what a pass measured and found.
type DiskPassResult struct {
	Hosts    int             `json:"hosts"`
	Volumes  int             `json:"volumes"`
	Findings []berth.Finding `json:"findings"`
}

// DiskPass measures, host by host through the region's worker, what the
// named volumes berth made hold, keeps the figures for the capacity view,
// and reports each volume that went over its declared size: the volume
// quotas count declared sizes, and only a host on XFS with project quotas
// holds a volume to its size by itself. A host that does not answer is
// skipped until the next pass.
func DiskPass(ctx workflow.Context, _ DiskPassInput) (*DiskPassResult, error) {
	var rc *activities.Reconcile
	var d *activities.Docker
	lctx := workflow.WithLocalActivityOptions(ctx, storeOptions)
	var hosts []berth.HostRef
	if err := workflow.ExecuteLocalActivity(lctx, rc.ReconcileHosts).Get(ctx, &hosts); err != nil {
		return nil, err
	}
	res := &DiskPassResult{Hosts: len(hosts), Findings: []berth.Finding{}}
	for _, h := range hosts {
		var uses []berth.VolumeUse
		actx := workflow.WithActivityOptions(ctx, withQueue(measureOptions, h.Region))
		if err := workflow.ExecuteActivity(actx, d.MeasureVolumes, h).Get(ctx, &uses); err != nil {
			workflow.GetLogger(ctx).Warn("volumes not measured", "host", h.Name, "error", err)
			continue
		}
		res.Volumes += len(uses)
		var over []berth.VolumeUse
		if err := workflow.ExecuteLocalActivity(lctx, rc.RecordVolumeUse, activities.VolumeUseInput{HostID: h.ID, Uses: uses,
			At: workflow.Now(ctx)}).Get(ctx, &over); err != nil {
			return nil, err
		}
		for _, v := range over {
			res.Findings = append(res.Findings, berth.Finding{Kind: berth.FindingVolumeOverSize, Host: h.Name, Target: v.Name,
				Detail: fmt.Sprintf("volume %s of %s/%s/%s holds %s, over the %s it was declared with (and its quota counts); this host's filesystem does not hold volumes to their size",
					v.Name, v.Tenant, v.Env, v.App, berth.BytesText(v.UsedBytes), berth.BytesText(v.SizeBytes))})
		}
	}
	if len(res.Findings) > 0 {
		if err := workflow.ExecuteLocalActivity(lctx, rc.RecordFindings, res.Findings).Get(ctx, nil); err != nil {
			return nil, err
		}
	}
	return res, nil
}
