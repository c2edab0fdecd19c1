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
