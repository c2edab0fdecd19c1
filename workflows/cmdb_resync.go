package workflows

import (
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
)

// CMDBResyncName is the registered name of CMDBResync.
const CMDBResyncName = "CMDBResync"

// CMDBResyncID is the one id of a resync: the schedule's and a person's
// request share it, so two never run at once.
const CMDBResyncID = "cmdb-resync"

// CMDBResyncScheduleID is the Temporal Schedule that runs the resync.
const CMDBResyncScheduleID = "berth-cmdb-resync"

// CMDBResyncTimeout bounds one resync run: its activity has 30 minutes and
// a few retries; a resync cut short is done again by the next one.
const CMDBResyncTimeout = 2 * time.Hour

// CMDBResync repairs the drift between berth's records and the CMDB, both
// ways, and reports it (the report is also an audit event).
func CMDBResync(ctx workflow.Context) (*berth.CMDBDrift, error) {
	var c *activities.CMDB
	var d berth.CMDBDrift
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, cmdbResyncOptions), c.ResyncCMDB).Get(ctx, &d)
	if err != nil {
		return nil, err
	}
	return &d, nil
}
