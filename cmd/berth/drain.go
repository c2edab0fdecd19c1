package main

import (
	"context"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/compose"
	"github.com/berth-dev/berth/store"
)

// moveRecords gives a drain's moves and self-healing's replacements the
// store with the deployment's compose options and load-balancer settings,
// so each reads its service the way the API's releases do.
type moveRecords struct {
	*store.Store
	compose compose.Options
	lb      berth.LBSettings
}

func (d moveRecords) NextEvacuation(ctx context.Context, hostID uint, key, workflowPrefix, startedBy string) (*activities.EvacuationStep, error) {
	ev, err := d.BeginEvacuation(ctx, hostID, key, workflowPrefix, startedBy, d.compose)
	if err != nil {
		return nil, err
	}
	if ev.Done || ev.Busy != "" {
		return &activities.EvacuationStep{Done: ev.Done, Busy: ev.Busy}, nil
	}
	step := d.step(ev.Ctx, ev.Target, ev.OnHost)
	step.RunID, step.WorkflowID = ev.Run.ID, ev.Run.WorkflowID
	return step, nil
}

// ReplaceTarget is what replacing one live instance (whose container is
// gone) with a new one of the same version needs.
func (d moveRecords) ReplaceTarget(ctx context.Context, name string) (*activities.EvacuationStep, error) {
	in, err := d.LiveInstanceByName(ctx, name)
	if err != nil {
		return nil, err
	}
	sc, err := d.ServiceContextByID(ctx, in.ServiceID)
	if err != nil {
		return nil, err
	}
	tg, err := d.ServiceTarget(ctx, sc, d.compose)
	if err != nil {
		return nil, err
	}
	var mine []berth.PlannedInstance
	for _, pi := range tg.Live {
		if pi.Name == name {
			mine = append(mine, pi)
		}
	}
	return d.step(sc, tg, mine), nil
}

// TopUpTarget is what bringing a service back to its replicas needs: the
// service as a release reads it, and its live instances.
func (d moveRecords) TopUpTarget(ctx context.Context, serviceID uint) (*activities.EvacuationStep, error) {
	sc, err := d.ServiceContextByID(ctx, serviceID)
	if err != nil {
		return nil, err
	}
	tg, err := d.ServiceTarget(ctx, sc, d.compose)
	if err != nil {
		return nil, err
	}
	return d.step(sc, tg, tg.Live), nil
}

func (d moveRecords) step(sc *store.ServiceContext, tg *store.ServiceTarget, insts []berth.PlannedInstance) *activities.EvacuationStep {
	return &activities.EvacuationStep{ApplicationID: sc.Application.ID, EnvironmentID: sc.Environment.ID,
		ServiceID: sc.Service.ID, Tenant: sc.Tenant.Name, Env: sc.Environment.Name, App: sc.Application.Name,
		Service: *tg.Spec, AppServices: tg.AppServices, Instances: insts, LB: sc.Environment.LBFor(d.lb)}
}
