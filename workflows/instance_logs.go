package workflows

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
)

// InstanceLogsName is the registered name of InstanceLogs.
const InstanceLogsName = "InstanceLogs"

// InstanceLogsInput asks for the last Tail lines an instance wrote, after
// Since when set.
type InstanceLogsInput struct {
	Instance berth.InstanceRef `json:"instance"`
	Tail     int               `json:"tail"`
	Since    time.Time         `json:"since,omitempty"`
}

// InstanceLogsResult is the tail, oldest line first.
type InstanceLogsResult struct {
	Logs berth.InstanceLogs `json:"logs"`
}

// InstanceLogsID is the workflow id of one read; the same read asked twice
// at once (same instance, tail and since) shares one execution.
func InstanceLogsID(instance string, tail int, since time.Time) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%d|%s", tail, since.UTC().Format(time.RFC3339Nano))))
	return fmt.Sprintf("instance-logs/%s/%s", instance, hex.EncodeToString(sum[:8]))
}

// InstanceLogs reads the tail of an instance's output from inside its region.
func InstanceLogs(ctx workflow.Context, in InstanceLogsInput) (*InstanceLogsResult, error) {
	var d *activities.Docker
	actx := workflow.WithActivityOptions(ctx, withQueue(liveReadOptions, in.Instance.Host.Region))
	res := &InstanceLogsResult{}
	err := workflow.ExecuteActivity(actx, d.InstanceLogs, activities.InstanceLogsInput{
		InstanceRef: in.Instance, Tail: in.Tail, Since: in.Since}).Get(ctx, &res.Logs)
	return res, err
}
