package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/berth-dev/berth"
	"gorm.io/gorm"
)

// ErrNoCapacity says a plan cannot be placed: no ready host, or no free port.
var ErrNoCapacity error = &berth.Error{Code: berth.ENoCapacity, Message: "no capacity"}

// Application returns one application.
func (s *Store) Application(ctx context.Context, id uint) (*Application, error) {
	var a Application
	if err := s.db.WithContext(ctx).First(&a, id).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("application %d", id))
	}
	return &a, nil
}

// ApplicationByName returns an environment's application by name.
func (s *Store) ApplicationByName(ctx context.Context, envID uint, name string) (*Application, error) {
	var a Application
	if err := s.db.WithContext(ctx).Where("environment_id = ? AND name = ?", envID, name).First(&a).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("application %q", name))
	}
	return &a, nil
}

// Applications lists the applications of an environment (0 = all).
func (s *Store) Applications(ctx context.Context, envID uint) ([]Application, error) {
	var as []Application
	q := s.db.WithContext(ctx).Order("id")
	if envID != 0 {
		q = q.Where("environment_id = ?", envID)
	}
	return as, q.Find(&as).Error
}

// BeginDeploy creates (or revives, after a delete or a failed deploy) an
// application in state deploying and opens its run. It refuses an
// application that is live; the caller decides whether a live one with the
// same spec counts as the same request.
func (s *Store) BeginDeploy(ctx context.Context, envID uint, name, compose, specHash string, run *Run, activeKey string) (*Application, error) {
	var app Application
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		err := tx.Where("environment_id = ? AND name = ?", envID, name).First(&app).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			app = Application{EnvironmentID: envID, Name: name}
		case err != nil:
			return err
		case app.State == berth.StateRunning || app.State == berth.StateDeploying || app.State == berth.StateDeleting:
			return &ConflictError{Msg: fmt.Sprintf("application %q is %s (run %d)", name, app.State, app.LastRunID), Existing: &app}
		}
		app.Compose, app.SpecHash, app.State, app.DeletedAt = compose, specHash, berth.StateDeploying, nil
		if err := tx.Save(&app).Error; err != nil {
			if isDuplicate(err) {
				return &ConflictError{Msg: fmt.Sprintf("application %q is being created by another request", name)}
			}
			return err
		}
		run.ApplicationID = app.ID
		run.ActiveKey = &activeKey
		run.Status = berth.RunPending
		if err := tx.Omit("Steps").Create(run).Error; err != nil {
			if isDuplicate(err) {
				return &ConflictError{Msg: fmt.Sprintf("another run is active for %s", activeKey)}
			}
			return err
		}
		return tx.Model(&app).Update("last_run_id", run.ID).Error
	})
	if err != nil {
		return nil, err
	}
	return &app, nil
}

// BeginDelete moves a live or failed application to deleting and opens its run.
func (s *Store) BeginDelete(ctx context.Context, appID uint, run *Run, activeKey string) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var app Application
		if err := tx.First(&app, appID).Error; err != nil {
			return notFound(err, fmt.Sprintf("application %d", appID))
		}
		if app.State == berth.StateDeleted {
			return &ConflictError{Msg: fmt.Sprintf("application %q is already deleted", app.Name), Existing: &app}
		}
		run.ApplicationID = app.ID
		run.ActiveKey = &activeKey
		run.Status = berth.RunPending
		if err := tx.Omit("Steps").Create(run).Error; err != nil {
			if isDuplicate(err) {
				return &ConflictError{Msg: fmt.Sprintf("another run is active for %s", activeKey)}
			}
			return err
		}
		return tx.Model(&app).Updates(map[string]any{"state": berth.StateDeleting, "last_run_id": run.ID}).Error
	})
}

// SetApplicationState records the outcome of a deploy or delete.
func (s *Store) SetApplicationState(ctx context.Context, appID uint, state berth.State) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		up := map[string]any{"state": state}
		if state == berth.StateDeleted {
			t := now()
			up["deleted_at"] = &t
		}
		if err := tx.Model(&Application{}).Where("id = ?", appID).Updates(up).Error; err != nil {
			return err
		}
		return tx.Model(&Service{}).Where("application_id = ?", appID).Updates(up).Error
	})
}

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

func plannedFrom(in Instance, h Host) berth.PlannedInstance {
	var ports []berth.PortMapping
	_ = json.Unmarshal([]byte(in.Ports), &ports)
	return berth.PlannedInstance{InstanceID: in.ID, Name: in.Name, UID: in.UID, Service: in.Service, Ordinal: in.Ordinal,
		Host: h.Ref(), Ports: ports}
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
			var ports []int
			if err := tx.Model(&PortAllocation{}).Where("host_id = ?", h.ID).Pluck("port", &ports).Error; err != nil {
				return err
			}
			used[h.ID] = map[int]bool{}
			for _, p := range ports {
				used[h.ID][p] = true
			}
		}
		plan = &berth.Plan{}
		for _, sr := range req.Services {
			svc, err := upsertService(tx, req.ApplicationID, sr)
			if err != nil {
				return err
			}
			perHost := map[uint]int{}
			for i := 0; i < sr.Replicas; i++ {
				h := pickHost(ready, perHost, load)
				perHost[h.ID]++
				load[h.ID]++
				svc.NextOrdinal++
				in := Instance{ServiceID: svc.ID, Service: sr.Name, Ordinal: svc.NextOrdinal,
					Name: fmt.Sprintf("%s-%s-%d", req.NamePrefix, sr.Name, svc.NextOrdinal), UID: newUID(),
					HostID: h.ID, State: berth.StatePlanned, Version: sr.Image, RunID: req.RunID, PlanKey: req.Key}
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
	})
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
	if sr.Add {
		return &svc, nil
	}
	svc.Image, svc.Replicas, svc.Spec, svc.State, svc.DeletedAt = sr.Image, sr.Replicas, sr.Spec, berth.StateDeploying, nil
	return &svc, tx.Save(&svc).Error
}

// pickHost spreads a service's replicas: fewest of this service first, then
// the least loaded host, then the name, so the same state gives the same plan.
func pickHost(hosts []Host, perHost, load map[uint]int) Host {
	best := hosts[0]
	for _, h := range hosts[1:] {
		a, b := perHost[h.ID], perHost[best.ID]
		if a < b || (a == b && load[h.ID] < load[best.ID]) {
			best = h
		}
	}
	return best
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

// InstanceStarted records where a started instance runs.
func (s *Store) InstanceStarted(ctx context.Context, name, containerID, ip string) error {
	return s.db.WithContext(ctx).Model(&Instance{}).Where("name = ?", name).
		Updates(map[string]any{"container_id": containerID, "ip": ip, "state": berth.StateRunning}).Error
}

// ReleaseInstances marks instances removed and frees their ports. Their rows
// stay: an instance CI is deleted once, and its history is kept.
func (s *Store) ReleaseInstances(ctx context.Context, names []string) error {
	if len(names) == 0 {
		return nil
	}
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("instance_name IN ?", names).Delete(&PortAllocation{}).Error; err != nil {
			return err
		}
		t := now()
		return tx.Model(&Instance{}).Where("name IN ? AND removed_at IS NULL", names).
			Updates(map[string]any{"state": berth.StateRemoved, "removed_at": &t}).Error
	})
}

// LiveInstances returns the instances of an application that are not removed,
// with their hosts, in a stable order.
func (s *Store) LiveInstances(ctx context.Context, appID uint) ([]berth.PlannedInstance, error) {
	var insts []Instance
	err := s.db.WithContext(ctx).Joins("JOIN services ON services.id = instances.service_id").
		Where("services.application_id = ? AND instances.removed_at IS NULL", appID).
		Order("instances.id").Find(&insts).Error
	if err != nil {
		return nil, err
	}
	hosts := map[uint]Host{}
	out := make([]berth.PlannedInstance, 0, len(insts))
	for _, in := range insts {
		h, ok := hosts[in.HostID]
		if !ok {
			if err := s.db.WithContext(ctx).First(&h, in.HostID).Error; err != nil {
				return nil, err
			}
			hosts[in.HostID] = h
		}
		out = append(out, plannedFrom(in, h))
	}
	return out, nil
}

// ServiceView is the service page of MISSION.md: the cluster and its instances.
type ServiceView struct {
	Service
	Application string         `json:"application"`
	Instances   []InstanceView `json:"instances"`
}

// InstanceView is one instance as users see it.
type InstanceView struct {
	Instance
	Host     string              `json:"host"`
	Ports    []berth.PortMapping `json:"ports"`
	Mappings []string            `json:"mappings"` // "hostIP:hostPort → containerPort/proto"
}

// Services returns an application's services with their live instances.
func (s *Store) Services(ctx context.Context, appID uint) ([]ServiceView, error) {
	var svcs []Service
	if err := s.db.WithContext(ctx).Where("application_id = ?", appID).Order("id").Find(&svcs).Error; err != nil {
		return nil, err
	}
	out := make([]ServiceView, 0, len(svcs))
	for _, svc := range svcs {
		v, err := s.serviceView(ctx, svc)
		if err != nil {
			return nil, err
		}
		out = append(out, *v)
	}
	return out, nil
}

// ServiceByID returns one service view.
func (s *Store) ServiceByID(ctx context.Context, id uint) (*ServiceView, error) {
	var svc Service
	if err := s.db.WithContext(ctx).First(&svc, id).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("service %d", id))
	}
	return s.serviceView(ctx, svc)
}

func (s *Store) serviceView(ctx context.Context, svc Service) (*ServiceView, error) {
	var app Application
	if err := s.db.WithContext(ctx).First(&app, svc.ApplicationID).Error; err != nil {
		return nil, err
	}
	var insts []Instance
	if err := s.db.WithContext(ctx).Where("service_id = ? AND removed_at IS NULL", svc.ID).Order("ordinal").Find(&insts).Error; err != nil {
		return nil, err
	}
	v := &ServiceView{Service: svc, Application: app.Name, Instances: []InstanceView{}}
	names := map[uint]string{}
	for _, in := range insts {
		if _, ok := names[in.HostID]; !ok {
			var h Host
			if err := s.db.WithContext(ctx).First(&h, in.HostID).Error; err == nil {
				names[in.HostID] = h.Name
			}
		}
		iv := InstanceView{Instance: in, Host: names[in.HostID], Ports: []berth.PortMapping{}, Mappings: []string{}}
		_ = json.Unmarshal([]byte(in.Ports), &iv.Ports)
		sort.Slice(iv.Ports, func(i, j int) bool { return iv.Ports[i].ContainerPort < iv.Ports[j].ContainerPort })
		for _, p := range iv.Ports {
			iv.Mappings = append(iv.Mappings, fmt.Sprintf("%s:%d → %d/%s", p.HostIP, p.HostPort, p.ContainerPort, p.Protocol))
		}
		v.Instances = append(v.Instances, iv)
	}
	return v, nil
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

// SetServiceReplicas records a service's replica count after a scale.
func (s *Store) SetServiceReplicas(ctx context.Context, serviceID uint, replicas int) error {
	return s.db.WithContext(ctx).Model(&Service{}).Where("id = ?", serviceID).Update("replicas", replicas).Error
}

// ServiceNamed returns an application's service by name.
func (s *Store) ServiceNamed(ctx context.Context, appID uint, name string) (*Service, error) {
	var svc Service
	if err := s.db.WithContext(ctx).Where("application_id = ? AND name = ?", appID, name).First(&svc).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("service %q", name))
	}
	return &svc, nil
}

// ServiceRef returns an application's service by name, as the activities see it.
func (s *Store) ServiceRef(ctx context.Context, appID uint, name string) (*berth.ServiceRef, error) {
	svc, err := s.ServiceNamed(ctx, appID, name)
	if err != nil {
		return nil, err
	}
	return &berth.ServiceRef{ID: svc.ID, Name: svc.Name, Image: svc.Image, CreatedAt: svc.CreatedAt}, nil
}

// LiveServiceInstances returns a service's instances that are not removed,
// oldest first, with their hosts.
func (s *Store) LiveServiceInstances(ctx context.Context, serviceID uint) ([]berth.PlannedInstance, error) {
	var insts []Instance
	if err := s.db.WithContext(ctx).Where("service_id = ? AND removed_at IS NULL", serviceID).Order("ordinal").Find(&insts).Error; err != nil {
		return nil, err
	}
	out := make([]berth.PlannedInstance, 0, len(insts))
	for _, in := range insts {
		var h Host
		if err := s.db.WithContext(ctx).First(&h, in.HostID).Error; err != nil {
			return nil, err
		}
		out = append(out, plannedFrom(in, h))
	}
	return out, nil
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

// ServiceContext is a service with the application, environment and tenant it belongs to.
type ServiceContext struct {
	Service     Service
	Application Application
	Environment Environment
	Tenant      Tenant
}

// ServiceContextByID loads a service and everything above it.
func (s *Store) ServiceContextByID(ctx context.Context, id uint) (*ServiceContext, error) {
	var sc ServiceContext
	db := s.db.WithContext(ctx)
	if err := db.First(&sc.Service, id).Error; err != nil {
		return nil, notFound(err, fmt.Sprintf("service %d", id))
	}
	if err := db.First(&sc.Application, sc.Service.ApplicationID).Error; err != nil {
		return nil, err
	}
	if err := db.First(&sc.Environment, sc.Application.EnvironmentID).Error; err != nil {
		return nil, err
	}
	if err := db.First(&sc.Tenant, sc.Environment.TenantID).Error; err != nil {
		return nil, err
	}
	return &sc, nil
}

// BeginRun opens a run for an application that must be live, holding the
// application's lock.
func (s *Store) BeginRun(ctx context.Context, appID uint, run *Run, activeKey string) error {
	err := s.beginRun(ctx, appID, run, activeKey)
	var conflict *ConflictError
	if errors.As(err, &conflict) && conflict.Existing == nil && conflict.Msg == "another run is active for "+activeKey {
		// The transaction's snapshot predates the winner's commit; a fresh
		// read sees the run that holds the lock, so the answer can name it.
		if active, ferr := s.ActiveRun(ctx, activeKey); ferr == nil {
			return &ConflictError{Msg: fmt.Sprintf("run %d (%s by %s) is active for %s", active.ID, active.Kind, active.StartedBy, active.Subject), Existing: active}
		}
	}
	return err
}

func (s *Store) beginRun(ctx context.Context, appID uint, run *Run, activeKey string) error {
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var app Application
		if err := tx.First(&app, appID).Error; err != nil {
			return notFound(err, fmt.Sprintf("application %d", appID))
		}
		if app.State != berth.StateRunning {
			return &ConflictError{Msg: fmt.Sprintf("application %q is %s, not running", app.Name, app.State)}
		}
		run.ApplicationID, run.ActiveKey, run.Status = app.ID, &activeKey, berth.RunPending
		if err := tx.Omit("Steps").Create(run).Error; err != nil {
			if isDuplicate(err) {
				var active Run
				if ferr := tx.Where("active_key = ?", activeKey).First(&active).Error; ferr == nil {
					return &ConflictError{Msg: fmt.Sprintf("run %d (%s by %s) is active for %s", active.ID, active.Kind, active.StartedBy, active.Subject), Existing: &active}
				}
				return &ConflictError{Msg: "another run is active for " + activeKey}
			}
			return err
		}
		return nil
	})
}
