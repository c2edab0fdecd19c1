package activities

import (
	"context"

	"github.com/berth-dev/berth"
)

// HealRecords is the part of the store self-healing opens and marks runs in.
type HealRecords interface {
	BeginHeal(ctx context.Context, name, host, workflowID, key string) (*berth.HealStart, error)
	SetRunStarted(ctx context.Context, id uint, temporalRunID string) error
	ReplaceTarget(ctx context.Context, name string) (*EvacuationStep, error)
	WatchedHosts(ctx context.Context) ([]berth.HostRef, error)
	RecordProbe(ctx context.Context, hostID uint, ok bool, reason string, downAfter int) (*berth.HostProbe, error)
	BeginHostRun(ctx context.Context, hostID uint, kind berth.RunKind, workflowID, lockKey, key string) (*berth.HealStart, error)
	LostInstances(ctx context.Context, hostID uint) ([]berth.PlannedInstance, error)
	CloseLost(ctx context.Context, names []string) error
	ShortServices(ctx context.Context) ([]berth.ShortService, error)
	BeginServiceHeal(ctx context.Context, serviceID uint, workflowID, key string) (*berth.HealStart, error)
	TopUpTarget(ctx context.Context, serviceID uint) (*EvacuationStep, error)
}

// Heal holds self-healing's store activities; they run as local
// activities on the central worker.
type Heal struct {
	Records HealRecords
}

// BeginHealInput names an instance whose container exited. Key is unique
// to the pass and the instance, so a retried call returns the run it opened.
type BeginHealInput struct {
	Name       string `json:"name"`
	Host       string `json:"host"`
	WorkflowID string `json:"workflowId"`
	Key        string `json:"key"`
}

// BeginHeal opens a heal run for the instance, or says why not now.
func (h *Heal) BeginHeal(ctx context.Context, in BeginHealInput) (*berth.HealStart, error) {
	out, err := h.Records.BeginHeal(ctx, in.Name, in.Host, in.WorkflowID, in.Key)
	return out, storeErr(err)
}

// HealRunStarted records that the heal run's workflow started.
func (h *Heal) HealRunStarted(ctx context.Context, in RunStartedInput) error {
	return storeErr(h.Records.SetRunStarted(ctx, in.RunID, in.TemporalRunID))
}

// ReplaceTarget reads what replacing a live instance whose container is
// gone needs: its service as a release reads it, and the instance.
func (h *Heal) ReplaceTarget(ctx context.Context, name string) (*EvacuationStep, error) {
	out, err := h.Records.ReplaceTarget(ctx, name)
	return out, storeErr(err)
}

// WatchedHosts lists the hosts a pass probes: the ready ones, and the down
// ones that may answer again.
func (h *Heal) WatchedHosts(ctx context.Context) ([]berth.HostRef, error) {
	out, err := h.Records.WatchedHosts(ctx)
	return out, storeErr(err)
}

// ProbeInput is whether a host's engine answered a pass; DownAfter failures
// in a row mark a ready host down.
type ProbeInput struct {
	HostID    uint   `json:"hostId"`
	OK        bool   `json:"ok"`
	Error     string `json:"error,omitempty"`
	DownAfter int    `json:"downAfter"`
}

// RecordProbe counts a host's unanswered probes and marks it down at DownAfter.
func (h *Heal) RecordProbe(ctx context.Context, in ProbeInput) (*berth.HostProbe, error) {
	out, err := h.Records.RecordProbe(ctx, in.HostID, in.OK, in.Error, in.DownAfter)
	return out, storeErr(err)
}

// HostRunInput opens a run of self-healing's on a host, under the host's
// lock; Key is unique to the pass, the host and the kind.
type HostRunInput struct {
	HostID     uint          `json:"hostId"`
	Kind       berth.RunKind `json:"kind"`
	WorkflowID string        `json:"workflowId"`
	LockKey    string        `json:"lockKey"`
	Key        string        `json:"key"`
}

// BeginHostRun opens a host recovery or check, or says the host is busy.
func (h *Heal) BeginHostRun(ctx context.Context, in HostRunInput) (*berth.HealStart, error) {
	out, err := h.Records.BeginHostRun(ctx, in.HostID, in.Kind, in.WorkflowID, in.LockKey, in.Key)
	return out, storeErr(err)
}

// LostInstances lists the instances lost with a host whose containers may
// still be on it.
func (h *Heal) LostInstances(ctx context.Context, hostID uint) ([]berth.PlannedInstance, error) {
	out, err := h.Records.LostInstances(ctx, hostID)
	return out, storeErr(err)
}

// CloseLost closes lost instances whose containers are gone, freeing their ports.
func (h *Heal) CloseLost(ctx context.Context, names []string) error {
	return storeErr(h.Records.CloseLost(ctx, names))
}

// ShortServices lists the running services with fewer live instances than
// their replicas.
func (h *Heal) ShortServices(ctx context.Context) ([]berth.ShortService, error) {
	out, err := h.Records.ShortServices(ctx)
	return out, storeErr(err)
}

// BeginServiceHealInput names a short service; Key is unique to the pass
// and the service.
type BeginServiceHealInput struct {
	ServiceID  uint   `json:"serviceId"`
	WorkflowID string `json:"workflowId"`
	Key        string `json:"key"`
}

// BeginServiceHeal opens a heal run that tops a service up, or says why not now.
func (h *Heal) BeginServiceHeal(ctx context.Context, in BeginServiceHealInput) (*berth.HealStart, error) {
	out, err := h.Records.BeginServiceHeal(ctx, in.ServiceID, in.WorkflowID, in.Key)
	return out, storeErr(err)
}

// TopUpTarget reads what scaling a service back to its replicas needs.
func (h *Heal) TopUpTarget(ctx context.Context, serviceID uint) (*EvacuationStep, error) {
	out, err := h.Records.TopUpTarget(ctx, serviceID)
	return out, storeErr(err)
}
