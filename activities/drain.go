package activities

import (
	"context"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/compose"
)

// EvacuationStep is a drain's next move: a service with live instances on
// the host and the evacuate run that holds its application's lock, with
// what a release of it needs; or Done, or Busy while another run holds
// the lock.
type EvacuationStep struct {
	Done          bool                    `json:"done,omitempty"`
	Busy          string                  `json:"busy,omitempty"`
	RunID         uint                    `json:"runId,omitempty"`
	WorkflowID    string                  `json:"workflowId,omitempty"`
	ApplicationID uint                    `json:"applicationId,omitempty"`
	EnvironmentID uint                    `json:"environmentId,omitempty"`
	ServiceID     uint                    `json:"serviceId,omitempty"`
	Tenant        string                  `json:"tenant,omitempty"`
	Env           string                  `json:"env,omitempty"`
	App           string                  `json:"app,omitempty"`
	Service       compose.ServiceSpec     `json:"service"`
	AppServices   []compose.ServiceSpec   `json:"appServices,omitempty"`
	Instances     []berth.PlannedInstance `json:"instances,omitempty"`
	LB            berth.LBSettings        `json:"lb"`
}

// DrainRecords is the part of the store a drain reads and writes through;
// the worker's wiring parses compose files with the deployment's options.
type DrainRecords interface {
	SetHostState(ctx context.Context, id uint, state berth.HostState) error
	NextEvacuation(ctx context.Context, hostID uint, key, workflowPrefix, startedBy string) (*EvacuationStep, error)
	SetRunStarted(ctx context.Context, id uint, temporalRunID string) error
}

// Drain holds a host drain's store activities; they run as local
// activities on the central worker.
type Drain struct {
	Records DrainRecords
}

// HostStateInput sets a host's state.
type HostStateInput struct {
	HostID uint            `json:"hostId"`
	State  berth.HostState `json:"state"`
}

// SetHostState cordons a host (draining) or marks it drained.
func (d *Drain) SetHostState(ctx context.Context, in HostStateInput) error {
	return storeErr(d.Records.SetHostState(ctx, in.HostID, in.State))
}

// NextEvacuationInput asks for a drain's next move; Key (the drain's run
// and the move's number) makes a retry return the run it opened.
type NextEvacuationInput struct {
	HostID uint   `json:"hostId"`
	Key    string `json:"key"`
	// WorkflowPrefix and the service's subject are the move's workflow id.
	WorkflowPrefix string `json:"workflowPrefix"`
	StartedBy      string `json:"startedBy"`
}

// NextEvacuation opens the next move of a drain, or says the host is empty.
func (d *Drain) NextEvacuation(ctx context.Context, in NextEvacuationInput) (*EvacuationStep, error) {
	out, err := d.Records.NextEvacuation(ctx, in.HostID, in.Key, in.WorkflowPrefix, in.StartedBy)
	return out, storeErr(err)
}

// RunStartedInput ties a run a workflow opened to its child workflow's run.
type RunStartedInput struct {
	RunID         uint   `json:"runId"`
	TemporalRunID string `json:"temporalRunId"`
}

// EvacuationStarted records that a move's workflow started.
func (d *Drain) EvacuationStarted(ctx context.Context, in RunStartedInput) error {
	return storeErr(d.Records.SetRunStarted(ctx, in.RunID, in.TemporalRunID))
}
