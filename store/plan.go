package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/berth-dev/berth"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// ErrNoCapacity says a plan cannot be placed: no ready host, or no free port.
var ErrNoCapacity error = &berth.Error{Code: berth.ENoCapacity, Message: "no capacity"}

// PlanDeploy names, places and allocates ports for every replica of every
// service, in one transaction. It is idempotent per run: asked again, it
// returns the plan it already made. Concurrent plans that pick the same port
// collide on the (host, port) unique index and are retried.
func (s *Store) PlanDeploy(ctx context.Context, req berth.PlanRequest) (*berth.Plan, error) {
	if req.PortMin <= 0 || req.PortMax < req.PortMin || req.PortMax > 65535 {
		return nil, fmt.Errorf("port range %d-%d is not valid", req.PortMin, req.PortMax)
	}
	var lastErr error
	for attempt := 0; attempt < 25; attempt++ {
		plan, err := s.planOnce(ctx, req)
		if err == nil {
			return plan, nil
		}
		if !isDuplicate(err) {
			return nil, err
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(5+attempt*5) * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("port allocation kept colliding: %w", lastErr)
}

func (s *Store) existingPlan(tx *gorm.DB, runID uint, key string) (*berth.Plan, error) {
	var insts []Instance
	q := tx.Where("run_id = ?", runID)
	if key != "" {
		q = tx.Where("plan_key = ?", key)
	}
	if err := q.Order("id").Find(&insts).Error; err != nil {
		return nil, err
	}
	if len(insts) == 0 {
		return nil, nil
	}
	hosts := map[uint]Host{}
	plan := &berth.Plan{}
	for _, in := range insts {
		h, ok := hosts[in.HostID]
		if !ok {
			if err := tx.First(&h, in.HostID).Error; err != nil {
				return nil, err
			}
			hosts[in.HostID] = h
		}
		plan.Instances = append(plan.Instances, plannedFrom(in, h))
	}
	return plan, nil
}

func (s *Store) planOnce(ctx context.Context, req berth.PlanRequest) (*berth.Plan, error) {
	var plan *berth.Plan
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		existing, err := s.existingPlan(tx, req.RunID, req.Key)
		if err != nil || existing != nil {
			plan = existing
			return err
		}
		var env Environment
		if err := tx.Preload("Hosts", func(db *gorm.DB) *gorm.DB { return db.Order("name") }).First(&env, req.EnvironmentID).Error; err != nil {
			return notFound(err, fmt.Sprintf("environment %d", req.EnvironmentID))
		}
		var ready []Host
		for _, h := range env.Hosts {
			if h.State == berth.HostReady {
				ready = append(ready, h)
			}
		}
		if len(ready) == 0 {
			return fmt.Errorf("environment %q has no ready authorised host: %w", env.Name, ErrNoCapacity)
		}
		asked := berth.Usage{}
		reserving := false
		for _, sr := range req.Services {
			asked = asked.Add(sr.Resources, sr.Replicas)
			reserving = reserving || sr.Resources.MemoryReserved > 0 || sr.Resources.NanoCPUsReserved > 0
		}
		if !req.Surge {
			if err := checkQuota(tx, &env, asked); err != nil {
				return err
			}
		}
		if reserving {
			// Plans that reserve take turns per host, so two of them never
			// promise the same room twice.
			ids := make([]uint, len(ready))
			for i, h := range ready {
				ids[i] = h.ID
			}
			var locked []Host
			if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("id IN ?", ids).Order("id").Find(&locked).Error; err != nil {
				return err
			}
		}
		room, err := hostRoom(tx, ready)
		if err != nil {
			return err
		}
		load := map[uint]int{}
		for _, h := range ready {
			var n int64
			if err := tx.Model(&Instance{}).Where("host_id = ? AND removed_at IS NULL", h.ID).Count(&n).Error; err != nil {
				return err
			}
			load[h.ID] = int(n)
		}
		used := map[uint]map[int]bool{}
		for _, h := range ready {
			if used[h.ID], err = usedPorts(tx, h.ID); err != nil {
				return err
			}
		}
		plan = &berth.Plan{}
		// perApp counts this plan's instances per host, so that an
		// application's services spread over its hosts too: one host's
		// loss then takes part of the application, not all of it.
		perApp := map[uint]int{}
		for _, sr := range req.Services {
			svc, err := upsertService(tx, req.ApplicationID, sr)
			if err != nil {
				return err
			}
			perHost := map[uint]int{}
			perRegion, err := liveByRegion(tx, svc, sr.Add, req.Replaces)
			if err != nil {
				return err
			}
			for i := 0; i < sr.Replicas; i++ {
				var fit []Host
				free := map[uint]int{}
				for _, h := range ready {
					if fits(room, h.ID, sr.Resources) {
						fit = append(fit, h)
						// Most free reserved memory first: pickHost takes the smallest.
						free[h.ID] = -int(room[h.ID].MemoryReserved >> 20)
					}
				}
				if len(fit) == 0 {
					return fmt.Errorf("no host of environment %s has room for another %s instance reserving %s memory and %s CPUs: %w",
						env.Name, sr.Name, berth.BytesText(sr.Resources.MemoryReserved), berth.CPUsText(sr.Resources.NanoCPUsReserved), ErrNoCapacity)
				}
				inRegion := map[uint]int{}
				for _, h := range fit {
					inRegion[h.ID] = perRegion[h.Region]
				}
				h := pickHost(fit, inRegion, perHost, perApp, free, load)
				if left, ok := room[h.ID]; ok {
					left.MemoryReserved -= sr.Resources.MemoryReserved
					left.NanoCPUsReserved -= sr.Resources.NanoCPUsReserved
					room[h.ID] = left
				}
				perRegion[h.Region]++
				perHost[h.ID]++
				perApp[h.ID]++
				load[h.ID]++
				svc.NextOrdinal++
				in := Instance{ServiceID: svc.ID, Service: sr.Name, Ordinal: svc.NextOrdinal,
					Name: fmt.Sprintf("%s-%s-%d", req.NamePrefix, sr.Name, svc.NextOrdinal), UID: newUID(),
					HostID: h.ID, State: berth.StatePlanned, Version: sr.Image, RunID: req.RunID, PlanKey: req.Key, Resources: sr.Resources}
				var mappings []berth.PortMapping
				for _, pr := range sr.Ports {
					port, err := freePort(used[h.ID], req.PortMin, req.PortMax)
					if err != nil {
						return fmt.Errorf("host %q: %w", h.Name, err)
					}
					mappings = append(mappings, berth.PortMapping{HostIP: h.IP, HostPort: port, ContainerPort: pr.ContainerPort, Protocol: pr.Protocol})
					if err := tx.Create(&PortAllocation{HostID: h.ID, Port: port, InstanceName: in.Name}).Error; err != nil {
						return err
					}
				}
				b, _ := json.Marshal(mappings)
				in.Ports = string(b)
				if err := tx.Create(&in).Error; err != nil {
					return err
				}
				plan.Instances = append(plan.Instances, plannedFrom(in, h))
			}
			if err := tx.Model(svc).Update("next_ordinal", svc.NextOrdinal).Error; err != nil {
				return err
			}
		}
		return nil
	}, s.readCommitted())
	if err != nil {
		return nil, err
	}
	return plan, nil
}

func upsertService(tx *gorm.DB, appID uint, sr berth.ServiceRequest) (*Service, error) {
	var svc Service
	err := tx.Where("application_id = ? AND name = ?", appID, sr.Name).First(&svc).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		svc = Service{ApplicationID: appID, Name: sr.Name}
	} else if err != nil {
		return nil, err
	}
	if sr.Add && svc.ID != 0 {
		return &svc, nil
	}
	svc.Image, svc.Replicas, svc.Spec, svc.State, svc.DeletedAt = sr.Image, sr.Replicas, sr.Spec, berth.StateDeploying, nil
	return &svc, tx.Save(&svc).Error
}

// liveByRegion counts, per region, a service's live instances that stay
// beside instances placed next to them (add): a scale-out or a release
// batch then fills the region that has fewest. A deploy (not add) places
// every instance anew, so it counts none.
func liveByRegion(tx *gorm.DB, svc *Service, add bool, leaving []string) (map[string]int, error) {
	out := map[string]int{}
	if !add || svc.ID == 0 {
		return out, nil
	}
	q := tx.Table("instances AS i").Select("h.region AS region, COUNT(*) AS n").
		Joins("JOIN hosts h ON h.id = i.host_id").
		Where("i.service_id = ? AND i.removed_at IS NULL", svc.ID)
	if len(leaving) > 0 {
		q = q.Where("i.name NOT IN ?", leaving)
	}
	var rows []struct {
		Region string
		N      int
	}
	if err := q.Group("h.region").Scan(&rows).Error; err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.Region] = r.N
	}
	return out, nil
}

// pickHost spreads a service's replicas: fewest of this service in the
// host's region first (an environment spanning regions gets the service in
// each, so a lost region leaves it running), then fewest of this service on
// the host, then fewest of this application, then the most free capacity,
// then the least loaded host, then the name, so the same state gives the
// same plan.
func pickHost(hosts []Host, inRegion, perHost, perApp, free, load map[uint]int) Host {
	best := hosts[0]
	for _, h := range hosts[1:] {
		for _, m := range []map[uint]int{inRegion, perHost, perApp, free, load} {
			if m[h.ID] != m[best.ID] {
				if m[h.ID] < m[best.ID] {
					best = h
				}
				break
			}
		}
	}
	return best
}

// usedPorts are a host's allocated ports, berth's and those held outside it.
func usedPorts(tx *gorm.DB, hostID uint) (map[int]bool, error) {
	var ports []int
	if err := tx.Model(&PortAllocation{}).Where("host_id = ?", hostID).Pluck("port", &ports).Error; err != nil {
		return nil, err
	}
	used := make(map[int]bool, len(ports))
	for _, p := range ports {
		used[p] = true
	}
	return used, nil
}

func freePort(used map[int]bool, min, max int) (int, error) {
	for p := min; p <= max; p++ {
		if !used[p] {
			used[p] = true
			return p, nil
		}
	}
	return 0, fmt.Errorf("no free host port in %d-%d: %w", min, max, ErrNoCapacity)
}

func newUID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// PortAllocations lists the allocations on a host (0 = all), for audits and tests.
func (s *Store) PortAllocations(ctx context.Context, hostID uint) ([]PortAllocation, error) {
	var pas []PortAllocation
	q := s.db.WithContext(ctx).Order("host_id, port")
	if hostID != 0 {
		q = q.Where("host_id = ?", hostID)
	}
	return pas, q.Find(&pas).Error
}

// FreePorts counts the free platform ports on each of an environment's ready
// hosts, to refuse a scale up front rather than half-way.
func (s *Store) FreePorts(ctx context.Context, envID uint, min, max int) (map[string]int, error) {
	var env Environment
	if err := s.db.WithContext(ctx).Preload("Hosts").First(&env, envID).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("environment %d", envID))
	}
	out := map[string]int{}
	for _, h := range env.Hosts {
		if h.State != berth.HostReady {
			continue
		}
		var used int64
		if err := s.db.WithContext(ctx).Model(&PortAllocation{}).Where("host_id = ? AND port BETWEEN ? AND ?", h.ID, min, max).Count(&used).Error; err != nil {
			return nil, err
		}
		out[h.Name] = max - min + 1 - int(used)
	}
	return out, nil
}
