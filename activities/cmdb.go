package activities

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"sort"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/cmdb"
)

// CMDBRecords is the part of the store the CMDB sync and resync read and mark.
type CMDBRecords interface {
	CMDBRecords(ctx context.Context, state berth.SyncState, ids []string) ([]berth.CMDBRecord, error)
	MarkCMDB(ctx context.Context, ciID string, ok bool, errMsg string) error
	DesiredCIs(ctx context.Context, scope berth.CIScope) ([]berth.CMDBRecord, error)
	QueueCMDB(ctx context.Context, recs []berth.CMDBRecord) ([]string, error)
	RecordCMDBSynced(ctx context.Context, recs []berth.CMDBRecord) error
	RecordCMDBResync(ctx context.Context, d berth.CMDBDrift) error
}

// CMDB pushes queued configuration items to the enterprise CMDB.
type CMDB struct {
	Driver  cmdb.Driver
	Records CMDBRecords
}

// NewCMDB returns the CMDB activities.
func NewCMDB(d cmdb.Driver, r CMDBRecords) *CMDB { return &CMDB{Driver: d, Records: r} }

// ciOf turns a record into the item the driver pushes. A payload written
// before items had relations is a bare attribute map, and still reads.
func ciOf(r berth.CMDBRecord) (cmdb.CI, error) {
	var body berth.CIBody
	if err := json.Unmarshal([]byte(r.Payload), &body); err != nil {
		return cmdb.CI{}, errors.New("record payload is not valid: " + err.Error())
	}
	if body.Attributes == nil {
		var flat map[string]string
		if json.Unmarshal([]byte(r.Payload), &flat) == nil {
			body.Attributes = flat
		}
	}
	ci := cmdb.CI{ID: r.CIID, Kind: r.Kind, Attributes: body.Attributes}
	for _, rel := range body.Relations {
		ci.Relations = append(ci.Relations, cmdb.Relation{Type: rel.Type, Target: rel.Target})
	}
	return ci, nil
}

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
		ci, err := ciOf(r)
		if err == nil {
			if r.Deleted {
				err = a.Driver.Delete(ctx, r.CIID, cmdb.Tombstone{Deleted: ci.Attributes["deleted"], DeletedBy: ci.Attributes["deletedBy"]})
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

// resyncActor is who a resync's deletions are said to be by.
const resyncActor = "cmdb-resync"

// sameCI says whether the CMDB holds an item as berth would push it.
func sameCI(held, want cmdb.CI) bool {
	if held.Kind != want.Kind || !maps.Equal(held.Attributes, want.Attributes) || len(held.Relations) != len(want.Relations) {
		return false
	}
	key := func(r cmdb.Relation) string { return r.Type + "\x00" + r.Target }
	a, b := make([]string, 0, len(held.Relations)), make([]string, 0, len(want.Relations))
	for i := range held.Relations {
		a, b = append(a, key(held.Relations[i])), append(b, key(want.Relations[i]))
	}
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func addCapped(ids []string, id string) []string {
	if len(ids) < berth.MaxDriftIDs {
		return append(ids, id)
	}
	return ids
}

// ResyncCMDB compares every item berth holds with what the CMDB holds under
// berth's mark and repairs the drift both ways: an item missing or changed
// in the CMDB is pushed again; an item the CMDB holds that berth no longer
// has is deleted. Items of other tools are never touched. A CMDB that
// cannot be listed fails the attempt (it is retried); a single repair the
// CMDB refuses is reported and left for the next resync.
func (a *CMDB) ResyncCMDB(ctx context.Context) (*berth.CMDBDrift, error) {
	if _, none := a.Driver.(cmdb.None); none {
		return nil, temporal.NewNonRetryableApplicationError("no CMDB is configured (-cmdb http)", "no_cmdb", nil)
	}
	desired, err := a.Records.DesiredCIs(ctx, berth.CIScope{})
	if err != nil {
		return nil, err
	}
	held, err := a.Driver.List(ctx, berth.CIManagedBy)
	if err != nil {
		return nil, err
	}
	heldBy := make(map[string]cmdb.CI, len(held))
	for _, ci := range held {
		heldBy[ci.ID] = ci
	}
	d := &berth.CMDBDrift{Checked: len(desired), Held: len(held)}
	var synced, failed []berth.CMDBRecord
	var failMsg []string
	want := make(map[string]bool, len(desired))
	for i, r := range desired {
		if i%200 == 0 && activity.IsActivity(ctx) {
			activity.RecordHeartbeat(ctx, i)
		}
		want[r.CIID] = true
		ci, err := ciOf(r)
		if err != nil {
			return nil, err
		}
		h, ok := heldBy[r.CIID]
		if ok && sameCI(h, ci) {
			synced = append(synced, r)
			continue
		}
		if ok {
			d.ChangedCount++
			d.Changed = addCapped(d.Changed, r.CIID)
		} else {
			d.MissingCount++
			d.Missing = addCapped(d.Missing, r.CIID)
		}
		if err := a.Driver.Upsert(ctx, ci); err != nil {
			d.Failed = addCapped(d.Failed, r.CIID)
			failed, failMsg = append(failed, r), append(failMsg, err.Error())
			continue
		}
		synced = append(synced, r)
	}
	var extra []string
	for id := range heldBy {
		if !want[id] {
			extra = append(extra, id)
		}
	}
	sort.Strings(extra)
	at := time.Now()
	for _, id := range extra {
		d.ExtraCount++
		d.Extra = addCapped(d.Extra, id)
		tomb := berth.CITombstone(id, heldBy[id].Kind, resyncActor, at)
		if err := a.Driver.Delete(ctx, id, cmdb.Tombstone{Deleted: at.UTC().Format(time.RFC3339), DeletedBy: resyncActor}); err != nil {
			d.Failed = addCapped(d.Failed, id)
			failed, failMsg = append(failed, tomb), append(failMsg, err.Error())
			continue
		}
		synced = append(synced, tomb)
	}
	// A queued push or deletion of an item berth no longer has and the CMDB
	// does not hold is settled: nothing is left to do for it.
	for _, st := range []berth.SyncState{berth.SyncPending, berth.SyncFailed} {
		open, err := a.Records.CMDBRecords(ctx, st, nil)
		if err != nil {
			return nil, err
		}
		for _, r := range open {
			if _, ok := heldBy[r.CIID]; !want[r.CIID] && !ok {
				synced = append(synced, berth.CITombstone(r.CIID, r.Kind, resyncActor, at))
			}
		}
	}
	if err := a.Records.RecordCMDBSynced(ctx, synced); err != nil {
		return nil, err
	}
	if _, err := a.Records.QueueCMDB(ctx, failed); err != nil {
		return nil, err
	}
	for i, r := range failed {
		if err := a.Records.MarkCMDB(ctx, r.CIID, false, failMsg[i]); err != nil {
			return nil, err
		}
	}
	if err := a.Records.RecordCMDBResync(ctx, *d); err != nil {
		return nil, err
	}
	return d, nil
}
