package activities

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/cmdb"
)

// CMDBRecords is the part of the store the CMDB sync reads and marks.
type CMDBRecords interface {
	CMDBRecords(ctx context.Context, state berth.SyncState, ids []string) ([]berth.CMDBRecord, error)
	MarkCMDB(ctx context.Context, ciID string, ok bool, errMsg string) error
}

// CMDB pushes queued configuration items to the enterprise CMDB.
type CMDB struct {
	Driver  cmdb.Driver
	Records CMDBRecords
}

// NewCMDB returns the CMDB activities.
func NewCMDB(d cmdb.Driver, r CMDBRecords) *CMDB { return &CMDB{Driver: d, Records: r} }

// SyncCMDB pushes the named records (or every pending and failed one when
// ids is empty). A CMDB that refuses or is down never fails the caller's
// release: the record is marked failed, shown, and pushed again by the next
// sync. Only a store that cannot be read is an error.
func (a *CMDB) SyncCMDB(ctx context.Context, ids []string) (*berth.SyncResult, error) {
	var recs []berth.CMDBRecord
	if len(ids) > 0 {
		rs, err := a.Records.CMDBRecords(ctx, "", ids)
		if err != nil {
			return nil, err
		}
		recs = rs
	} else {
		for _, st := range []berth.SyncState{berth.SyncPending, berth.SyncFailed} {
			rs, err := a.Records.CMDBRecords(ctx, st, nil)
			if err != nil {
				return nil, err
			}
			recs = append(recs, rs...)
		}
	}
	res := &berth.SyncResult{}
	for _, r := range recs {
		if r.State == berth.SyncDone {
			continue
		}
		var err error
		if r.Deleted {
			err = a.Driver.Delete(ctx, r.CIID)
		} else {
			ci := cmdb.CI{ID: r.CIID, Kind: r.Kind}
			if jerr := json.Unmarshal([]byte(r.Payload), &ci.Attributes); jerr != nil {
				err = errors.New("record payload is not valid: " + jerr.Error())
			} else {
				err = a.Driver.Upsert(ctx, ci)
			}
		}
		msg := ""
		if err != nil {
			msg = err.Error()
			res.Failed = append(res.Failed, r.CIID)
		} else {
			res.Synced++
		}
		if merr := a.Records.MarkCMDB(ctx, r.CIID, err == nil, msg); merr != nil {
			return nil, merr
		}
	}
	return res, nil
}
