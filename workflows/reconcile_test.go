package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/firewall"
)

// The reconciler removes only what no live run may still claim: a
// container of an ended run no record holds, and an instance an ended run
// planned; it spares leftovers of open runs and anything younger than the
// grace, reports a running instance without a container, and releases
// ports only of containers it removed. Then it prunes the host's built
// images that no kept release names.
func TestReconcileRepairsOnlyWhatDeadRunsLeft(t *testing.T) {
	env := newTestEnv()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{TaskQueue: CentralTaskQueue})
	var rc *activities.Reconcile
	var d *activities.Docker
	var st *activities.Store
	now := env.Now().UTC()
	long := now.Add(-time.Hour)
	inst := func(name, uid string) berth.PlannedInstance {
		return berth.PlannedInstance{Name: name, UID: uid, Host: hostEU}
	}
	records := []berth.InstanceRecord{
		{Instance: inst("live-1", "u1"), State: berth.StateRunning, RunID: 1, CreatedAt: long},
		{Instance: inst("dead-plan-1", "u2"), State: berth.StatePlanned, RunID: 2, CreatedAt: long}, // container exists
		{Instance: inst("dead-plan-2", "u3"), State: berth.StatePlanned, RunID: 2, CreatedAt: long}, // never created
		{Instance: inst("open-plan-1", "u4"), State: berth.StatePlanned, RunID: 3, CreatedAt: long}, // its run is open
		{Instance: inst("gone-1", "u5"), State: berth.StateRunning, RunID: 1, CreatedAt: long},      // container vanished
		{Instance: inst("fresh-plan-1", "u6"), State: berth.StatePlanned, RunID: 4, CreatedAt: now}, // younger than grace
	}
	containers := []berth.HostContainer{
		{Name: "live-1", UID: "u1", RunID: 1, Created: long},
		{Name: "dead-plan-1", UID: "u2", RunID: 2, Created: long},
		{Name: "open-plan-1", UID: "u4", RunID: 3, Created: long},
		{Name: "orphan-1", UID: "u7", RunID: 5, Created: long},
		{Name: "orphan-open", UID: "u8", RunID: 3, Created: long},
		{Name: "orphan-fresh", UID: "u9", RunID: 6, Created: now},
		{Name: "other-record-1", UID: "u10", RunID: 5, Created: long, Host: "h1-twin"}, // another host record on this engine placed it
		{Name: "fresh-plan-1", UID: "u6", RunID: 4, Created: now},
	}
	env.OnActivity(rc.SweepRuns, mock.Anything, mock.Anything).Return([]berth.Finding{{Kind: berth.FindingRunClosed, Target: "run 2"}}, nil)
	env.OnActivity(rc.ResendDecisions, mock.Anything, activities.ResendDecisionsInput{Grace: 10 * time.Minute, Signal: ApprovalSignal}).
		Return([]berth.Finding{{Kind: berth.FindingDecisionResent, Target: "run 9"}}, nil)
	env.OnActivity(rc.ReconcileHosts, mock.Anything).Return([]berth.HostRef{hostEU}, nil)
	env.OnActivity(rc.OpenRunIDs, mock.Anything).Return([]uint{3}, nil)
	env.OnActivity(rc.HostRecords, mock.Anything, hostEU.ID).Return(records, nil)
	env.OnActivity(d.HostContainers, mock.Anything, hostEU).Return(containers, nil)
	var removed []string
	env.OnActivity(d.RemoveInstance, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.RemoveInstanceInput) error {
		removed = append(removed, in.Name)
		return nil
	})
	var released []string
	env.OnActivity(st.ReleaseInstances, mock.Anything, mock.Anything).Return(func(_ context.Context, names []string) error {
		released = append(released, names...)
		return nil
	})
	keep := []string{"reg/acme/shop-web:2"}
	env.OnActivity(rc.KeptImages, mock.Anything).Return(keep, nil)
	env.OnActivity(d.PruneImages, mock.Anything, mock.MatchedBy(func(in activities.PruneImagesInput) bool {
		return in.Host == hostEU && in.Grace == 10*time.Minute && len(in.Keep) == 1 && in.Keep[0] == keep[0]
	})).Return([]string{"reg/acme/shop-web:1"}, nil)
	var fw *activities.Firewall
	want := activities.FirewallRepairInput{Want: []firewall.Opening{{ID: "live-1/8080-tcp", Protocol: "tcp", DestIP: "10.0.0.1", DestPort: 31000}},
		Keep: []string{"live-1/8080-tcp", "open-plan-1/8080-tcp"}}
	env.OnActivity(rc.FirewallRecords, mock.Anything).Return([]activities.FirewallPlan{
		{Region: "eu", Input: want}, {Region: "us", Input: activities.FirewallRepairInput{Keep: want.Keep}}}, nil)
	env.OnActivity(fw.Repair, mock.Anything, want).Return(activities.FirewallRepair{Reopened: []string{"live-1/8080-tcp"}, Closed: []string{"gone-2/8080-tcp"}}, nil)
	env.OnActivity(fw.Repair, mock.Anything, activities.FirewallRepairInput{Keep: want.Keep}).
		Return(activities.FirewallRepair{}, temporal.NewNonRetryableApplicationError("netlink: operation not permitted", "", nil))
	var recorded []berth.Finding
	env.OnActivity(rc.RecordFindings, mock.Anything, mock.Anything).Return(func(_ context.Context, fs []berth.Finding) error {
		recorded = fs
		return nil
	})

	env.ExecuteWorkflow(Reconcile, ReconcileInput{Grace: 10 * time.Minute})

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res ReconcileResult
	require.NoError(t, env.GetWorkflowResult(&res))
	kinds := map[string]berth.FindingKind{}
	for _, f := range res.Findings {
		kinds[f.Target] = f.Kind
	}
	require.Equal(t, map[string]berth.FindingKind{"run 2": berth.FindingRunClosed, "run 9": berth.FindingDecisionResent, "dead-plan-1": berth.FindingAbandoned,
		"dead-plan-2": berth.FindingAbandoned, "orphan-1": berth.FindingOrphan, "gone-1": berth.FindingMissing,
		"reg/acme/shop-web:1": berth.FindingImagePruned, "live-1/8080-tcp": berth.FindingFirewallRepaired,
		"gone-2/8080-tcp": berth.FindingFirewallRepaired, "region us": berth.FindingFirewallRepaired}, kinds)
	for _, f := range res.Findings {
		if f.Target == "region us" {
			require.Contains(t, f.Error, "operation not permitted", "a region whose firewall cannot be read says why")
		}
	}
	require.ElementsMatch(t, []string{"dead-plan-1", "orphan-1"}, removed)
	require.ElementsMatch(t, []string{"dead-plan-1", "dead-plan-2"}, released)
	require.Equal(t, res.Findings, recorded, "every finding is audited")
}
