package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
)

// InstanceStatsName is the registered name of InstanceStats.
const InstanceStatsName = "InstanceStats"

// InstanceStatsInput names an instance and its host; the host's region is
// where the read runs.
type InstanceStatsInput struct {
	Instance berth.InstanceRef `json:"instance"`
}

// InstanceStatsResult is one sample of the instance's resource use.
type InstanceStatsResult struct {
	Stats berth.InstanceStats `json:"stats"`
}

// InstanceStatsID is the workflow id of one read; reads of the same
// instance at the same moment (two open pages) share one execution.
func InstanceStatsID(instance string) string { return fmt.Sprintf("instance-stats/%s", instance) }

// InstanceStats reads an instance's live figures from inside its region:
// the API reaches Docker engines only through Temporal's routing.
func InstanceStats(ctx workflow.Context, in InstanceStatsInput) (*InstanceStatsResult, error) {
	var d *activities.Docker
	actx := workflow.WithActivityOptions(ctx, withQueue(liveReadOptions, in.Instance.Host.Region))
	res := &InstanceStatsResult{}
	err := workflow.ExecuteActivity(actx, d.InstanceStats, in.Instance).Get(ctx, &res.Stats)
	return res, err
}
