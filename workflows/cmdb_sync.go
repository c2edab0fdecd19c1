package workflows

import (
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
)

// CMDBSyncName is the registered name of CMDBSync.
const CMDBSyncName = "CMDBSync"

// CMDBSyncID is the one id of the re-sync: two requests share one run.
const CMDBSyncID = "cmdb-sync"

// CMDBSync pushes every pending or failed CMDB item again.
func CMDBSync(ctx workflow.Context) (*berth.SyncResult, error) {
	var c *activities.CMDB
	var res berth.SyncResult
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, cmdbOptions), c.SyncCMDB, []string{}).Get(ctx, &res)
	return &res, err
}
