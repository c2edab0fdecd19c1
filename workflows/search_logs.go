package workflows

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/logship"
)

// SearchLogsName is the registered name of SearchLogs.
const SearchLogsName = "SearchLogs"

// SearchLogsInput asks for the lines an instance shipped since Since that
// contain Query.
type SearchLogsInput struct {
	Instance berth.InstanceRef `json:"instance"`
	Since    time.Time         `json:"since"`
	Query    string            `json:"query,omitempty"`
	Limit    int               `json:"limit"`
}

// SearchLogsID is the workflow id of one search; the same search asked
// twice at once shares one execution.
func SearchLogsID(instance string, since time.Time, query string, limit int) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s|%s|%d", since.UTC().Format(time.RFC3339Nano), query, limit)))
	return fmt.Sprintf("search-logs/%s/%s", instance, hex.EncodeToString(sum[:8]))
}

// SearchLogs reads the instance's shipped lines from its region's archive.
func SearchLogs(ctx workflow.Context, in SearchLogsInput) (*logship.SearchResult, error) {
	var a *activities.LogArchive
	actx := workflow.WithActivityOptions(ctx, withQueue(liveReadOptions, in.Instance.Host.Region))
	var res logship.SearchResult
	err := workflow.ExecuteActivity(actx, a.SearchLogs, activities.SearchLogsInput{Instance: in.Instance.Instance, Since: in.Since,
		Query: in.Query, Limit: in.Limit}).Get(ctx, &res)
	if err != nil {
		return nil, err
	}
	return &res, nil
}
