package activities

import (
	"context"
	"time"

	"github.com/berth-dev/berth"
)

// Records is the part of the store the workflows write through.
type Records interface {
	RecordStep(ctx context.Context, ev berth.StepEvent) error
	PlanDeploy(ctx context.Context, req berth.PlanRequest) (*berth.Plan, error)
	InstanceStarted(ctx context.Context, name, containerID, ip string) error
	ReleaseInstances(ctx context.Context, names []string) error
	LoseInstances(ctx context.Context, names []string) error
	LiveInstances(ctx context.Context, appID uint) ([]berth.PlannedInstance, error)
	SetApplicationState(ctx context.Context, appID uint, state berth.State) error
	EndRun(ctx context.Context, id uint, status berth.RunStatus, errMsg string) (*berth.RunEnd, error)
	SetHostFacts(ctx context.Context, id uint, f berth.HostFacts) error
	FinishUpdate(ctx context.Context, appID uint, version int, services []berth.ServiceSetting) error
	MovePorts(ctx context.Context, name string, taken []int, portMin, portMax int) (*berth.PlannedInstance, error)
	SetInstanceState(ctx context.Context, name string, state berth.State) error
}

// Store records what the workflows do. Its activities are quick database
// writes, run as local activities on the central worker.
type Store struct {
	Records  Records
	Exposure Exposure
	Releases ReleaseRecords
	// Metrics, when set, counts the runs that end here.
	Metrics RunMetrics
}

// NewStore returns the store activities; berth's store implements every interface.
func NewStore(r Records, e Exposure, rel ReleaseRecords) *Store {
	return &Store{Records: r, Exposure: e, Releases: rel}
}

// RecordStep records a step's change of state.
func (s *Store) RecordStep(ctx context.Context, ev berth.StepEvent) error {
	return storeErr(s.Records.RecordStep(ctx, ev))
}

// PlanDeploy names, places and allocates ports; idempotent per run.
func (s *Store) PlanDeploy(ctx context.Context, req berth.PlanRequest) (*berth.Plan, error) {
	p, err := s.Records.PlanDeploy(ctx, req)
	return p, storeErr(err)
}

// RecordInstances records where started instances run.
func (s *Store) RecordInstances(ctx context.Context, rs []InstanceResult) error {
	for _, r := range rs {
		if err := s.Records.InstanceStarted(ctx, r.Name, r.ContainerID, r.IP); err != nil {
			return storeErr(err)
		}
	}
	return nil
}

// InstanceStateInput names a live instance and the state an action left it in.
type InstanceStateInput struct {
	Name  string      `json:"name"`
	State berth.State `json:"state"`
}

// SetInstanceState records an instance stopped or running again.
func (s *Store) SetInstanceState(ctx context.Context, in InstanceStateInput) error {
	return storeErr(s.Records.SetInstanceState(ctx, in.Name, in.State))
}

// ReleaseInstances frees the ports of removed instances and marks them removed.
func (s *Store) ReleaseInstances(ctx context.Context, names []string) error {
	return storeErr(s.Records.ReleaseInstances(ctx, names))
}

// LoseInstances closes the records of instances lost with a host that
// stopped answering, keeping their ports until their containers are gone.
func (s *Store) LoseInstances(ctx context.Context, names []string) error {
	return storeErr(s.Records.LoseInstances(ctx, names))
}

// MovePortsInput names an instance whose host refused some of its ports.
type MovePortsInput struct {
	Name    string `json:"name"`
	Taken   []int  `json:"taken"`
	PortMin int    `json:"portMin"`
	PortMax int    `json:"portMax"`
}

// MovePorts gives an instance other host ports in place of ones something
// outside berth holds; idempotent.
func (s *Store) MovePorts(ctx context.Context, in MovePortsInput) (*berth.PlannedInstance, error) {
	pi, err := s.Records.MovePorts(ctx, in.Name, in.Taken, in.PortMin, in.PortMax)
	return pi, storeErr(err)
}

// LiveInstances lists an application's instances that still exist.
func (s *Store) LiveInstances(ctx context.Context, appID uint) ([]berth.PlannedInstance, error) {
	is, err := s.Records.LiveInstances(ctx, appID)
	return is, storeErr(err)
}

// FinishInput closes a run and sets its subject's state.
type FinishInput struct {
	RunID         uint            `json:"runId"`
	Status        berth.RunStatus `json:"status"`
	Error         string          `json:"error,omitempty"`
	ApplicationID uint            `json:"applicationId,omitempty"`
	AppState      berth.State     `json:"appState,omitempty"`
	HostID        uint            `json:"hostId,omitempty"`
	// Host carries a probe's outcome when HostID is set.
	Host *berth.HostFacts `json:"host,omitempty"`
	At   time.Time        `json:"at"`
}

// Finish records a run's outcome. Repeating it is harmless.
func (s *Store) Finish(ctx context.Context, in FinishInput) error {
	if in.ApplicationID != 0 && in.AppState != "" {
		if err := s.Records.SetApplicationState(ctx, in.ApplicationID, in.AppState); err != nil {
			return storeErr(err)
		}
	}
	if in.HostID != 0 && in.Host != nil {
		if err := s.Records.SetHostFacts(ctx, in.HostID, *in.Host); err != nil {
			return storeErr(err)
		}
	}
	end, err := s.Records.EndRun(ctx, in.RunID, in.Status, in.Error)
	if err != nil {
		return storeErr(err)
	}
	if end != nil && s.Metrics != nil {
		s.Metrics.RunEnded(string(end.Kind), string(end.Status), end.Took)
	}
	return nil
}

// RunMetrics counts ended runs (metrics.Registry).
type RunMetrics interface {
	RunEnded(kind, outcome string, took time.Duration)
}

// SetReplicas records a service's replica count after a scale.
func (s *Store) SetReplicas(ctx context.Context, serviceID uint, replicas int) error {
	return storeErr(s.Exposure.SetServiceReplicas(ctx, serviceID, replicas))
}

// ReadyHosts lists an environment's ready hosts, for prefetching images.
func (s *Store) ReadyHosts(ctx context.Context, envID uint) ([]berth.HostRef, error) {
	hs, err := s.Releases.ReadyHosts(ctx, envID)
	return hs, storeErr(err)
}

// FinishReleaseInput records a release's outcome.
type FinishReleaseInput struct {
	ReleaseID uint                 `json:"releaseId"`
	Outcome   berth.ReleaseOutcome `json:"outcome"`
	Reason    string               `json:"reason,omitempty"`
}

// FinishRelease records a release's outcome; a success makes it current and last-good.
func (s *Store) FinishRelease(ctx context.Context, in FinishReleaseInput) error {
	return storeErr(s.Releases.FinishRelease(ctx, in.ReleaseID, in.Outcome, in.Reason))
}

// ReleaseRecords is the part of the store releases write through.
type ReleaseRecords interface {
	ReadyHosts(ctx context.Context, envID uint) ([]berth.HostRef, error)
	FinishRelease(ctx context.Context, id uint, outcome berth.ReleaseOutcome, reason string) error
	RecordReleaseOutputs(ctx context.Context, outs []berth.ReleaseOutput) error
}

// RecordReleaseOutputs keeps the outputs of a release's post-upload command.
func (s *Store) RecordReleaseOutputs(ctx context.Context, outs []berth.ReleaseOutput) error {
	return storeErr(s.Releases.RecordReleaseOutputs(ctx, outs))
}

// FinishUpdateInput records what an application update left: the version
// the application is at now (0: it stayed where it was) and each service's
// image and count, or that it is gone.
type FinishUpdateInput struct {
	ApplicationID uint                   `json:"applicationId"`
	Version       int                    `json:"version,omitempty"`
	Services      []berth.ServiceSetting `json:"services,omitempty"`
}

// FinishUpdate records an update's outcome. Repeating it is harmless.
func (s *Store) FinishUpdate(ctx context.Context, in FinishUpdateInput) error {
	return storeErr(s.Records.FinishUpdate(ctx, in.ApplicationID, in.Version, in.Services))
}
