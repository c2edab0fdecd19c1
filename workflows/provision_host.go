package workflows

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
)

// ProvisionHostName is the registered name of ProvisionHost.
const ProvisionHostName = "ProvisionHost"

// ProvisionHostInput names the host to check.
type ProvisionHostInput struct {
	RunID uint          `json:"runId"`
	Host  berth.HostRef `json:"host"`
}

// ProvisionHostResult is what the engine said about itself.
type ProvisionHostResult struct {
	Facts berth.HostFacts `json:"facts"`
}

// ProvisionHostID is the workflow id of a host's check.
func ProvisionHostID(host string) string { return fmt.Sprintf("provision-host/%s", host) }

// ProvisionHost connects to the engine from a worker of the host's region,
// records its version, API version, CPUs and memory, makes sure the platform
// network exists, and marks the host ready, or down with the reason.
func ProvisionHost(ctx workflow.Context, in ProvisionHostInput) (*ProvisionHostResult, error) {
	ctx, r, err := newRun(ctx, in.RunID)
	if err != nil {
		return nil, err
	}
	var d *activities.Docker
	var facts berth.HostFacts
	err = r.step(ctx, "probe", func() error {
		actx := workflow.WithActivityOptions(ctx, withQueue(probeOptions, in.Host.Region))
		return workflow.ExecuteActivity(actx, d.ProbeHost, in.Host).Get(ctx, &facts)
	})
	if err != nil {
		if isCancel(ctx, err) {
			// A cancelled check says nothing about the host: leave its state.
			r.finish(ctx, activities.FinishInput{Status: berth.RunCancelled, Error: "cancelled"})
			return nil, err
		}
		msg := errorMessage(err)
		r.finish(ctx, activities.FinishInput{Status: berth.RunFailed, Error: msg, HostID: in.Host.ID,
			Host: &berth.HostFacts{State: berth.HostDown, Reason: msg}})
		return nil, err
	}
	r.status.Step = "done"
	r.finish(ctx, activities.FinishInput{Status: berth.RunSucceeded, HostID: in.Host.ID, Host: &berth.HostFacts{
		State: berth.HostReady, EngineVersion: facts.EngineVersion, APIVersion: facts.APIVersion,
		CPUs: facts.CPUs, MemoryBytes: facts.MemoryBytes}})
	return &ProvisionHostResult{Facts: facts}, nil
}
