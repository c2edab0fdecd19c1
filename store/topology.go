package store

import (
	"context"
	"sort"

	"github.com/berth-dev/berth"
)

// Topology is what the configuration map draws: the tenants' environments,
// applications and services, their live instances counted by host and
// state, the instances of the services asked for one by one, and the
// hosts they run on. It makes six queries whatever the size.
type Topology struct {
	Tenants      []TopoTenant
	Environments []TopoEnvironment
	Applications []TopoApplication
	Services     []TopoService
	// Instances holds only the expanded services' instances.
	Instances []TopoInstance
	Hosts     []TopoHost
}

// TopoTenant is a tenant on the map.
type TopoTenant struct {
	ID   uint
	Name string
}

// TopoEnvironment is an environment on the map.
type TopoEnvironment struct {
	ID, TenantID uint
	Name         string
	Production   bool
}

// TopoApplication is an application on the map.
type TopoApplication struct {
	ID, EnvironmentID uint
	Name              string
	State             berth.State
}

// TopoService is a service on the map, with its live instances counted.
type TopoService struct {
	ID, ApplicationID uint
	Name              string
	State             berth.State
	Replicas          int
	// ByState counts live instances by state; ByHost by host id.
	ByState map[berth.State]int
	ByHost  map[uint]int
}

// Live is how many live instances the service has.
func (s TopoService) Live() int {
	n := 0
	for _, c := range s.ByState {
		n += c
	}
	return n
}

// TopoInstance is one live instance of an expanded service.
type TopoInstance struct {
	Name      string
	ServiceID uint
	HostID    uint
	State     berth.State
}

// TopoHost is a host that runs some of the drawn instances.
type TopoHost struct {
	ID     uint
	Name   string
	Region string
	State  berth.HostState
}

// maxExpandedInstances bounds the instances one map lists one by one.
const maxExpandedInstances = 2000

// Topology reads the map of the given tenants (nil: every tenant); the
// services in expand are listed instance by instance.
func (s *Store) Topology(ctx context.Context, tenantIDs []uint, expand []uint) (*Topology, error) {
	db := s.db.WithContext(ctx)
	out := &Topology{}
	tq := db.Model(&Tenant{}).Select("id", "name").Order("name")
	if tenantIDs != nil {
		tq = tq.Where("id IN ?", tenantIDs)
	}
	if err := tq.Scan(&out.Tenants).Error; err != nil {
		return nil, err
	}
	if len(out.Tenants) == 0 {
		return out, nil
	}
	ids := make([]uint, 0, len(out.Tenants))
	for _, t := range out.Tenants {
		ids = append(ids, t.ID)
	}
	if err := db.Model(&Environment{}).Select("id", "tenant_id", "name", "prod AS production").Where("tenant_id IN ?", ids).
		Order("name").Scan(&out.Environments).Error; err != nil {
		return nil, err
	}
	envIDs := make([]uint, 0, len(out.Environments))
	for _, e := range out.Environments {
		envIDs = append(envIDs, e.ID)
	}
	if len(envIDs) == 0 {
		return out, nil
	}
	if err := db.Model(&Application{}).Select("id", "environment_id", "name", "state").
		Where("environment_id IN ? AND deleted_at IS NULL AND state <> ?", envIDs, berth.StateDeleted).
		Order("name").Scan(&out.Applications).Error; err != nil {
		return nil, err
	}
	appIDs := make([]uint, 0, len(out.Applications))
	for _, a := range out.Applications {
		appIDs = append(appIDs, a.ID)
	}
	if len(appIDs) == 0 {
		return out, nil
	}
	if err := db.Model(&Service{}).Select("id", "application_id", "name", "state", "replicas").
		Where("application_id IN ? AND deleted_at IS NULL AND state <> ?", appIDs, berth.StateDeleted).
		Order("name").Scan(&out.Services).Error; err != nil {
		return nil, err
	}
	svcIDs := make([]uint, 0, len(out.Services))
	index := map[uint]int{}
	for i := range out.Services {
		svcIDs = append(svcIDs, out.Services[i].ID)
		index[out.Services[i].ID] = i
		out.Services[i].ByState, out.Services[i].ByHost = map[berth.State]int{}, map[uint]int{}
	}
	if len(svcIDs) == 0 {
		return out, nil
	}
	var counts []struct {
		ServiceID, HostID uint
		State             berth.State
		N                 int
	}
	if err := db.Model(&Instance{}).Select("service_id, host_id, state, COUNT(*) AS n").
		Where("service_id IN ? AND removed_at IS NULL", svcIDs).Group("service_id, host_id, state").Scan(&counts).Error; err != nil {
		return nil, err
	}
	hostSet := map[uint]bool{}
	for _, c := range counts {
		sv := &out.Services[index[c.ServiceID]]
		sv.ByState[c.State] += c.N
		sv.ByHost[c.HostID] += c.N
		hostSet[c.HostID] = true
	}
	var shown []uint
	for _, id := range expand {
		if _, ok := index[id]; ok {
			shown = append(shown, id)
		}
	}
	if len(shown) > 0 {
		if err := db.Model(&Instance{}).Select("name", "service_id", "host_id", "state").
			Where("service_id IN ? AND removed_at IS NULL", shown).Order("service_id, ordinal").
			Limit(maxExpandedInstances).Scan(&out.Instances).Error; err != nil {
			return nil, err
		}
	}
	hostIDs := make([]uint, 0, len(hostSet))
	for id := range hostSet {
		hostIDs = append(hostIDs, id)
	}
	if len(hostIDs) > 0 {
		if err := db.Model(&Host{}).Select("id", "name", "region", "state").Where("id IN ?", hostIDs).
			Scan(&out.Hosts).Error; err != nil {
			return nil, err
		}
	}
	sort.Slice(out.Hosts, func(i, j int) bool { return out.Hosts[i].Name < out.Hosts[j].Name })
	return out, nil
}
