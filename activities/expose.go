package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/firewall"
	"github.com/berth-dev/berth/lb"
)

// Exposure is the part of the store that records load-balancer pools,
// firewall openings and CMDB items.
type Exposure interface {
	SetServiceReplicas(ctx context.Context, serviceID uint, replicas int) error
	ServiceRef(ctx context.Context, appID uint, name string) (*berth.ServiceRef, error)
	EnsurePool(ctx context.Context, p berth.LBPool, portMin, portMax int) (*berth.LBPool, error)
	PoolIn(ctx context.Context, serviceID uint, region string) (*berth.LBPool, error)
	SetPoolServers(ctx context.Context, poolID uint, servers []berth.LBServer) error
	RemovePoolServers(ctx context.Context, names []string) error
	SetServerWeights(ctx context.Context, weights map[string]int) error
	SetPoolRoutes(ctx context.Context, backend, routes string) error
	RemovePool(ctx context.Context, serviceID uint) error
	RecordOpenings(ctx context.Context, os []berth.FirewallOpening) error
	SetOpeningsState(ctx context.Context, ids []string, state berth.OpeningState, runID uint) error
	QueueCMDB(ctx context.Context, recs []berth.CMDBRecord) ([]string, error)
	DesiredCIs(ctx context.Context, scope berth.CIScope) ([]berth.CMDBRecord, error)
	MarkServicesChanged(ctx context.Context, serviceIDs []uint, runID uint) error
	RunActor(ctx context.Context, runID uint) (string, error)
}

// ExposeService is what exposure needs to know about one service.
type ExposeService struct {
	Name       string `json:"name"`
	HealthPath string `json:"healthPath,omitempty"`
}

// ExposeInput asks for new instances to be put behind the load balancer,
// opened in the firewall and recorded for the CMDB.
type ExposeInput struct {
	RunID         uint                    `json:"runId"`
	ApplicationID uint                    `json:"applicationId"`
	Subject       string                  `json:"subject"` // tenant/env/app
	Services      []ExposeService         `json:"services"`
	Instances     []berth.PlannedInstance `json:"instances"`
	LB            berth.LBSettings        `json:"lb"`
}

// PoolPlan is one backend to make sure of, and the servers to add to it.
type PoolPlan struct {
	Region  string      `json:"region"`
	Backend lb.Backend  `json:"backend"`
	Add     []lb.Server `json:"add"`
}

// RegionOpenings are firewall openings applied by one region's worker.
type RegionOpenings struct {
	Region   string             `json:"region"`
	Openings []firewall.Opening `json:"openings"`
}

// ExposePlan is what the workflow applies, region by region.
type ExposePlan struct {
	Pools    []PoolPlan       `json:"pools"`
	Openings []RegionOpenings `json:"openings"`
	CMDB     []string         `json:"cmdb"`
}

// BackendName is a service's backend name on the load balancer.
func BackendName(subject, service string) string {
	b := []byte(subject + "-" + service)
	for i, c := range b {
		if c == '/' {
			b[i] = '-'
		}
	}
	return string(b)
}

// OpeningID is the firewall opening of one published port of one instance.
func OpeningID(instance string, p berth.PortMapping) string {
	return fmt.Sprintf("%s/%d-%s", instance, p.ContainerPort, p.Protocol)
}

// PlanExpose records pools (allocating frontend ports), the desired servers,
// the requested openings and the CMDB items, and returns what to apply.
// Repeating it is harmless: every record is keyed by name.
func (s *Store) PlanExpose(ctx context.Context, in ExposeInput) (*ExposePlan, error) {
	plan := &ExposePlan{}
	byService := map[string][]berth.PlannedInstance{}
	for _, pi := range in.Instances {
		byService[pi.Service] = append(byService[pi.Service], pi)
	}
	var openings []berth.FirewallOpening
	regionOpen := map[string]int{}
	var changed []uint
	for _, es := range in.Services {
		insts := byService[es.Name]
		if len(insts) == 0 {
			continue
		}
		svc, err := s.Exposure.ServiceRef(ctx, in.ApplicationID, es.Name)
		if err != nil {
			return nil, storeErr(err)
		}
		changed = append(changed, svc.ID)
		if in.LB.Enabled && primaryPort(insts[0]) != nil {
			// One pool per region: each region's load balancer serves the
			// instances of its own region.
			for _, rg := range byRegion(insts) {
				pp, err := s.planPool(ctx, in, es, svc.ID, rg)
				if err != nil {
					return nil, err
				}
				plan.Pools = append(plan.Pools, *pp)
			}
		}
		for _, pi := range insts {
			for _, p := range pi.Ports {
				o := berth.FirewallOpening{OpeningID: OpeningID(pi.Name, p), InstanceName: pi.Name, Protocol: p.Protocol,
					DestIP: p.HostIP, DestPort: p.HostPort, Driver: in.LB.Firewall, State: berth.OpeningRequested, RunID: in.RunID}
				openings = append(openings, o)
				idx, ok := regionOpen[pi.Host.Region]
				if !ok {
					idx = len(plan.Openings)
					regionOpen[pi.Host.Region] = idx
					plan.Openings = append(plan.Openings, RegionOpenings{Region: pi.Host.Region})
				}
				plan.Openings[idx].Openings = append(plan.Openings[idx].Openings, firewall.Opening{ID: o.OpeningID,
					Protocol: o.Protocol, DestIP: o.DestIP, DestPort: o.DestPort})
			}
		}
	}
	if err := s.Exposure.RecordOpenings(ctx, openings); err != nil {
		return nil, storeErr(err)
	}
	if err := s.Exposure.MarkServicesChanged(ctx, changed, in.RunID); err != nil {
		return nil, storeErr(err)
	}
	recs, err := s.Exposure.DesiredCIs(ctx, berth.CIScope{ApplicationID: in.ApplicationID})
	if err != nil {
		return nil, storeErr(err)
	}
	if plan.CMDB, err = s.Exposure.QueueCMDB(ctx, recs); err != nil {
		return nil, storeErr(err)
	}
	return plan, nil
}

// regionInstances are one service's instances in one region.
type regionInstances struct {
	region string
	insts  []berth.PlannedInstance
}

// byRegion groups instances by their host's region, in the order the
// regions first appear, so the same instances give the same plan.
func byRegion(insts []berth.PlannedInstance) []regionInstances {
	var out []regionInstances
	at := map[string]int{}
	for _, pi := range insts {
		i, ok := at[pi.Host.Region]
		if !ok {
			i = len(out)
			at[pi.Host.Region] = i
			out = append(out, regionInstances{region: pi.Host.Region})
		}
		out[i].insts = append(out[i].insts, pi)
	}
	return out
}

// planPool makes sure of a service's pool in one region and records the
// region's instances as its servers.
func (s *Store) planPool(ctx context.Context, in ExposeInput, es ExposeService, serviceID uint, rg regionInstances) (*PoolPlan, error) {
	mode := "tcp"
	if es.HealthPath != "" {
		mode = "http"
	}
	pool, err := s.Exposure.EnsurePool(ctx, berth.LBPool{ServiceID: serviceID, Region: rg.region,
		Backend: BackendName(in.Subject, es.Name), ListenIP: in.LB.ListenIP, Mode: mode, HealthPath: es.HealthPath},
		in.LB.PortMin, in.LB.PortMax)
	if err != nil {
		return nil, storeErr(err)
	}
	var add []berth.LBServer
	for _, pi := range rg.insts {
		p := primaryPort(pi)
		add = append(add, berth.LBServer{InstanceName: pi.Name, Addr: net.JoinHostPort(p.HostIP, strconv.Itoa(p.HostPort)),
			Weight: in.LB.Weight, State: lb.StateReady})
	}
	if err := s.Exposure.SetPoolServers(ctx, pool.ID, add); err != nil {
		return nil, storeErr(err)
	}
	if pool, err = s.Exposure.PoolIn(ctx, serviceID, rg.region); err != nil {
		return nil, storeErr(err)
	}
	pp := &PoolPlan{Region: rg.region, Backend: lb.BackendOf(pool)}
	for _, a := range add {
		pp.Add = append(pp.Add, lb.Server{Name: a.InstanceName, Addr: a.Addr, Weight: a.Weight, State: a.State})
	}
	return pp, nil
}

func primaryPort(pi berth.PlannedInstance) *berth.PortMapping {
	for i := range pi.Ports {
		if pi.Ports[i].Protocol == "tcp" {
			return &pi.Ports[i]
		}
	}
	return nil
}

// WeightsInput records servers' weights.
type WeightsInput struct {
	Weights map[string]int `json:"weights"`
}

// RecordWeights records the weights berth wants, for a restarted load balancer.
func (s *Store) RecordWeights(ctx context.Context, in WeightsInput) error {
	return storeErr(s.Exposure.SetServerWeights(ctx, in.Weights))
}

// RoutesInput is a backend's set of routes.
type RoutesInput struct {
	Backend string     `json:"backend"`
	Routes  []lb.Route `json:"routes,omitempty"`
}

// RecordRoutes records a backend's routes, for a restarted load balancer.
func (s *Store) RecordRoutes(ctx context.Context, in RoutesInput) error {
	text := ""
	if len(in.Routes) > 0 {
		b, err := json.Marshal(in.Routes)
		if err != nil {
			return err
		}
		text = string(b)
	}
	return storeErr(s.Exposure.SetPoolRoutes(ctx, in.Backend, text))
}

// OpeningsDone marks openings applied (open) or removed (closed).
type OpeningsDone struct {
	IDs   []string           `json:"ids"`
	State berth.OpeningState `json:"state"`
	RunID uint               `json:"runId"`
}

// MarkOpenings records the driver's outcome for openings.
func (s *Store) MarkOpenings(ctx context.Context, in OpeningsDone) error {
	return storeErr(s.Exposure.SetOpeningsState(ctx, in.IDs, in.State, in.RunID))
}

// UnexposeInput names instances to take out of the load balancer, the
// firewall and the CMDB.
type UnexposeInput struct {
	ApplicationID uint                    `json:"applicationId"`
	Subject       string                  `json:"subject"`
	Instances     []berth.PlannedInstance `json:"instances"`
	// DropPools removes the services' pools too (the application is going).
	DropPools bool `json:"dropPools"`
	// RunID is the run taking them away: the CMDB's deleted-by and the
	// services' updated-by.
	RunID uint `json:"runId,omitempty"`
}

// PoolRemoval says which servers leave a backend.
type PoolRemoval struct {
	Region     string   `json:"region"`
	Backend    string   `json:"backend"`
	Names      []string `json:"names"`
	RemovePool bool     `json:"removePool"`
}

// UnexposePlan is what the workflow removes, region by region.
type UnexposePlan struct {
	Pools    []PoolRemoval    `json:"pools"`
	Openings []RegionOpenings `json:"openings"`
}

// PlanUnexpose reads what must be removed; it changes nothing, so the
// records still show the truth until the removal is done.
func (s *Store) PlanUnexpose(ctx context.Context, in UnexposeInput) (*UnexposePlan, error) {
	plan := &UnexposePlan{}
	byService := map[string][]berth.PlannedInstance{}
	var order []string
	for _, pi := range in.Instances {
		if _, ok := byService[pi.Service]; !ok {
			order = append(order, pi.Service)
		}
		byService[pi.Service] = append(byService[pi.Service], pi)
	}
	regionOpen := map[string]int{}
	for _, name := range order {
		insts := byService[name]
		svc, err := s.Exposure.ServiceRef(ctx, in.ApplicationID, name)
		if err != nil {
			return nil, storeErr(err)
		}
		for _, rg := range byRegion(insts) {
			pool, err := s.Exposure.PoolIn(ctx, svc.ID, rg.region)
			if berth.ErrorCode(err) == berth.ENotFound {
				continue // no pool there: nothing to take the instances out of
			}
			if err != nil {
				return nil, storeErr(err)
			}
			pr := PoolRemoval{Region: pool.Region, Backend: pool.Backend, RemovePool: in.DropPools}
			for _, pi := range rg.insts {
				pr.Names = append(pr.Names, pi.Name)
			}
			plan.Pools = append(plan.Pools, pr)
		}
		for _, pi := range insts {
			for _, p := range pi.Ports {
				idx, ok := regionOpen[pi.Host.Region]
				if !ok {
					idx = len(plan.Openings)
					regionOpen[pi.Host.Region] = idx
					plan.Openings = append(plan.Openings, RegionOpenings{Region: pi.Host.Region})
				}
				plan.Openings[idx].Openings = append(plan.Openings[idx].Openings, firewall.Opening{ID: OpeningID(pi.Name, p),
					Protocol: p.Protocol, DestIP: p.HostIP, DestPort: p.HostPort})
			}
		}
	}
	return plan, nil
}

// UnexposeDone records the removal: servers (and pools) forgotten, openings
// closed, and CMDB deletions queued along with the services and
// application whose items changed. It returns the CMDB items to sync.
func (s *Store) UnexposeDone(ctx context.Context, in UnexposeInput) ([]string, error) {
	var names []string
	var closed []string
	services := map[string]bool{}
	var order []string
	for _, pi := range in.Instances {
		names = append(names, pi.Name)
		for _, p := range pi.Ports {
			closed = append(closed, OpeningID(pi.Name, p))
		}
		if !services[pi.Service] {
			services[pi.Service] = true
			order = append(order, pi.Service)
		}
	}
	if err := s.Exposure.RemovePoolServers(ctx, names); err != nil {
		return nil, storeErr(err)
	}
	var changed []uint
	for _, name := range order {
		svc, err := s.Exposure.ServiceRef(ctx, in.ApplicationID, name)
		if err != nil {
			return nil, storeErr(err)
		}
		changed = append(changed, svc.ID)
		if in.DropPools {
			if err := s.Exposure.RemovePool(ctx, svc.ID); err != nil {
				return nil, storeErr(err)
			}
		}
	}
	if err := s.Exposure.SetOpeningsState(ctx, closed, berth.OpeningClosed, in.RunID); err != nil {
		return nil, storeErr(err)
	}
	if err := s.Exposure.MarkServicesChanged(ctx, changed, in.RunID); err != nil {
		return nil, storeErr(err)
	}
	by := "berth"
	if in.RunID != 0 {
		actor, err := s.Exposure.RunActor(ctx, in.RunID)
		if err != nil {
			return nil, storeErr(err)
		}
		by = actor
	}
	at := time.Now()
	recs := make([]berth.CMDBRecord, 0, len(names)+len(order))
	for _, n := range names {
		recs = append(recs, berth.CITombstone(berth.CIID(berth.CIInstance, n), berth.CIInstance, by, at))
	}
	// What stays changed too (fewer instances, a new updated-by).
	desired, err := s.Exposure.DesiredCIs(ctx, berth.CIScope{ApplicationID: in.ApplicationID, Without: names})
	if err != nil {
		return nil, storeErr(err)
	}
	dropped := map[string]bool{}
	if in.DropPools {
		for _, name := range order {
			id := berth.CIID(berth.CIService, in.Subject+"/"+name)
			dropped[id] = true
			recs = append(recs, berth.CITombstone(id, berth.CIService, by, at))
		}
	}
	appID, stays := berth.CIID(berth.CIApplication, in.Subject), false
	for _, r := range desired {
		if r.Kind == berth.CIService && !dropped[r.CIID] {
			stays = true
		}
	}
	for _, r := range desired {
		switch {
		case dropped[r.CIID]:
		case r.CIID == appID && in.DropPools && !stays:
			// The last services are going: so is the application.
			recs = append(recs, berth.CITombstone(appID, berth.CIApplication, by, at))
		default:
			recs = append(recs, r)
		}
	}
	ids, err := s.Exposure.QueueCMDB(ctx, recs)
	return ids, storeErr(err)
}
