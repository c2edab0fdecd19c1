package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/lb"
)

// PoolStatsName is the registered name of PoolStats.
const PoolStatsName = "PoolStats"

// PoolStatsInput names a backend and the region whose load balancer holds it.
type PoolStatsInput struct {
	Region  string `json:"region"`
	Backend string `json:"backend"`
}

// PoolStatsResult is the load balancer's live view of the backend.
type PoolStatsResult struct {
	Servers []lb.ServerStats `json:"servers"`
}

// PoolStatsID is the workflow id of one read; reads of the same backend in
// the same region at the same moment share one execution.
func PoolStatsID(region, backend string) string {
	return fmt.Sprintf("pool-stats/%s/%s", region, backend)
}

// PoolStats reads a backend's live figures from inside its region: the API
// reaches every region's load balancer only through Temporal's routing.
func PoolStats(ctx workflow.Context, in PoolStatsInput) (*PoolStatsResult, error) {
	var a *activities.LB
	actx := workflow.WithActivityOptions(ctx, withQueue(lbOptions, in.Region))
	res := &PoolStatsResult{}
	err := workflow.ExecuteActivity(actx, a.PoolStats, in.Backend).Get(ctx, &res.Servers)
	return res, err
}
