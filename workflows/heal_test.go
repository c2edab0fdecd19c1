package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
)

// A pass heals only an instance recorded as running whose own container
// exited, and old enough: not a running one, a stopped one, a stranger
// with the same name, or one younger than the grace. A spent backoff is a
// finding; an application another run holds is left alone.
func TestHealPassStartsHealRunsForExitedInstances(t *testing.T) {
	env := newTestEnv()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{TaskQueue: CentralTaskQueue})
	env.RegisterWorkflowWithOptions(HealInstance, workflow.RegisterOptions{Name: HealInstanceName})
	var rc *activities.Reconcile
	var hl *activities.Heal
	var d *activities.Docker
	now := env.Now().UTC()
	long := now.Add(-time.Hour)
	inst := func(name, uid string) berth.PlannedInstance {
		return berth.PlannedInstance{Name: name, UID: uid, Service: "web", Host: hostEU}
	}
	records := []berth.InstanceRecord{
		{Instance: inst("exited-1", "u1"), State: berth.StateRunning, CreatedAt: long},
		{Instance: inst("up-1", "u2"), State: berth.StateRunning, CreatedAt: long},
		{Instance: inst("stopped-1", "u3"), State: berth.StateStopped, CreatedAt: long},
		{Instance: inst("stranger-1", "u4"), State: berth.StateRunning, CreatedAt: long},
		{Instance: inst("young-1", "u5"), State: berth.StateRunning, CreatedAt: now},
		{Instance: inst("looping-1", "u6"), State: berth.StateRunning, CreatedAt: long},
		{Instance: inst("locked-1", "u7"), State: berth.StateRunning, CreatedAt: long},
	}
	containers := []berth.HostContainer{
		{Name: "exited-1", UID: "u1"}, {Name: "up-1", UID: "u2", Running: true}, {Name: "stopped-1", UID: "u3"},
		{Name: "stranger-1", UID: "other"}, {Name: "young-1", UID: "u5"}, {Name: "looping-1", UID: "u6"}, {Name: "locked-1", UID: "u7"},
	}
	env.OnActivity(rc.ReconcileHosts, mock.Anything).Return([]berth.HostRef{hostEU}, nil)
	env.OnActivity(rc.HostRecords, mock.Anything, hostEU.ID).Return(records, nil)
	env.OnActivity(d.HostContainers, mock.Anything, hostEU).Return(containers, nil)
	var asked []string
	env.OnActivity(hl.BeginHeal, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.BeginHealInput) (*berth.HealStart, error) {
		asked = append(asked, in.Name)
		require.Equal(t, HealInstanceID(in.Name), in.WorkflowID)
		switch in.Name {
		case "looping-1":
			return &berth.HealStart{Verdict: berth.HealGaveUp, Tries: berth.MaxHeals}, nil
		case "locked-1":
			return &berth.HealStart{Verdict: berth.HealBusy}, nil
		}
		return &berth.HealStart{Verdict: berth.HealOpened, RunID: 77, WorkflowID: in.WorkflowID, ApplicationID: 3, App: "acme/dev/shop"}, nil
	})
	var started []activities.RunStartedInput
	env.OnActivity(hl.HealRunStarted, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.RunStartedInput) error {
		started = append(started, in)
		return nil
	})
	var healed []HealInstanceInput
	env.OnWorkflow(HealInstanceName, mock.Anything, mock.Anything).Return(func(_ workflow.Context, in HealInstanceInput) error {
		healed = append(healed, in)
		return nil
	}).Maybe()
	var findings []berth.Finding
	env.OnActivity(rc.RecordFindings, mock.Anything, mock.Anything).Return(func(_ context.Context, fs []berth.Finding) error {
		findings = fs
		return nil
	})
	env.ExecuteWorkflow(HealPass, HealPassInput{Grace: 10 * time.Second, HealthTimeout: time.Minute})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []string{"exited-1", "looping-1", "locked-1"}, asked)
	require.Len(t, started, 1)
	require.Equal(t, uint(77), started[0].RunID)
	kinds := map[string]berth.FindingKind{}
	for _, f := range findings {
		kinds[f.Target] = f.Kind
		require.Empty(t, f.Error, f.Target)
	}
	require.Equal(t, map[string]berth.FindingKind{"exited-1": berth.FindingHealed, "looping-1": berth.FindingHealGaveUp}, kinds)
}
