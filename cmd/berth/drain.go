package main

import (
	"context"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/compose"
	"github.com/berth-dev/berth/store"
)

// drainRecords gives a drain the store with the deployment's compose
// options and load-balancer settings, so each move reads its service the
// way the API's releases do.
type drainRecords struct {
	*store.Store
	compose compose.Options
	lb      berth.LBSettings
}

func (d drainRecords) NextEvacuation(ctx context.Context, hostID uint, key, workflowPrefix, startedBy string) (*activities.EvacuationStep, error) {
	ev, err := d.BeginEvacuation(ctx, hostID, key, workflowPrefix, startedBy, d.compose)
	if err != nil {
		return nil, err
	}
	if ev.Done || ev.Busy != "" {
		return &activities.EvacuationStep{Done: ev.Done, Busy: ev.Busy}, nil
	}
	sc := ev.Ctx
	return &activities.EvacuationStep{RunID: ev.Run.ID, WorkflowID: ev.Run.WorkflowID, ApplicationID: sc.Application.ID, EnvironmentID: sc.Environment.ID,
		ServiceID: sc.Service.ID, Tenant: sc.Tenant.Name, Env: sc.Environment.Name, App: sc.Application.Name,
		Service: *ev.Target.Spec, AppServices: ev.Target.AppServices, Instances: ev.OnHost, LB: sc.Environment.LBFor(d.lb)}, nil
}
