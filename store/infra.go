package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/berth-dev/berth"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// EnsurePool returns a service's pool in p.Region, creating it when it does
// not exist with a free listen port of that region's load balancer: from
// the region's own address and window when it has them (SetRegionLB),
// else from p.ListenIP and [portMin, portMax].
func (s *Store) EnsurePool(ctx context.Context, p berth.LBPool, portMin, portMax int) (*berth.LBPool, error) {
	for attempt := 0; attempt < 20; attempt++ {
		var out berth.LBPool
		err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			err := tx.Preload("Servers").Where("service_id = ? AND region = ?", p.ServiceID, p.Region).First(&out).Error
			if err == nil {
				return nil
			}
			if !errors.Is(err, gorm.ErrRecordNotFound) {
				return err
			}
			var rg []Region
			if err := tx.Where("name = ?", p.Region).Limit(1).Find(&rg).Error; err != nil {
				return err
			}
			if len(rg) == 1 && rg[0].LBPortMin > 0 {
				portMin, portMax = rg[0].LBPortMin, rg[0].LBPortMax
			}
			if len(rg) == 1 && rg[0].LBListenIP != "" {
				p.ListenIP = rg[0].LBListenIP
			}
			var used []int
			if err := tx.Model(&berth.LBPool{}).Where("region = ?", p.Region).Pluck("listen_port", &used).Error; err != nil {
				return err
			}
			taken := map[int]bool{}
			for _, u := range used {
				taken[u] = true
			}
			port, err := freePort(taken, portMin, portMax)
			if err != nil {
				return fmt.Errorf("load balancer of region %s: %w", p.Region, err)
			}
			p.ListenPort = port
			if err := tx.Omit("Servers").Create(&p).Error; err != nil {
				return err
			}
			out = p
			return nil
		})
		if err == nil {
			return &out, nil
		}
		if !isDuplicate(err) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("load balancer port allocation kept colliding")
}

// PoolIn returns a service's pool in a region, with its servers.
func (s *Store) PoolIn(ctx context.Context, serviceID uint, region string) (*berth.LBPool, error) {
	var p berth.LBPool
	err := s.db.WithContext(ctx).Preload("Servers", serversInOrder).
		Where("service_id = ? AND region = ?", serviceID, region).First(&p).Error
	if err != nil {
		return nil, notFound(err, fmt.Sprintf("load balancer pool of service %d in region %s", serviceID, region))
	}
	return &p, nil
}

// ServicePools returns a service's pools, one per region it runs in, by
// region; ErrNotFound when it has none.
func (s *Store) ServicePools(ctx context.Context, serviceID uint) ([]berth.LBPool, error) {
	var ps []berth.LBPool
	if err := s.db.WithContext(ctx).Preload("Servers", serversInOrder).
		Where("service_id = ?", serviceID).Order("region").Find(&ps).Error; err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, notFound(gorm.ErrRecordNotFound, fmt.Sprintf("load balancer pool of service %d", serviceID))
	}
	return ps, nil
}

func serversInOrder(db *gorm.DB) *gorm.DB { return db.Order("instance_name") }

// Pools lists every pool of a region with its servers, for rebuilding a load balancer.
func (s *Store) Pools(ctx context.Context, region string) ([]berth.LBPool, error) {
	var ps []berth.LBPool
	q := s.db.WithContext(ctx).Preload("Servers", serversInOrder).Order("id")
	if region != "" {
		q = q.Where("region = ?", region)
	}
	return ps, q.Find(&ps).Error
}

// SetPoolServers records servers' desired weight and state (upsert by instance name).
func (s *Store) SetPoolServers(ctx context.Context, poolID uint, servers []berth.LBServer) error {
	if len(servers) == 0 {
		return nil
	}
	for i := range servers {
		servers[i].PoolID = poolID
		servers[i].ID = 0
	}
	return s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "instance_name"}},
		DoUpdates: clause.AssignmentColumns([]string{"pool_id", "addr", "weight", "state", "updated_at"}),
	}).Create(&servers).Error
}

// SetServerWeights records the weights berth wants for servers, so a
// restarted load balancer gets a grey release's split back.
func (s *Store) SetServerWeights(ctx context.Context, weights map[string]int) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for name, w := range weights {
			if err := tx.Model(&berth.LBServer{}).Where("instance_name = ?", name).Update("weight", w).Error; err != nil {
				return err
			}
		}
		return nil
	})
}

// SetPoolRoutes records a pool's routes (JSON; empty removes them).
func (s *Store) SetPoolRoutes(ctx context.Context, backend, routes string) error {
	return s.db.WithContext(ctx).Model(&berth.LBPool{}).Where("backend = ?", backend).Update("routes", routes).Error
}

// RemovePoolServers forgets servers.
func (s *Store) RemovePoolServers(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	return s.db.WithContext(ctx).Where("instance_name IN ?", names).Delete(&berth.LBServer{}).Error
}

// RemovePool forgets a service's pools, in every region, and their servers.
func (s *Store) RemovePool(ctx context.Context, serviceID uint) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var ids []uint
		if err := tx.Model(&berth.LBPool{}).Where("service_id = ?", serviceID).Pluck("id", &ids).Error; err != nil || len(ids) == 0 {
			return err
		}
		if err := tx.Where("pool_id IN ?", ids).Delete(&berth.LBServer{}).Error; err != nil {
			return err
		}
		return tx.Where("id IN ?", ids).Delete(&berth.LBPool{}).Error
	})
}

// RecordOpenings upserts openings with their state.
func (s *Store) RecordOpenings(ctx context.Context, os []berth.FirewallOpening) error {
	if len(os) == 0 {
		return nil
	}
	t := now()
	for i := range os {
		os[i].ID = 0
		switch os[i].State {
		case berth.OpeningOpen:
			os[i].OpenedAt = &t
		case berth.OpeningClosed:
			os[i].ClosedAt = &t
		}
	}
	return s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "opening_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"state", "driver", "run_id", "opened_at", "closed_at", "dest_ip", "dest_port", "protocol"}),
	}).Create(&os).Error
}

// SetOpeningsState moves recorded openings to state, noting the run that
// did it. What the plan recorded (instance, protocol, address, port,
// mode) stays: the firewall's repair reads it back.
func (s *Store) SetOpeningsState(ctx context.Context, ids []string, state berth.OpeningState, runID uint) error {
	if len(ids) == 0 {
		return nil
	}
	t := now()
	upd := map[string]any{"state": state}
	if runID != 0 {
		upd["run_id"] = runID
	}
	switch state {
	case berth.OpeningOpen:
		upd["opened_at"], upd["closed_at"] = t, nil
	case berth.OpeningClosed:
		upd["closed_at"] = t
	}
	for len(ids) > 0 {
		n := min(len(ids), 500)
		if err := s.db.WithContext(ctx).Model(&berth.FirewallOpening{}).Where("opening_id IN ?", ids[:n]).Updates(upd).Error; err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

// Openings lists openings, optionally only those in one state.
func (s *Store) Openings(ctx context.Context, state string) ([]berth.FirewallOpening, error) {
	var out []berth.FirewallOpening
	q := s.db.WithContext(ctx).Order("opening_id")
	if state != "" {
		q = q.Where("state = ?", state)
	}
	return out, q.Find(&out).Error
}

// QueueCMDB records configuration items to push (or delete) as pending, and
// returns the ids it queued. An item the CMDB already holds as it is now
// (same payload, synced) is left alone, and so is a deletion of an item
// berth never recorded: a step pushes only what changed.
func (s *Store) QueueCMDB(ctx context.Context, recs []berth.CMDBRecord) ([]string, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	ids := make([]string, 0, len(recs))
	for _, r := range recs {
		ids = append(ids, r.CIID)
	}
	var have []berth.CMDBRecord
	if err := s.db.WithContext(ctx).Where("ci_id IN ?", ids).Find(&have).Error; err != nil {
		return nil, err
	}
	held := make(map[string]berth.CMDBRecord, len(have))
	for _, h := range have {
		held[h.CIID] = h
	}
	queue := recs[:0:0]
	for _, r := range recs {
		h, ok := held[r.CIID]
		switch {
		case r.Deleted && (!ok || (h.Deleted && h.State == berth.SyncDone)):
			continue
		case !r.Deleted && ok && !h.Deleted && h.State == berth.SyncDone && h.Payload == r.Payload:
			continue
		}
		r.State, r.LastError = berth.SyncPending, ""
		queue = append(queue, r)
	}
	if len(queue) == 0 {
		return nil, nil
	}
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "ci_id"}},
		DoUpdates: clause.AssignmentColumns([]string{"kind", "payload", "deleted", "state", "last_error", "updated_at"}),
	}).Create(&queue).Error
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(queue))
	for _, r := range queue {
		out = append(out, r.CIID)
	}
	return out, nil
}

// CMDBRecords lists records by CI id, optionally in one state.
func (s *Store) CMDBRecords(ctx context.Context, state berth.SyncState, ids []string) ([]berth.CMDBRecord, error) {
	var out []berth.CMDBRecord
	q := s.db.WithContext(ctx).Order("ci_id")
	if state != "" {
		q = q.Where("state = ?", state)
	}
	if ids != nil {
		q = q.Where("ci_id IN ?", ids)
	}
	return out, q.Find(&out).Error
}

// MarkCMDB records a sync attempt's outcome.
func (s *Store) MarkCMDB(ctx context.Context, ciID string, ok bool, errMsg string) error {
	up := map[string]any{"attempts": gorm.Expr("attempts + 1"), "last_error": errMsg}
	if ok {
		t := now()
		up["state"], up["synced_at"] = berth.SyncDone, &t
	} else {
		up["state"] = berth.SyncFailed
	}
	return s.db.WithContext(ctx).Model(&berth.CMDBRecord{}).Where("ci_id = ?", ciID).Updates(up).Error
}

// FirewallRecords returns, for every region with a ready host, the openings
// its driver should hold, and the ids of the live openings of its
// instances (requested or open, any mode), which a repair never closes.
func (s *Store) FirewallRecords(ctx context.Context) ([]berth.RegionFirewall, error) {
	var regions []string
	if err := s.db.WithContext(ctx).Model(&Host{}).Where("state = ?", berth.HostReady).
		Distinct("region").Order("region").Pluck("region", &regions).Error; err != nil {
		return nil, err
	}
	type row struct {
		berth.FirewallOpening
		Region string
	}
	var rows []row
	if err := s.db.WithContext(ctx).Table("firewall_openings AS o").
		Select("o.*, h.region AS region").
		Joins("JOIN instances AS i ON i.name = o.instance_name AND i.removed_at IS NULL").
		Joins("JOIN hosts AS h ON h.id = i.host_id").
		Where("o.state IN ?", []berth.OpeningState{berth.OpeningRequested, berth.OpeningOpen}).
		Order("o.opening_id").Scan(&rows).Error; err != nil {
		return nil, err
	}
	by := map[string]int{}
	out := make([]berth.RegionFirewall, len(regions))
	for i, r := range regions {
		out[i] = berth.RegionFirewall{Region: r, Want: []berth.FirewallOpening{}, Keep: []string{}}
		by[r] = i
	}
	for _, r := range rows {
		i, ok := by[r.Region]
		if !ok {
			continue // a region with no ready host is left to the heal pass
		}
		o := r.FirewallOpening
		out[i].Keep = append(out[i].Keep, o.OpeningID)
		// "none" mode is the driver's too: only ticket and change openings
		// are made by somebody else. Openings marked open before
		// SetOpeningsState lost their address to the mark; they cannot be
		// rebuilt, so they are only kept.
		if o.State == berth.OpeningOpen && o.Driver != "ticket" && o.Driver != "change" && o.Protocol != "" && o.DestPort > 0 {
			out[i].Want = append(out[i].Want, o)
		}
	}
	return out, nil
}
