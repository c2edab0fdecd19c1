package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/compose"
)

// A pass heals only an instance recorded as running whose own container
// exited, and old enough: not a running one, a stopped one, a stranger
// with the same name, or one younger than the grace. A spent backoff is a
// finding; an application another run holds is left alone.
func TestHealPassStartsHealRunsForExitedInstances(t *testing.T) {
	env := newTestEnv()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{TaskQueue: CentralTaskQueue})
	env.RegisterWorkflowWithOptions(HealInstance, workflow.RegisterOptions{Name: HealInstanceName})
	env.RegisterWorkflowWithOptions(ReleaseVersion, workflow.RegisterOptions{Name: ReleaseVersionName})
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
		{Instance: inst("gone-1", "u8"), State: berth.StateRunning, CreatedAt: long},  // its container was removed
		{Instance: inst("gone-new", "u9"), State: berth.StateRunning, CreatedAt: now}, // younger than the grace
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
	web := compose.ServiceSpec{Name: "web", Image: "reg.local/acme/web:3"}
	env.OnActivity(hl.ReplaceTarget, mock.Anything, "gone-1").Return(&activities.EvacuationStep{ApplicationID: 3, EnvironmentID: 2, ServiceID: 5,
		Tenant: "acme", Env: "dev", App: "shop", Service: web, Instances: []berth.PlannedInstance{records[7].Instance}}, nil)
	var replaced []ReleaseVersionInput
	env.OnWorkflow(ReleaseVersionName, mock.Anything, mock.Anything).Return(func(_ workflow.Context, in ReleaseVersionInput) (*ReleaseVersionResult, error) {
		replaced = append(replaced, in)
		return &ReleaseVersionResult{}, nil
	}).Maybe()
	recorded := recordedFindings(env)
	env.ExecuteWorkflow(HealPass, HealPassInput{Grace: 10 * time.Second, HealthTimeout: time.Minute, PortMin: 20000, PortMax: 20100})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []string{"exited-1", "looping-1", "locked-1", "gone-1"}, asked)
	require.Len(t, started, 2)
	require.Equal(t, uint(77), started[0].RunID)
	require.Len(t, replaced, 1, "a gone container is replaced by a release of its own version, for it alone")
	require.Equal(t, []berth.PlannedInstance{records[7].Instance}, replaced[0].Instances)
	require.Equal(t, web.Image, replaced[0].LastGoodImage)
	require.Zero(t, replaced[0].ReleaseID)
	require.Equal(t, 20000, replaced[0].PortMin)
	kinds := map[string]berth.FindingKind{}
	for _, f := range *recorded {
		kinds[f.Target] = f.Kind
		require.Empty(t, f.Error, f.Target)
	}
	require.Equal(t, map[string]berth.FindingKind{"exited-1": berth.FindingHealed, "looping-1": berth.FindingHealGaveUp, "gone-1": berth.FindingHealed}, kinds)
}

// With HostDownAfter, a pass probes every watched host. A ready host that
// answers is compared as before. One whose probe marks it down gets a
// recovery run (DrainHost with Lost) for its live instances. One that is
// down and answers again has its lost instances' containers removed and
// their records closed, and (holding no live instance) its relays removed,
// then a check run that marks it ready.
func TestHealPassRecoversAHostThatWentDown(t *testing.T) {
	env := newTestEnv()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{TaskQueue: CentralTaskQueue})
	env.RegisterWorkflowWithOptions(DrainHost, workflow.RegisterOptions{Name: DrainHostName})
	var rc *activities.Reconcile
	var hl *activities.Heal
	var d *activities.Docker
	dead := berth.HostRef{ID: 7, Name: "h7", Region: "eu", Endpoint: "tcp://10.0.0.7:2376", IP: "10.0.0.7"}
	back := berth.HostRef{ID: 8, Name: "h8", Region: "eu", Endpoint: "tcp://10.0.0.8:2376", IP: "10.0.0.8"}
	env.OnActivity(hl.WatchedHosts, mock.Anything).Return([]berth.HostRef{hostEU, dead, back}, nil)
	for _, h := range []berth.HostRef{hostEU, dead, back} {
		env.OnActivity(rc.HostRecords, mock.Anything, h.ID).Return([]berth.InstanceRecord{}, nil)
	}
	env.OnActivity(d.HostContainers, mock.Anything, hostEU).Return([]berth.HostContainer{}, nil)
	env.OnActivity(d.HostContainers, mock.Anything, back).Return([]berth.HostContainer{}, nil)
	env.OnActivity(d.HostContainers, mock.Anything, dead).Return(nil, temporal.NewNonRetryableApplicationError("connection refused", "engine", nil))
	probes := map[uint]activities.ProbeInput{}
	env.OnActivity(hl.RecordProbe, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ProbeInput) (*berth.HostProbe, error) {
		probes[in.HostID] = in
		switch in.HostID {
		case dead.ID:
			return &berth.HostProbe{State: berth.HostDown, Failures: 3, WentDown: true, Live: 2}, nil
		case back.ID:
			return &berth.HostProbe{State: berth.HostDown, Failures: 5}, nil
		}
		return &berth.HostProbe{State: berth.HostReady}, nil
	})
	lostOne := berth.PlannedInstance{Name: "acme-dev-shop-web-3", UID: "u3", Service: "web", Host: back}
	env.OnActivity(hl.LostInstances, mock.Anything, back.ID).Return([]berth.PlannedInstance{lostOne}, nil)
	var removed []activities.RemoveInstanceInput
	env.OnActivity(d.RemoveInstance, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.RemoveInstanceInput) error {
		removed = append(removed, in)
		return nil
	})
	env.OnActivity(d.RemoveHostRelays, mock.Anything, back).Return(2, nil)
	env.OnActivity(hl.ShortServices, mock.Anything).Return([]berth.ShortService{}, nil)
	var closed []string
	env.OnActivity(hl.CloseLost, mock.Anything, mock.Anything).Return(func(_ context.Context, names []string) error {
		closed = append(closed, names...)
		return nil
	})
	var opened []activities.HostRunInput
	env.OnActivity(hl.BeginHostRun, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.HostRunInput) (*berth.HealStart, error) {
		opened = append(opened, in)
		return &berth.HealStart{Verdict: berth.HealOpened, RunID: uint(90 + len(opened)), WorkflowID: in.WorkflowID}, nil
	})
	env.OnActivity(hl.HealRunStarted, mock.Anything, mock.Anything).Return(nil)
	var recovered []DrainHostInput
	env.OnWorkflow(DrainHostName, mock.Anything, mock.Anything).Return(func(_ workflow.Context, in DrainHostInput) (*DrainHostResult, error) {
		recovered = append(recovered, in)
		return &DrainHostResult{}, nil
	})
	var checked []ProvisionHostInput
	env.OnWorkflow(ProvisionHostName, mock.Anything, mock.Anything).Return(func(_ workflow.Context, in ProvisionHostInput) (*ProvisionHostResult, error) {
		checked = append(checked, in)
		return &ProvisionHostResult{}, nil
	})
	recorded := recordedFindings(env)
	env.ExecuteWorkflow(HealPass, HealPassInput{Grace: 10 * time.Second, HealthTimeout: time.Minute, PortMin: 20000, PortMax: 20100, HostDownAfter: 3})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())

	require.True(t, probes[hostEU.ID].OK)
	require.False(t, probes[dead.ID].OK)
	require.Contains(t, probes[dead.ID].Error, "connection refused")
	require.Equal(t, 3, probes[dead.ID].DownAfter)
	require.True(t, probes[back.ID].OK)

	require.Len(t, opened, 2)
	require.Equal(t, activities.HostRunInput{HostID: dead.ID, Kind: berth.KindRecoverHost, WorkflowID: RecoverHostID(dead.Name),
		LockKey: HostLockKey(dead.Name), Key: opened[0].Key}, opened[0])
	require.Equal(t, berth.KindProvisionHost, opened[1].Kind)
	require.Equal(t, ProvisionHostID(back.Name), opened[1].WorkflowID)
	require.Len(t, recovered, 1)
	require.True(t, recovered[0].Lost)
	require.Equal(t, dead, recovered[0].Host)
	require.Equal(t, uint(91), recovered[0].RunID)
	require.Equal(t, 20000, recovered[0].PortMin)
	require.Equal(t, []activities.RemoveInstanceInput{{Host: back, Name: lostOne.Name, UID: lostOne.UID}}, removed)
	require.Equal(t, []string{lostOne.Name}, closed)
	require.Equal(t, []ProvisionHostInput{{RunID: 92, Host: back}}, checked)
	kinds := map[string][]berth.FindingKind{}
	for _, f := range *recorded {
		require.Empty(t, f.Error, f.Target)
		kinds[f.Host] = append(kinds[f.Host], f.Kind)
	}
	require.Equal(t, map[string][]berth.FindingKind{
		dead.Name: {berth.FindingHostDown, berth.FindingHealed},
		back.Name: {berth.FindingLostRemoved, berth.FindingLostRemoved, berth.FindingHostBack},
	}, kinds)
}

// A container that runs but fails its health check gets a heal run that
// restarts it; a healthy one, or one younger than the grace, does not.
func TestHealPassRestartsAnUnhealthyInstance(t *testing.T) {
	env := newTestEnv()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{TaskQueue: CentralTaskQueue})
	env.RegisterWorkflowWithOptions(HealInstance, workflow.RegisterOptions{Name: HealInstanceName})
	var rc *activities.Reconcile
	var hl *activities.Heal
	var d *activities.Docker
	now := env.Now().UTC()
	inst := func(name, uid string) berth.PlannedInstance {
		return berth.PlannedInstance{Name: name, UID: uid, Service: "web", Host: hostEU}
	}
	records := []berth.InstanceRecord{
		{Instance: inst("sick-1", "u1"), State: berth.StateRunning, CreatedAt: now.Add(-time.Hour)},
		{Instance: inst("well-1", "u2"), State: berth.StateRunning, CreatedAt: now.Add(-time.Hour)},
		{Instance: inst("sick-new", "u3"), State: berth.StateRunning, CreatedAt: now},
	}
	env.OnActivity(rc.ReconcileHosts, mock.Anything).Return([]berth.HostRef{hostEU}, nil)
	env.OnActivity(rc.HostRecords, mock.Anything, hostEU.ID).Return(records, nil)
	env.OnActivity(d.HostContainers, mock.Anything, hostEU).Return([]berth.HostContainer{
		{Name: "sick-1", UID: "u1", Running: true, Unhealthy: true}, {Name: "well-1", UID: "u2", Running: true},
		{Name: "sick-new", UID: "u3", Running: true, Unhealthy: true}}, nil)
	env.OnActivity(hl.BeginHeal, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.BeginHealInput) (*berth.HealStart, error) {
		return &berth.HealStart{Verdict: berth.HealOpened, RunID: 5, WorkflowID: in.WorkflowID, ApplicationID: 3, App: "acme/dev/shop"}, nil
	})
	env.OnActivity(hl.HealRunStarted, mock.Anything, mock.Anything).Return(nil)
	var healed []HealInstanceInput
	env.OnWorkflow(HealInstanceName, mock.Anything, mock.Anything).Return(func(_ workflow.Context, in HealInstanceInput) error {
		healed = append(healed, in)
		return nil
	})
	recorded := recordedFindings(env)
	env.ExecuteWorkflow(HealPass, HealPassInput{Grace: 10 * time.Second, HealthTimeout: time.Minute})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Len(t, healed, 1)
	require.Equal(t, "sick-1", healed[0].Instance.Name)
	require.True(t, healed[0].Restart)
	require.Len(t, *recorded, 1)
	require.Contains(t, (*recorded)[0].Detail, "fails its health check")
}

// A running service with fewer live instances than its replicas gets a
// heal run that scales it back out from what lives to its replicas; one
// whose application is busy waits; one that keeps coming back short is
// left for a person.
func TestHealPassTopsUpAShortService(t *testing.T) {
	env := newTestEnv()
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{TaskQueue: CentralTaskQueue})
	var hl *activities.Heal
	env.OnActivity(hl.WatchedHosts, mock.Anything).Return([]berth.HostRef{}, nil)
	env.OnActivity(hl.ShortServices, mock.Anything).Return([]berth.ShortService{{ServiceID: 5, Live: 1, Replicas: 3},
		{ServiceID: 6, Live: 0, Replicas: 1}, {ServiceID: 7, Live: 1, Replicas: 2}}, nil)
	env.OnActivity(hl.BeginServiceHeal, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.BeginServiceHealInput) (*berth.HealStart, error) {
		require.Equal(t, TopUpID(in.ServiceID), in.WorkflowID)
		switch in.ServiceID {
		case 6:
			return &berth.HealStart{Verdict: berth.HealBusy}, nil
		case 7:
			return &berth.HealStart{Verdict: berth.HealGaveUp, Tries: berth.MaxHeals, Subject: "acme/dev/shop/worker"}, nil
		}
		return &berth.HealStart{Verdict: berth.HealOpened, RunID: 41, WorkflowID: in.WorkflowID, ApplicationID: 3, Subject: "acme/dev/shop/web"}, nil
	})
	web := compose.ServiceSpec{Name: "web", Image: "reg.local/acme/web:3"}
	live := berth.PlannedInstance{Name: "acme-dev-shop-web-1", Service: "web", Host: hostEU}
	env.OnActivity(hl.TopUpTarget, mock.Anything, uint(5)).Return(&activities.EvacuationStep{ApplicationID: 3, EnvironmentID: 2, ServiceID: 5,
		Tenant: "acme", Env: "dev", App: "shop", Service: web, Instances: []berth.PlannedInstance{live}}, nil)
	env.OnActivity(hl.HealRunStarted, mock.Anything, mock.Anything).Return(nil)
	var scaled []ScaleServiceInput
	env.OnWorkflow(ScaleServiceName, mock.Anything, mock.Anything).Return(func(_ workflow.Context, in ScaleServiceInput) (*ScaleServiceResult, error) {
		scaled = append(scaled, in)
		return &ScaleServiceResult{}, nil
	})
	recorded := recordedFindings(env)
	env.ExecuteWorkflow(HealPass, HealPassInput{Grace: 10 * time.Second, HealthTimeout: time.Minute, PortMin: 20000, PortMax: 20100, HostDownAfter: 3})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Len(t, scaled, 1)
	require.Equal(t, ScaleServiceInput{RunID: 41, ApplicationID: 3, EnvironmentID: 2, ServiceID: 5, Tenant: "acme", Env: "dev", App: "shop",
		Service: web, From: 1, To: 3, PortMin: 20000, PortMax: 20100, HealthTimeout: time.Minute}, scaled[0])
	require.Len(t, *recorded, 2)
	require.Equal(t, berth.FindingHealed, (*recorded)[0].Kind)
	require.Contains(t, (*recorded)[0].Detail, "1 live instance(s) of 3")
	require.Equal(t, berth.FindingHealGaveUp, (*recorded)[1].Kind)
}

// recordedFindings keeps what a pass records as its findings.
func recordedFindings(env *testsuite.TestWorkflowEnvironment) *[]berth.Finding {
	var rc *activities.Reconcile
	var out []berth.Finding
	env.OnActivity(rc.RecordFindings, mock.Anything, mock.Anything).Return(func(_ context.Context, fs []berth.Finding) error {
		out = fs
		return nil
	})
	return &out
}
