package store

import (
	"context"
	"encoding/json"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/berth-dev/berth"
)

// ciTime is how the CMDB gets times: UTC to the second, so a value read
// back compares equal to the one computed again.
func ciTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// ciRecord turns an item into the record that queues it.
func ciRecord(kind, path string, attrs map[string]string, rels ...berth.CIRelation) berth.CMDBRecord {
	attrs["managedBy"] = berth.CIManagedBy
	b, _ := json.Marshal(berth.CIBody{Attributes: attrs, Relations: rels})
	return berth.CMDBRecord{CIID: berth.CIID(kind, path), Kind: kind, Payload: string(b)}
}

// DesiredCIs computes the configuration items the CMDB should hold, from
// the records alone: every incremental push and the resync build items
// here, so the two never disagree about what an item looks like.
func (s *Store) DesiredCIs(ctx context.Context, scope berth.CIScope) ([]berth.CMDBRecord, error) {
	db := s.db.WithContext(ctx)
	var apps []Application
	q := db.Where("deleted_at IS NULL AND state <> ?", berth.StateDeleted)
	if scope.ApplicationID != 0 {
		q = q.Where("id = ?", scope.ApplicationID)
	}
	if err := q.Order("id").Find(&apps).Error; err != nil {
		return nil, err
	}
	var envs []Environment
	var tenants []Tenant
	if scope.ApplicationID == 0 {
		if err := db.Order("id").Find(&envs).Error; err != nil {
			return nil, err
		}
		if err := db.Order("id").Find(&tenants).Error; err != nil {
			return nil, err
		}
	} else if len(apps) > 0 {
		var env Environment
		if err := db.First(&env, apps[0].EnvironmentID).Error; err != nil {
			return nil, err
		}
		var t Tenant
		if err := db.First(&t, env.TenantID).Error; err != nil {
			return nil, err
		}
		envs, tenants = []Environment{env}, []Tenant{t}
	}
	tenantName := map[uint]string{}
	var out []berth.CMDBRecord
	for _, t := range tenants {
		tenantName[t.ID] = t.Name
		out = append(out, ciRecord(berth.CITenant, t.Name, map[string]string{"name": t.Name, "created": ciTime(t.CreatedAt)}))
	}
	envPath := map[uint]string{}
	for _, e := range envs {
		tn := tenantName[e.TenantID]
		envPath[e.ID] = tn + "/" + e.Name
		out = append(out, ciRecord(berth.CIEnvironment, envPath[e.ID],
			map[string]string{"name": e.Name, "tenant": tn, "production": strconv.FormatBool(e.Prod), "created": ciTime(e.CreatedAt)},
			berth.CIRelation{Type: berth.RelPartOf, Target: berth.CIID(berth.CITenant, tn)}))
	}
	if len(apps) == 0 {
		return out, nil
	}
	appIDs := make([]uint, 0, len(apps))
	appPath := map[uint]string{}
	for _, a := range apps {
		appIDs = append(appIDs, a.ID)
		appPath[a.ID] = envPath[a.EnvironmentID] + "/" + a.Name
	}
	var svcs []Service
	if err := db.Where("application_id IN ? AND deleted_at IS NULL AND state <> ?", appIDs, berth.StateDeleted).
		Order("id").Find(&svcs).Error; err != nil {
		return nil, err
	}
	runs, err := s.ciRuns(db, apps, svcs)
	if err != nil {
		return nil, err
	}
	for _, a := range apps {
		attrs := map[string]string{"name": a.Name, "environment": envPath[a.EnvironmentID], "created": ciTime(a.CreatedAt)}
		if r, ok := runs.first[a.ID]; ok {
			attrs["createdBy"] = r.StartedBy
		}
		out = append(out, ciRecord(berth.CIApplication, appPath[a.ID], attrs,
			berth.CIRelation{Type: berth.RelPartOf, Target: berth.CIID(berth.CIEnvironment, envPath[a.EnvironmentID])}))
	}
	if len(svcs) == 0 {
		return out, nil
	}
	svcIDs := make([]uint, 0, len(svcs))
	for _, sv := range svcs {
		svcIDs = append(svcIDs, sv.ID)
	}
	var pools []berth.LBPool
	if err := db.Where("service_id IN ?", svcIDs).Order("region").Find(&pools).Error; err != nil {
		return nil, err
	}
	poolsOf := map[uint][]berth.LBPool{}
	for _, p := range pools {
		poolsOf[p.ServiceID] = append(poolsOf[p.ServiceID], p)
	}
	without := map[string]bool{}
	for _, n := range scope.Without {
		without[n] = true
	}
	var insts []Instance
	if err := db.Where("service_id IN ? AND removed_at IS NULL", svcIDs).Order("name").Find(&insts).Error; err != nil {
		return nil, err
	}
	live := insts[:0]
	hostIDs := map[uint]bool{}
	count := map[uint]int{}
	for _, in := range insts {
		if without[in.Name] {
			continue
		}
		live = append(live, in)
		hostIDs[in.HostID] = true
		count[in.ServiceID]++
	}
	svcPath := map[uint]string{}
	for _, sv := range svcs {
		svcPath[sv.ID] = appPath[sv.ApplicationID] + "/" + sv.Name
		attrs := map[string]string{"name": svcPath[sv.ID], "image": sv.Image, "replicas": strconv.Itoa(sv.Replicas),
			"instances": strconv.Itoa(count[sv.ID]), "type": "internal", "created": ciTime(sv.CreatedAt)}
		if ps := poolsOf[sv.ID]; len(ps) > 0 {
			// One pool per region; the attributes list them in region order.
			var regions, addrs []string
			for _, p := range ps {
				regions = append(regions, p.Region)
				addrs = append(addrs, net.JoinHostPort(p.ListenIP, strconv.Itoa(p.ListenPort)))
			}
			attrs["lbPool"], attrs["lbRegion"] = ps[0].Backend, strings.Join(regions, ",")
			attrs["lbAddress"] = strings.Join(addrs, ",")
			attrs["type"] = "load-balanced-" + ps[0].Mode
		}
		if r, ok := runs.byID[sv.CreatedRunID]; ok {
			attrs["createdBy"] = r.StartedBy
		}
		if r, ok := runs.byID[sv.ChangedRunID]; ok {
			attrs["updated"], attrs["updatedBy"] = ciTime(r.CreatedAt), r.StartedBy
		}
		out = append(out, ciRecord(berth.CIService, svcPath[sv.ID], attrs,
			berth.CIRelation{Type: berth.RelPartOf, Target: berth.CIID(berth.CIApplication, appPath[sv.ApplicationID])}))
	}
	var hosts []Host
	hq := db.Order("name")
	if scope.ApplicationID != 0 {
		ids := make([]uint, 0, len(hostIDs))
		for id := range hostIDs {
			ids = append(ids, id)
		}
		hq = hq.Where("id IN ?", ids)
	}
	if scope.ApplicationID == 0 || len(hostIDs) > 0 {
		if err := hq.Find(&hosts).Error; err != nil {
			return nil, err
		}
	}
	hostName := map[uint]Host{}
	for _, h := range hosts {
		hostName[h.ID] = h
		out = append(out, ciRecord(berth.CIHost, h.Name, map[string]string{"name": h.Name, "region": h.Region, "ip": h.IP,
			"cpus": strconv.Itoa(h.CPUs), "memoryBytes": strconv.FormatInt(h.MemoryBytes, 10), "created": ciTime(h.CreatedAt)}))
	}
	for _, in := range live {
		h := hostName[in.HostID]
		attrs := map[string]string{"name": in.Name, "service": svcPath[in.ServiceID], "host": h.Name, "hostIP": h.IP,
			"region": h.Region, "version": in.Version, "created": ciTime(in.CreatedAt)}
		var ports []berth.PortMapping
		if in.Ports != "" && json.Unmarshal([]byte(in.Ports), &ports) == nil {
			for _, p := range ports {
				if p.Protocol == "tcp" {
					attrs["port"] = strconv.Itoa(p.HostPort)
					break
				}
			}
		}
		out = append(out, ciRecord(berth.CIInstance, in.Name, attrs,
			berth.CIRelation{Type: berth.RelMemberOf, Target: berth.CIID(berth.CIService, svcPath[in.ServiceID])},
			berth.CIRelation{Type: berth.RelRunsOn, Target: berth.CIID(berth.CIHost, h.Name)}))
	}
	sort.SliceStable(out, func(i, j int) bool { return ciOrder(out[i].Kind) < ciOrder(out[j].Kind) })
	return out, nil
}

// ciOrder pushes parents before children, so a CMDB that checks
// relations finds every target already there.
func ciOrder(kind string) int {
	switch kind {
	case berth.CITenant:
		return 0
	case berth.CIEnvironment:
		return 1
	case berth.CIHost:
		return 2
	case berth.CIApplication:
		return 3
	case berth.CIService:
		return 4
	}
	return 5
}

type ciRunSet struct {
	byID  map[uint]Run
	first map[uint]Run // each application's first run
}

// ciRuns loads the runs the items' actors and times come from.
func (s *Store) ciRuns(db *gorm.DB, apps []Application, svcs []Service) (*ciRunSet, error) {
	set := &ciRunSet{byID: map[uint]Run{}, first: map[uint]Run{}}
	ids := map[uint]bool{}
	for _, sv := range svcs {
		ids[sv.CreatedRunID], ids[sv.ChangedRunID] = true, true
	}
	appIDs := make([]uint, 0, len(apps))
	for _, a := range apps {
		appIDs = append(appIDs, a.ID)
	}
	var firsts []uint
	if err := db.Model(&Run{}).Select("MIN(id)").Where("application_id IN ?", appIDs).Group("application_id").Pluck("MIN(id)", &firsts).Error; err != nil {
		return nil, err
	}
	for _, id := range firsts {
		ids[id] = true
	}
	delete(ids, 0)
	if len(ids) == 0 {
		return set, nil
	}
	list := make([]uint, 0, len(ids))
	for id := range ids {
		list = append(list, id)
	}
	var runs []Run
	if err := db.Select("id", "application_id", "started_by", "created_at").Where("id IN ?", list).Find(&runs).Error; err != nil {
		return nil, err
	}
	firstSet := map[uint]bool{}
	for _, id := range firsts {
		firstSet[id] = true
	}
	for _, r := range runs {
		set.byID[r.ID] = r
		if firstSet[r.ID] {
			set.first[r.ApplicationID] = r
		}
	}
	return set, nil
}

// MarkServicesChanged records the run that changed services' instances in
// the load balancer (and, the first time, created them there).
func (s *Store) MarkServicesChanged(ctx context.Context, serviceIDs []uint, runID uint) error {
	if len(serviceIDs) == 0 || runID == 0 {
		return nil
	}
	return s.db.WithContext(ctx).Model(&Service{}).Where("id IN ?", serviceIDs).Updates(map[string]any{
		"changed_run_id": runID,
		"created_run_id": gorm.Expr("CASE WHEN created_run_id = 0 THEN ? ELSE created_run_id END", runID),
	}).Error
}

// RunActor is who started a run, for a tombstone's deleted-by.
func (s *Store) RunActor(ctx context.Context, runID uint) (string, error) {
	var r Run
	if err := s.db.WithContext(ctx).Select("started_by").First(&r, runID).Error; err != nil {
		return "", notFound(err, "run "+strconv.FormatUint(uint64(runID), 10))
	}
	return r.StartedBy, nil
}

// RecordCMDBSynced records items a resync found in step with the CMDB (or
// made so): each is held as synced with the payload the CMDB holds.
func (s *Store) RecordCMDBSynced(ctx context.Context, recs []berth.CMDBRecord) error {
	if len(recs) == 0 {
		return nil
	}
	t := now()
	for i := range recs {
		recs[i].State, recs[i].LastError, recs[i].SyncedAt = berth.SyncDone, "", &t
	}
	return s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "ci_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"kind", "payload", "deleted", "state", "last_error", "synced_at", "updated_at"}),
	}).CreateInBatches(&recs, 500).Error
}

// RecordCMDBResync writes a resync's report as an audit event: "clean"
// when berth and the CMDB agreed, "repaired" when drift was put right, and
// "drift" when some of it could not be.
func (s *Store) RecordCMDBResync(ctx context.Context, d berth.CMDBDrift) error {
	outcome := "clean"
	switch {
	case len(d.Failed) > 0:
		outcome = "drift"
	case d.MissingCount+d.ChangedCount+d.ExtraCount > 0:
		outcome = "repaired"
	}
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return s.Audit(ctx, AuditEvent{At: now(), Actor: "cmdb-resync", Action: "cmdb-resync", Target: "cmdb", Outcome: outcome, Detail: string(b)})
}
