package activities

import (
	"context"
	"errors"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/logship"
)

// LogArchive searches the region's log archive: what its rsyslog wrote
// from the instances' shipped output (deploy/rsyslog).
type LogArchive struct {
	// Root is the archive's folder on this worker's machine; empty when the
	// region keeps none.
	Root string
}

// SearchLogsInput asks for an instance's archived lines since a time
// that contain a text.
type SearchLogsInput struct {
	Instance string    `json:"instance"`
	Since    time.Time `json:"since"`
	Query    string    `json:"query,omitempty"`
	Limit    int       `json:"limit"`
}

// SearchLogs reads the archive; it changes nothing.
func (a *LogArchive) SearchLogs(ctx context.Context, in SearchLogsInput) (*logship.SearchResult, error) {
	if a.Root == "" {
		return nil, fail(berth.ENotImplemented, "this region keeps no log archive (start its worker with -log-archive)")
	}
	res, err := logship.Search(ctx, a.Root, in.Instance, in.Since, in.Query, in.Limit)
	if errors.Is(err, logship.ErrBadInstance) {
		return nil, fail(berth.EInvalid, "%q is not an instance name", in.Instance)
	}
	return res, err
}
