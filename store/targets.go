package store

import (
	"context"
	"time"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/compose"
)

// ServiceTarget is what a run on one service needs: its spec with the
// image it runs now (the compose file holds the first image; releases move
// the service on), the application's services (the relays between hosts
// follow all of them), and its live instances, oldest first.
type ServiceTarget struct {
	Spec        *compose.ServiceSpec
	AppServices []compose.ServiceSpec
	Live        []berth.PlannedInstance
}

// ServiceTarget reads the service's target as the compose options (the
// deployment's, scoped to the tenant and environment) parse its file.
func (s *Store) ServiceTarget(ctx context.Context, sc *ServiceContext, opts compose.Options) (*ServiceTarget, error) {
	spec, err := compose.Parse(ctx, sc.Application.Name, []byte(sc.Application.Compose), opts.ScopedTo(sc.Tenant.Name, sc.Environment.Name))
	if err != nil {
		return nil, err
	}
	// The limits as they were applied at deploy, unless the environment's
	// maximums have since come down: then the run says so up front.
	if err := compose.ApplyLimits(spec, sc.Environment.Limits); err != nil {
		return nil, err
	}
	svc := spec.Service(sc.Service.Name)
	if svc == nil {
		return nil, &berth.Error{Code: berth.EConflict, Message: "service " + sc.Service.Name + " is not in its application's compose file"}
	}
	svc.Image = sc.Service.Image
	live, err := s.LiveServiceInstances(ctx, sc.Service.ID)
	if err != nil {
		return nil, err
	}
	return &ServiceTarget{Spec: svc, AppServices: spec.Services, Live: live}, nil
}

// LBFor is the deployment's load-balancer settings as the environment
// narrows them (its firewall mode and ticket timeout).
func (e *Environment) LBFor(base berth.LBSettings) berth.LBSettings {
	lb := base
	if e.Firewall != "" {
		lb.Firewall = e.Firewall
	}
	if e.TicketTimeoutSec > 0 {
		lb.TicketTimeout = time.Duration(e.TicketTimeoutSec) * time.Second
	}
	return lb
}
