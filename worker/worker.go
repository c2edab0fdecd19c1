package worker

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/workflows"
)

// Config says which workers this process runs.
type Config struct {
	// Central runs the workflows; it needs Store.
	Central bool
	// Regions whose host activities this process serves; they need Docker.
	Regions []string
	Store   *activities.Store
	CMDB    *activities.CMDB
	Tickets *activities.Tickets
	// LogArchive searches the region's shipped logs (region workers).
	LogArchive *activities.LogArchive
	// Reconcile reads and repairs records for the reconciler (central).
	Reconcile *activities.Reconcile
	// Heal opens self-healing's runs (central).
	Heal *activities.Heal
	// Drain opens a host drain's moves (central).
	Drain *activities.Drain
	// Catalog reads and deletes in the platform registry (central; set
	// when a registry is configured).
	Catalog *activities.Catalog
	Docker  *activities.Docker
	// LB and Firewall drive the region's load balancer and firewall.
	LB       *activities.LB
	Firewall *activities.Firewall
}

// RegisterWorkflows registers every workflow under its fixed name.
func RegisterWorkflows(r sdkworker.WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(workflows.DeployStack, workflow.RegisterOptions{Name: workflows.DeployStackName})
	r.RegisterWorkflowWithOptions(workflows.DeleteStack, workflow.RegisterOptions{Name: workflows.DeleteStackName})
	r.RegisterWorkflowWithOptions(workflows.ProvisionHost, workflow.RegisterOptions{Name: workflows.ProvisionHostName})
	r.RegisterWorkflowWithOptions(workflows.ScaleService, workflow.RegisterOptions{Name: workflows.ScaleServiceName})
	r.RegisterWorkflowWithOptions(workflows.PoolStats, workflow.RegisterOptions{Name: workflows.PoolStatsName})
	r.RegisterWorkflowWithOptions(workflows.InstanceStats, workflow.RegisterOptions{Name: workflows.InstanceStatsName})
	r.RegisterWorkflowWithOptions(workflows.InstanceLogs, workflow.RegisterOptions{Name: workflows.InstanceLogsName})
	r.RegisterWorkflowWithOptions(workflows.SearchLogs, workflow.RegisterOptions{Name: workflows.SearchLogsName})
	r.RegisterWorkflowWithOptions(workflows.CMDBSync, workflow.RegisterOptions{Name: workflows.CMDBSyncName})
	r.RegisterWorkflowWithOptions(workflows.CMDBResync, workflow.RegisterOptions{Name: workflows.CMDBResyncName})
	r.RegisterWorkflowWithOptions(workflows.TicketDelivery, workflow.RegisterOptions{Name: workflows.TicketDeliveryName})
	r.RegisterWorkflowWithOptions(workflows.ApprovalGate, workflow.RegisterOptions{Name: workflows.ApprovalGateName})
	r.RegisterWorkflowWithOptions(workflows.ReleaseVersion, workflow.RegisterOptions{Name: workflows.ReleaseVersionName})
	r.RegisterWorkflowWithOptions(workflows.GreyRelease, workflow.RegisterOptions{Name: workflows.GreyReleaseName})
	r.RegisterWorkflowWithOptions(workflows.CommitInstance, workflow.RegisterOptions{Name: workflows.CommitInstanceName})
	r.RegisterWorkflowWithOptions(workflows.UpdateApplication, workflow.RegisterOptions{Name: workflows.UpdateApplicationName})
	r.RegisterWorkflowWithOptions(workflows.Reconcile, workflow.RegisterOptions{Name: workflows.ReconcileName})
	r.RegisterWorkflowWithOptions(workflows.InstanceAction, workflow.RegisterOptions{Name: workflows.InstanceActionName})
	r.RegisterWorkflowWithOptions(workflows.HealPass, workflow.RegisterOptions{Name: workflows.HealPassName})
	r.RegisterWorkflowWithOptions(workflows.HealInstance, workflow.RegisterOptions{Name: workflows.HealInstanceName})
	r.RegisterWorkflowWithOptions(workflows.DrainHost, workflow.RegisterOptions{Name: workflows.DrainHostName})
	r.RegisterWorkflowWithOptions(workflows.DiskPass, workflow.RegisterOptions{Name: workflows.DiskPassName})
	r.RegisterWorkflowWithOptions(workflows.ImageCatalog, workflow.RegisterOptions{Name: workflows.ImageCatalogName})
	r.RegisterWorkflowWithOptions(workflows.DeleteImage, workflow.RegisterOptions{Name: workflows.DeleteImageName})
	r.RegisterWorkflowWithOptions(workflows.TerminalSession, workflow.RegisterOptions{Name: workflows.TerminalSessionName})
}

// RegisterStore registers the store activities; their method names are their fixed names.
func RegisterStore(r sdkworker.ActivityRegistry, st *activities.Store) {
	r.RegisterActivityWithOptions(st, activity.RegisterOptions{SkipInvalidStructFunctions: true})
}

// RegisterDocker registers the host activities.
func RegisterDocker(r sdkworker.ActivityRegistry, d *activities.Docker) {
	r.RegisterActivityWithOptions(d, activity.RegisterOptions{SkipInvalidStructFunctions: true})
}

// Build creates the workers of a Config; Start them with Run.
func Build(c client.Client, cfg Config) ([]sdkworker.Worker, error) {
	var ws []sdkworker.Worker
	if cfg.Central {
		if cfg.Store == nil {
			return nil, fmt.Errorf("central worker needs the store")
		}
		w := sdkworker.New(c, workflows.CentralTaskQueue, workerOptions())
		RegisterWorkflows(w)
		RegisterStore(w, cfg.Store)
		if cfg.Tickets != nil {
			w.RegisterActivityWithOptions(cfg.Tickets, activity.RegisterOptions{SkipInvalidStructFunctions: true})
		}
		if cfg.CMDB != nil {
			w.RegisterActivityWithOptions(cfg.CMDB, activity.RegisterOptions{SkipInvalidStructFunctions: true})
		}
		if cfg.Reconcile != nil {
			w.RegisterActivityWithOptions(cfg.Reconcile, activity.RegisterOptions{SkipInvalidStructFunctions: true})
		}
		if cfg.Heal != nil {
			w.RegisterActivityWithOptions(cfg.Heal, activity.RegisterOptions{SkipInvalidStructFunctions: true})
		}
		if cfg.Drain != nil {
			w.RegisterActivityWithOptions(cfg.Drain, activity.RegisterOptions{SkipInvalidStructFunctions: true})
		}
		if cfg.Catalog != nil {
			w.RegisterActivityWithOptions(cfg.Catalog, activity.RegisterOptions{SkipInvalidStructFunctions: true})
		}
		ws = append(ws, w)
	}
	for _, region := range cfg.Regions {
		if cfg.Docker == nil {
			return nil, fmt.Errorf("region worker %s needs Docker", region)
		}
		w := sdkworker.New(c, workflows.RegionTaskQueue(region), workerOptions())
		RegisterDocker(w, cfg.Docker)
		// Always there, so a search in a region without an archive is told so.
		archive := cfg.LogArchive
		if archive == nil {
			archive = &activities.LogArchive{}
		}
		w.RegisterActivityWithOptions(archive, activity.RegisterOptions{SkipInvalidStructFunctions: true})
		if cfg.LB != nil {
			w.RegisterActivityWithOptions(cfg.LB, activity.RegisterOptions{SkipInvalidStructFunctions: true})
		}
		if cfg.Firewall != nil {
			w.RegisterActivityWithOptions(cfg.Firewall, activity.RegisterOptions{SkipInvalidStructFunctions: true})
		}
		ws = append(ws, w)
	}
	if len(ws) == 0 {
		return nil, fmt.Errorf("nothing to run: no central worker and no region")
	}
	return ws, nil
}

// Run starts the workers and stops them when ctx ends.
func Run(ctx context.Context, ws []sdkworker.Worker) error {
	for i, w := range ws {
		if err := w.Start(); err != nil {
			for _, started := range ws[:i] {
				started.Stop()
			}
			return err
		}
	}
	<-ctx.Done()
	for _, w := range ws {
		w.Stop()
	}
	return nil
}
