package workflows

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/compose"
	"github.com/berth-dev/berth/lb"
)

const (
	relNewImage  = "reg.local/api:2"
	relGoodImage = "reg.local/api:1"
	relNewSHA    = "sha-new"
	relGoodSHA   = "sha-good"
)

// releaseInput rolls api's four live instances (api-1..4, alternating eu and
// us) to api:2 in batches of two.
func releaseInput() ReleaseVersionInput {
	svc := compose.ServiceSpec{Name: "api", Image: relNewImage, Replicas: 4,
		Ports:  []compose.PortSpec{{ContainerPort: 8080, Protocol: "tcp"}},
		Health: &compose.HealthSpec{HTTPPath: "/healthz"}}
	return ReleaseVersionInput{RunID: 31, ReleaseID: 8, ApplicationID: 3, EnvironmentID: 2, ServiceID: 5,
		Tenant: "acme", Env: "prod", App: "shop", Service: svc, LastGoodImage: relGoodImage,
		Instances: relInstances(1, 4), BatchSize: 2, PortMin: 20000, PortMax: 20100,
		HealthTimeout: time.Minute, DrainTimeout: 5 * time.Minute,
		LB: berth.LBSettings{Enabled: true, ListenIP: "10.9.0.1", PortMin: 30000, PortMax: 30100, Weight: 100, Firewall: "nftables"}}
}

func fileReleaseInput() ReleaseVersionInput {
	in := releaseInput()
	in.Kind, in.PackageSHA256, in.LastGoodPackage = berth.ReleaseFile, relNewSHA, relGoodSHA
	in.Service.Image = relGoodImage // a file release keeps the image
	return in
}

// relInstances are api-first..api-(first+n-1); odd ordinals on h1 (eu), even on h2 (us).
func relInstances(first, n int) []berth.PlannedInstance {
	out := make([]berth.PlannedInstance, 0, n)
	for ord := first; ord < first+n; ord++ {
		h := hostEU
		if ord%2 == 0 {
			h = hostUS
		}
		out = append(out, apiInstance(ord, h, 20000+ord))
	}
	return out
}

func apiName(ord int) string { return fmt.Sprintf("acme-prod-shop-api-%d", ord) }

func apiNames(ords ...int) []string {
	out := make([]string, 0, len(ords))
	for _, o := range ords {
		out = append(out, apiName(o))
	}
	return out
}

func instNames(insts []berth.PlannedInstance) []string {
	out := []string{}
	for _, pi := range insts {
		out = append(out, pi.Name)
	}
	return out
}

// freshFor is what PlanDeploy plans for a key: batch N of r instances gets
// api-(5+(N-1)r) onwards, the rollback api-9 onwards.
func freshFor(req berth.PlanRequest) berth.Plan {
	n := req.Services[0].Replicas
	var b int
	if _, err := fmt.Sscanf(req.Key[strings.Index(req.Key, "/")+1:], "batch-%d", &b); err == nil {
		return berth.Plan{Instances: relInstances(5+(b-1)*n, n)}
	}
	return berth.Plan{Instances: relInstances(9, n)}
}

// installCall is one InstallPackage attempt.
type installCall struct {
	Queue string
	In    activities.InstallPackageInput
}

type releaseFake struct {
	mu       sync.Mutex
	installs []installCall
}

func (f *releaseFake) installed() []installCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]installCall(nil), f.installs...)
}

// releaseFaults decide the host activities' outcomes; nil means success.
type releaseFaults struct {
	start   func(activity.Info, activities.StartInstanceInput) error
	install func(activities.InstallPackageInput) error
}

// newReleaseEnv is newExposeEnv with ReleaseVersion registered and the
// approval records mocked as in approval_test.go (approval id 42). Tests
// register their specific expectations, then call mockRelease.
func newReleaseEnv(t *testing.T) (*testsuite.TestWorkflowEnvironment, *exposeRecorder, *releaseFake) {
	t.Helper()
	env, rec := newExposeEnv(t)
	env.RegisterWorkflowWithOptions(ReleaseVersion, workflow.RegisterOptions{Name: ReleaseVersionName})
	env.OnActivity(st.CreateApproval, mock.Anything, mock.Anything).Return(func(_ context.Context, a berth.Approval) (*berth.Approval, error) {
		a.ID, a.State = 42, berth.ApprovalPending
		return &a, nil
	}).Maybe()
	env.OnActivity(st.ExpireApproval, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ExpireInput) (*berth.Approval, error) {
		return &berth.Approval{ID: in.ApprovalID, State: berth.ApprovalTimedOut}, nil
	}).Maybe()
	env.OnActivity(st.CancelApproval, mock.Anything, mock.Anything).Return(nil).Maybe()
	return env, rec, &releaseFake{}
}

// mockRelease mocks the store, host and exposure activities of a release.
// Exposure plans follow their input: one eu pool with the given instances.
func mockRelease(env *testsuite.TestWorkflowEnvironment, fake *releaseFake, f releaseFaults) {
	if fake == nil {
		fake = &releaseFake{}
	}
	env.OnActivity(st.ReadyHosts, mock.Anything, mock.Anything).Return([]berth.HostRef{hostEU, hostUS}, nil).Maybe()
	env.OnActivity(st.FinishRelease, mock.Anything, mock.Anything).Return(nil).Maybe()
	env.OnActivity(st.RecordReleaseOutputs, mock.Anything, mock.Anything).Return(nil).Maybe()
	env.OnActivity(st.PlanDeploy, mock.Anything, mock.Anything).Return(func(_ context.Context, req berth.PlanRequest) (*berth.Plan, error) {
		p := freshFor(req)
		return &p, nil
	}).Maybe()
	env.OnActivity(dk.EnsureImage, mock.Anything, mock.Anything).Return(nil).Maybe()
	env.OnActivity(dk.StartInstance, mock.Anything, mock.Anything).Return(startResult(f.start)).Maybe()
	env.OnActivity(dk.RemoveInstance, mock.Anything, mock.Anything).Return(nil).Maybe()
	env.OnActivity(dk.InstallPackage, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.InstallPackageInput) error {
		fake.mu.Lock()
		fake.installs = append(fake.installs, installCall{Queue: activity.GetInfo(ctx).TaskQueue, In: in})
		fake.mu.Unlock()
		if f.install != nil {
			return f.install(in)
		}
		return nil
	}).Maybe()
	env.OnActivity(st.PlanExpose, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ExposeInput) (*activities.ExposePlan, error) {
		p := exposePlanFor(in.Subject, "api", in.LB.Weight, in.Instances)
		return &p, nil
	}).Maybe()
	env.OnActivity(st.PlanUnexpose, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.UnexposeInput) (*activities.UnexposePlan, error) {
		p := unexposePlanFor(in.Subject, "api", "eu", false, in.Instances)
		return &p, nil
	}).Maybe()
	mockExpose(env, exposeFaults{})
}

// lbStates lists each SetServers call as "<state> <names>".
func lbStates(rec *exposeRecorder) []string {
	var out []string
	for _, c := range rec.callsOf("SetServers") {
		in := c.Arg.(activities.ServersInput)
		var names []string
		state := ""
		for _, s := range in.Servers {
			names = append(names, s.Name)
			if state != "" && state != s.State {
				state = "mixed"
			} else {
				state = s.State
			}
		}
		out = append(out, state+" "+strings.Join(names, ","))
	}
	return out
}

func lbState(state string, ords ...int) string {
	return state + " " + strings.Join(apiNames(ords...), ",")
}

func plannedKeys(rec *exposeRecorder) []string {
	var out []string
	for _, c := range rec.callsOf("PlanDeploy") {
		out = append(out, c.Arg.(berth.PlanRequest).Key)
	}
	return out
}

// removals lists RemoveInstance attempts as "<name> graceful|forced".
func removals(rec *exposeRecorder) []string {
	var out []string
	for _, s := range rec.of("RemoveInstance") {
		mode := "forced"
		if s.Remove.Graceful {
			mode = "graceful"
		}
		out = append(out, s.Remove.Name+" "+mode)
	}
	return out
}

func startedNames(rec *exposeRecorder) []string {
	var out []string
	for _, s := range rec.of("StartInstance") {
		out = append(out, s.Start.Instance.Name)
	}
	return out
}

func onlyFinishRelease(t *testing.T, rec *exposeRecorder) activities.FinishReleaseInput {
	t.Helper()
	calls := rec.callsOf("FinishRelease")
	require.Len(t, calls, 1, "a release's outcome is recorded exactly once")
	return calls[0].Arg.(activities.FinishReleaseInput)
}

func unhealthy(ords ...int) func(activity.Info, activities.StartInstanceInput) error {
	bad := map[string]bool{}
	for _, n := range apiNames(ords...) {
		bad[n] = true
	}
	return func(_ activity.Info, in activities.StartInstanceInput) error {
		if bad[in.Instance.Name] {
			return temporal.NewNonRetryableApplicationError("instance "+in.Instance.Name+" is unhealthy", string(berth.EUnhealthy), nil)
		}
		return nil
	}
}

func startsOf(ords ...int) any {
	want := map[string]bool{}
	for _, n := range apiNames(ords...) {
		want[n] = true
	}
	return mock.MatchedBy(func(in activities.StartInstanceInput) bool { return want[in.Instance.Name] })
}

// ---- image release ----

func TestReleaseVersionRollsOutInBatches(t *testing.T) {
	env, rec, _ := newReleaseEnv(t)
	in := releaseInput()
	mockRelease(env, nil, releaseFaults{})

	env.ExecuteWorkflow(ReleaseVersionName, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res ReleaseVersionResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, ReleaseVersionResult{Instances: apiNames(5, 6, 7, 8), Outcome: berth.ReleaseSucceeded}, res)

	// Prefetch: the image goes to every ready host, in its region, first.
	hosts := rec.callsOf("ReadyHosts")
	require.Len(t, hosts, 1)
	require.Equal(t, uint(2), hosts[0].Arg)
	var pulls []string
	for _, s := range rec.of("EnsureImage") {
		require.Equal(t, RegionTaskQueue(s.Image.Host.Region), s.Queue)
		pulls = append(pulls, s.Image.Host.Name+" "+s.Image.Image)
	}
	require.ElementsMatch(t, []string{"h1 " + relNewImage, "h2 " + relNewImage}, pulls)
	require.Less(t, rec.lastIndex("EnsureImage"), rec.index("PlanDeploy"), "prefetch before any instance is touched")

	// Each batch plans its new instances beside the live ones, under a key a retry finds.
	plans := rec.callsOf("PlanDeploy")
	require.Len(t, plans, 2)
	for i, p := range plans {
		// A batch replaces as many as it adds: a surge, outside quotas,
		// naming the instances it replaces so it fills their regions.
		require.Equal(t, berth.PlanRequest{RunID: 31, ApplicationID: 3, EnvironmentID: 2, Key: fmt.Sprintf("31/batch-%d", i+1),
			NamePrefix: "acme-prod-shop", PortMin: 20000, PortMax: 20100, Surge: true, Replaces: apiNames(2*i+1, 2*i+2),
			Services: []berth.ServiceRequest{{Name: "api", Image: relNewImage, Replicas: 2, Add: true,
				Ports: []berth.PortRequest{{ContainerPort: 8080, Protocol: "tcp"}}, Resources: berth.Resources{LogBytes: berth.DefaultLogBytes}}}}, p.Arg)
	}

	// Only the new instances start, each on its region's queue.
	starts := startedNames(rec)
	require.Len(t, starts, 4)
	require.ElementsMatch(t, apiNames(5, 6), starts[:2], "batch 2 starts after batch 1")
	require.ElementsMatch(t, apiNames(7, 8), starts[2:])
	for _, s := range rec.of("StartInstance") {
		require.Equal(t, RegionTaskQueue(s.Start.Instance.Host.Region), s.Queue)
		require.Equal(t, in.Service, s.Start.Service)
		require.Equal(t, time.Minute, s.Start.HealthTimeout)
		require.Equal(t, map[string]string{"berth.tenant": "acme", "berth.env": "prod", "berth.app": "shop", "berth.run": "31"}, s.Start.Labels)
	}
	require.Equal(t, [][]string{apiNames(5, 6), apiNames(7, 8)}, rec.recorded)

	// New instances join the pool.
	exposes := rec.callsOf("PlanExpose")
	require.Len(t, exposes, 2)
	for i, c := range exposes {
		require.Equal(t, activities.ExposeInput{RunID: 31, ApplicationID: 3, Subject: "acme/prod/shop",
			Services: []activities.ExposeService{{Name: "api", HealthPath: "/healthz"}}, Instances: relInstances(5+2*i, 2), LB: in.LB}, c.Arg)
	}
	require.Len(t, rec.callsOf("EnsurePool"), 2)
	adds := rec.callsOf("AddServers")
	require.Len(t, adds, 2)
	require.Equal(t, activities.ServersInput{Backend: "acme-prod-shop-api", Servers: []lb.Server{
		server(relInstances(5, 1)[0], 100), server(relInstances(6, 1)[0], 100)}}, adds[0].Arg)

	// The old batch drains, leaves the pool and is stopped gracefully.
	require.Equal(t, []string{lbState(lb.StateDrain, 1, 2), lbState(lb.StateDrain, 3, 4)}, lbStates(rec))
	waits := rec.callsOf("WaitDrained")
	require.Len(t, waits, 2)
	require.Equal(t, activities.WaitDrainedInput{Backend: "acme-prod-shop-api", Names: apiNames(1, 2), Timeout: 5 * time.Minute}, waits[0].Arg)
	require.Equal(t, activities.WaitDrainedInput{Backend: "acme-prod-shop-api", Names: apiNames(3, 4), Timeout: 5 * time.Minute}, waits[1].Arg)
	removes := rec.callsOf("RemoveServers")
	require.Len(t, removes, 2)
	require.Equal(t, activities.RemoveServersInput{Backend: "acme-prod-shop-api", Names: apiNames(1, 2)}, removes[0].Arg)
	require.Equal(t, activities.RemoveServersInput{Backend: "acme-prod-shop-api", Names: apiNames(3, 4)}, removes[1].Arg)
	dones := rec.callsOf("UnexposeDone")
	require.Len(t, dones, 2)
	require.Equal(t, activities.UnexposeInput{ApplicationID: 3, Subject: "acme/prod/shop", Instances: relInstances(1, 2), RunID: 31}, dones[0].Arg)
	require.Equal(t, activities.UnexposeInput{ApplicationID: 3, Subject: "acme/prod/shop", Instances: relInstances(3, 2), RunID: 31}, dones[1].Arg)
	require.ElementsMatch(t, []string{apiName(1) + " graceful", apiName(2) + " graceful", apiName(3) + " graceful", apiName(4) + " graceful"}, removals(rec))
	for _, s := range rec.of("RemoveInstance") {
		require.Equal(t, RegionTaskQueue(s.Remove.Host.Region), s.Queue)
		require.Equal(t, "uid-"+s.Remove.Name, s.Remove.UID)
	}
	require.Equal(t, [][]string{apiNames(2, 1), apiNames(4, 3)}, rec.releases())

	batch := []string{"PlanDeploy", "StartInstance", "StartInstance", "RecordInstances", "PlanExpose", "EnsurePool", "AddServers",
		"SetServers", "WaitDrained", "RemoveServers", "UnexposeDone", "RemoveInstance", "RemoveInstance", "ReleaseInstances"}
	want := append(append(append([]string{"ReadyHosts", "EnsureImage", "EnsureImage"}, batch...), batch...), "FinishRelease", "Finish")
	require.Equal(t, want, rec.sequence("ReadyHosts", "EnsureImage", "PlanDeploy", "StartInstance", "RecordInstances", "PlanExpose",
		"EnsurePool", "AddServers", "SetServers", "WaitDrained", "RemoveServers", "UnexposeDone", "RemoveInstance", "ReleaseInstances",
		"FinishRelease", "Finish"))
	require.Empty(t, rec.callsOf("InstallPackage"))

	require.Equal(t, activities.FinishReleaseInput{ReleaseID: 8, Outcome: berth.ReleaseSucceeded}, onlyFinishRelease(t, rec))
	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunSucceeded, fin.Status)
	require.Equal(t, uint(31), fin.RunID)
	require.Empty(t, fin.Error)

	exposeSteps := []string{"load balancer running", "load balancer done", "firewall running", "firewall done", "cmdb running", "cmdb done"}
	wantSteps := []string{"prefetch running", "prefetch done", "batch 1/2 running"}
	wantSteps = append(append(wantSteps, exposeSteps...), "batch 1/2 done", "batch 2/2 running")
	wantSteps = append(append(wantSteps, exposeSteps...), "batch 2/2 done")
	require.Equal(t, wantSteps, rec.stepLog())
	s := scaleStatus(t, env)
	require.Equal(t, "done", s.Step)
	require.Empty(t, s.Error)
	require.Subset(t, s.Done, []string{"prefetch", "batch 1/2", "batch 2/2"})
}

func TestReleaseVersionBatchSizeLeftoverMakesAShortLastBatch(t *testing.T) {
	env, rec, _ := newReleaseEnv(t)
	in := releaseInput()
	in.BatchSize = 3
	mockRelease(env, nil, releaseFaults{})

	env.ExecuteWorkflow(ReleaseVersionName, in)

	require.NoError(t, env.GetWorkflowError())
	var replicas []int
	for _, c := range rec.callsOf("PlanDeploy") {
		replicas = append(replicas, c.Arg.(berth.PlanRequest).Services[0].Replicas)
	}
	require.Equal(t, []int{3, 1}, replicas)
	require.Equal(t, []string{"31/batch-1", "31/batch-2"}, plannedKeys(rec))
	require.Contains(t, rec.stepLog(), "batch 2/2 done")
	require.Len(t, rec.of("RemoveInstance"), 4)
}

func TestReleaseVersionHealthGateFailureRollsBack(t *testing.T) {
	env, rec, _ := newReleaseEnv(t)
	in := releaseInput()
	mockRelease(env, nil, releaseFaults{start: unhealthy(7, 8)})
	msg := "instance " + apiName(7) + " is unhealthy"

	env.ExecuteWorkflow(ReleaseVersionName, in)

	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	require.Equal(t, "ReleaseFailed", appError(t, err).Type())
	require.ErrorContains(t, err, msg)
	reason := msg + "; rolled back to " + relGoodImage

	require.Equal(t, []string{"31/batch-1", "31/batch-2", "31/rollback"}, plannedKeys(rec))
	rb := rec.callsOf("PlanDeploy")[2].Arg.(berth.PlanRequest)
	require.Equal(t, []berth.ServiceRequest{{Name: "api", Image: relGoodImage, Replicas: 2, Add: true,
		Ports: []berth.PortRequest{{ContainerPort: 8080, Protocol: "tcp"}}, Resources: berth.Resources{LogBytes: berth.DefaultLogBytes}}}, rb.Services, "the released batch is replaced by as many last-good instances")

	require.ElementsMatch(t, apiNames(5, 6, 7, 8, 9, 10), startedNames(rec))
	for _, s := range rec.of("StartInstance") {
		image := relNewImage
		if s.Start.Instance.Ordinal >= 9 {
			image = relGoodImage
		}
		require.Equal(t, image, s.Start.Service.Image, s.Start.Instance.Name)
	}
	require.Equal(t, [][]string{apiNames(5, 6), apiNames(9, 10)}, rec.recorded)

	// Batch 2 is undone: its new instances leave the pool and go, its old
	// ones (never drained) are set ready again. Then batch 1's new instances
	// drain and give way to the last-good ones.
	require.ElementsMatch(t, []string{
		apiName(1) + " graceful", apiName(2) + " graceful",
		apiName(7) + " forced", apiName(8) + " forced",
		apiName(5) + " graceful", apiName(6) + " graceful",
	}, removals(rec))
	require.NotContains(t, strings.Join(removals(rec), " "), apiName(3)+" ")
	require.NotContains(t, strings.Join(removals(rec), " "), apiName(4)+" ")
	require.Equal(t, []string{lbState(lb.StateDrain, 1, 2), lbState(lb.StateReady, 3, 4), lbState(lb.StateDrain, 5, 6)}, lbStates(rec))
	var removed [][]string
	for _, c := range rec.callsOf("RemoveServers") {
		removed = append(removed, c.Arg.(activities.RemoveServersInput).Names)
	}
	require.Equal(t, [][]string{apiNames(1, 2), apiNames(7, 8), apiNames(5, 6)}, removed)
	require.Equal(t, [][]string{apiNames(2, 1), apiNames(8, 7), apiNames(6, 5)}, rec.releases())

	fr := onlyFinishRelease(t, rec)
	require.Equal(t, activities.FinishReleaseInput{ReleaseID: 8, Outcome: berth.ReleaseRolledBack, Reason: reason}, fr)
	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunFailed, fin.Status)
	require.Equal(t, reason, fin.Error)
	require.Equal(t, []string{"FinishRelease", "Finish"}, rec.sequence("FinishRelease", "Finish"))
	require.Greater(t, rec.index("FinishRelease"), rec.lastIndex("RemoveInstance"))

	steps := rec.stepLog()
	require.Contains(t, steps, "batch 1/2 done")
	require.Contains(t, steps, "batch 2/2 failed")
	require.Contains(t, steps, "rollback running")
	require.Equal(t, "rollback done", steps[len(steps)-1])
	s := scaleStatus(t, env)
	require.Equal(t, reason, s.Error)
	require.Contains(t, s.Done, "rollback")
}

func TestReleaseVersionFailureInFirstBatchChangesNothing(t *testing.T) {
	env, rec, _ := newReleaseEnv(t)
	in := releaseInput()
	mockRelease(env, nil, releaseFaults{start: unhealthy(6)})
	msg := "instance " + apiName(6) + " is unhealthy"

	env.ExecuteWorkflow(ReleaseVersionName, in)

	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	require.Equal(t, "ReleaseFailed", appError(t, err).Type())
	reason := msg + "; no instance was changed"

	require.Equal(t, []string{"31/batch-1"}, plannedKeys(rec))
	require.ElementsMatch(t, apiNames(5, 6), startedNames(rec))
	require.Empty(t, rec.recorded)
	require.ElementsMatch(t, []string{apiName(5) + " forced", apiName(6) + " forced"}, removals(rec))
	require.Equal(t, []string{lbState(lb.StateReady, 1, 2)}, lbStates(rec), "the old batch stays in rotation")
	require.Empty(t, rec.callsOf("WaitDrained"))

	require.Equal(t, activities.FinishReleaseInput{ReleaseID: 8, Outcome: berth.ReleaseRolledBack, Reason: reason}, onlyFinishRelease(t, rec))
	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunFailed, fin.Status)
	require.Equal(t, reason, fin.Error)
	require.Equal(t, []string{"prefetch running", "prefetch done", "batch 1/2 running", "batch 1/2 failed"}, rec.stepLog())
}

func TestReleaseVersionProgressDeadlineUndoesTheBatch(t *testing.T) {
	env, rec, _ := newReleaseEnv(t)
	in := releaseInput()
	in.ProgressDeadline = 10 * time.Minute
	env.OnActivity(dk.StartInstance, mock.Anything, startsOf(5, 6)).After(time.Hour).Return(startResult(nil))
	mockRelease(env, nil, releaseFaults{})
	begin := env.Now()

	env.ExecuteWorkflow(ReleaseVersionName, in)

	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	require.Equal(t, "ReleaseFailed", appError(t, err).Type())
	require.ErrorContains(t, err, "progress deadline of 10m0s passed")

	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunFailed, fin.Status)
	require.True(t, strings.HasPrefix(fin.Error, "progress deadline of 10m0s passed"), fin.Error)
	require.Contains(t, fin.Error, "no instance was changed")
	elapsed := fin.At.Sub(begin.UTC())
	require.GreaterOrEqual(t, elapsed, 10*time.Minute)
	require.Less(t, elapsed, time.Hour, "the rollout was cut at the deadline, not when the start returned")

	fr := onlyFinishRelease(t, rec)
	require.Equal(t, berth.ReleaseRolledBack, fr.Outcome)
	require.Equal(t, fin.Error, fr.Reason)

	// The cut batch is undone on a context the deadline does not reach.
	require.Empty(t, rec.recorded)
	require.ElementsMatch(t, []string{apiName(5) + " forced", apiName(6) + " forced"}, removals(rec))
	require.Equal(t, []string{lbState(lb.StateReady, 1, 2)}, lbStates(rec))
	removes := rec.callsOf("RemoveServers")
	require.Len(t, removes, 1)
	require.Equal(t, apiNames(5, 6), removes[0].Arg.(activities.RemoveServersInput).Names)
	require.Equal(t, []string{"31/batch-1"}, plannedKeys(rec))
	require.Equal(t, []string{"prefetch running", "prefetch done", "batch 1/2 running", "batch 1/2 failed"}, rec.stepLog())
}

func TestReleaseVersionFastRollbackIsOneBatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail bool
	}{{"succeeds", false}, {"fails", true}} {
		t.Run(tc.name, func(t *testing.T) {
			env, rec, _ := newReleaseEnv(t)
			in := releaseInput()
			in.Fast = true
			var f releaseFaults
			if tc.fail {
				f.start = unhealthy(8)
			}
			mockRelease(env, nil, f)

			env.ExecuteWorkflow(ReleaseVersionName, in)

			require.True(t, env.IsWorkflowCompleted())
			plans := rec.callsOf("PlanDeploy")
			require.Len(t, plans, 1, "one batch regardless of BatchSize")
			req := plans[0].Arg.(berth.PlanRequest)
			require.Equal(t, "31/batch-1", req.Key)
			require.Equal(t, 4, req.Services[0].Replicas)
			require.ElementsMatch(t, apiNames(5, 6, 7, 8), startedNames(rec))
			fin := rec.onlyFinish(t)
			fr := onlyFinishRelease(t, rec)
			if !tc.fail {
				require.NoError(t, env.GetWorkflowError())
				require.Equal(t, berth.RunSucceeded, fin.Status)
				require.Equal(t, berth.ReleaseSucceeded, fr.Outcome)
				require.Equal(t, []string{lbState(lb.StateDrain, 1, 2, 3, 4)}, lbStates(rec))
				require.Contains(t, rec.stepLog(), "batch 1/1 done")
				return
			}
			require.Equal(t, "ReleaseFailed", appError(t, env.GetWorkflowError()).Type())
			require.NotContains(t, rec.stepLog(), "rollback running")
			require.Equal(t, []string{"batch 1/1 running", "batch 1/1 failed"}, rec.stepLog()[2:])
			require.ElementsMatch(t, []string{apiName(5) + " forced", apiName(6) + " forced", apiName(7) + " forced", apiName(8) + " forced"}, removals(rec))
			require.Equal(t, []string{lbState(lb.StateReady, 1, 2, 3, 4)}, lbStates(rec))
			require.Equal(t, berth.RunFailed, fin.Status)
			require.Equal(t, berth.ReleaseRolledBack, fr.Outcome)
			require.Equal(t, "instance "+apiName(8)+" is unhealthy; no instance was changed", fr.Reason)
		})
	}
}

func TestReleaseVersionCancelledInFirstBatch(t *testing.T) {
	env, rec, _ := newReleaseEnv(t)
	in := releaseInput()
	env.OnActivity(dk.StartInstance, mock.Anything, startsOf(5, 6)).After(time.Hour).Return(startResult(nil))
	mockRelease(env, nil, releaseFaults{})
	env.RegisterDelayedCallback(env.CancelWorkflow, 10*time.Minute)

	env.ExecuteWorkflow(ReleaseVersionName, in)

	require.True(t, env.IsWorkflowCompleted())
	require.Error(t, env.GetWorkflowError())
	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunCancelled, fin.Status)
	require.Equal(t, "cancelled; no instance was changed", fin.Error)
	fr := onlyFinishRelease(t, rec)
	require.Equal(t, berth.ReleaseRolledBack, fr.Outcome)
	require.True(t, strings.HasPrefix(fr.Reason, "cancelled"), fr.Reason)

	require.ElementsMatch(t, []string{apiName(5) + " forced", apiName(6) + " forced"}, removals(rec), "a cancelled batch is still undone")
	require.Equal(t, []string{lbState(lb.StateReady, 1, 2)}, lbStates(rec))
	require.Equal(t, []string{"31/batch-1"}, plannedKeys(rec))
	steps := rec.stepLog()
	require.Equal(t, "batch 1/2 failed", steps[len(steps)-1], "the interrupted step is closed")
}

// A cancel after a batch was released still brings that batch back to the
// last-good image, so the service is not left on two versions.
func TestReleaseVersionCancelledInSecondBatchRollsBack(t *testing.T) {
	env, rec, _ := newReleaseEnv(t)
	in := releaseInput()
	env.OnActivity(dk.StartInstance, mock.Anything, startsOf(7, 8)).After(time.Hour).Return(startResult(nil))
	mockRelease(env, nil, releaseFaults{})
	env.RegisterDelayedCallback(env.CancelWorkflow, 10*time.Minute)

	env.ExecuteWorkflow(ReleaseVersionName, in)

	require.True(t, env.IsWorkflowCompleted())
	require.Error(t, env.GetWorkflowError())
	fin := rec.onlyFinish(t)
	require.Equal(t, berth.RunCancelled, fin.Status)
	require.Equal(t, "cancelled; rolled back to "+relGoodImage, fin.Error)
	require.Equal(t, berth.ReleaseRolledBack, onlyFinishRelease(t, rec).Outcome)
	require.Equal(t, []string{"31/batch-1", "31/batch-2", "31/rollback"}, plannedKeys(rec))
	require.ElementsMatch(t, []string{
		apiName(1) + " graceful", apiName(2) + " graceful",
		apiName(7) + " forced", apiName(8) + " forced",
		apiName(5) + " graceful", apiName(6) + " graceful",
	}, removals(rec))
	steps := rec.stepLog()
	require.Contains(t, steps, "batch 2/2 failed")
	require.Equal(t, "rollback done", steps[len(steps)-1])
}

func TestReleaseVersionRollbackFailureIsReported(t *testing.T) {
	env, rec, _ := newReleaseEnv(t)
	in := releaseInput()
	mockRelease(env, nil, releaseFaults{start: unhealthy(7, 9)})

	env.ExecuteWorkflow(ReleaseVersionName, in)

	require.True(t, env.IsWorkflowCompleted())
	require.Equal(t, "ReleaseFailed", appError(t, env.GetWorkflowError()).Type())
	fr := onlyFinishRelease(t, rec)
	require.Equal(t, berth.ReleaseFailed, fr.Outcome)
	require.Equal(t, "instance "+apiName(7)+" is unhealthy; rollback failed: instance "+apiName(9)+" is unhealthy", fr.Reason)
	// The failed rollback undoes itself: batch 1's new instances stay in rotation.
	require.Contains(t, lbStates(rec), lbState(lb.StateReady, 5, 6))
	require.NotContains(t, removals(rec), apiName(5)+" graceful")
	steps := rec.stepLog()
	require.Equal(t, "rollback failed", steps[len(steps)-1])
	require.Equal(t, berth.RunFailed, rec.onlyFinish(t).Status)
}

// ---- file release ----

func TestReleaseVersionFileInstallsBatchByBatch(t *testing.T) {
	env, rec, fake := newReleaseEnv(t)
	in := fileReleaseInput()
	mockRelease(env, fake, releaseFaults{})

	env.ExecuteWorkflow(ReleaseVersionName, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	var res ReleaseVersionResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, ReleaseVersionResult{Instances: apiNames(1, 2, 3, 4), Outcome: berth.ReleaseSucceeded}, res)

	installs := fake.installed()
	require.Len(t, installs, 4)
	var names []string
	for _, c := range installs {
		names = append(names, c.In.Instance.Name)
		require.Equal(t, RegionTaskQueue(c.In.Instance.Host.Region), c.Queue)
		require.Equal(t, relNewSHA, c.In.SHA256)
		require.Equal(t, in.Service, c.In.Service)
		require.Equal(t, int64(60000), c.In.HealthTimeout)
	}
	require.ElementsMatch(t, apiNames(1, 2), names[:2], "batch 1 first")
	require.ElementsMatch(t, apiNames(3, 4), names[2:])
	require.Equal(t, []string{
		lbState(lb.StateDrain, 1, 2), lbState(lb.StateReady, 1, 2),
		lbState(lb.StateDrain, 3, 4), lbState(lb.StateReady, 3, 4),
	}, lbStates(rec))
	step := []string{"SetServers", "WaitDrained", "InstallPackage", "InstallPackage", "SetServers"}
	require.Equal(t, append(append(step, step...), "FinishRelease", "Finish"),
		rec.sequence("SetServers", "WaitDrained", "InstallPackage", "FinishRelease", "Finish"))
	for _, a := range []string{"ReadyHosts", "EnsureImage", "PlanDeploy", "StartInstance", "RemoveInstance", "RemoveServers"} {
		require.Empty(t, rec.callsOf(a), a)
	}
	require.Equal(t, activities.FinishReleaseInput{ReleaseID: 8, Outcome: berth.ReleaseSucceeded}, onlyFinishRelease(t, rec))
	require.Equal(t, berth.RunSucceeded, rec.onlyFinish(t).Status)
	require.Equal(t, []string{"batch 1/2 running", "batch 1/2 done", "batch 2/2 running", "batch 2/2 done"}, rec.stepLog())
}

func TestReleaseVersionFileFailureRestoresLastGoodPackage(t *testing.T) {
	const msg = "acme-prod-shop-api-3 is unhealthy after the install"
	failNew3 := func(in activities.InstallPackageInput) error {
		if in.Instance.Name == apiName(3) && in.SHA256 == relNewSHA {
			return temporal.NewNonRetryableApplicationError(msg, string(berth.EUnhealthy), nil)
		}
		return nil
	}

	t.Run("rolled back", func(t *testing.T) {
		env, rec, fake := newReleaseEnv(t)
		mockRelease(env, fake, releaseFaults{install: failNew3})

		env.ExecuteWorkflow(ReleaseVersionName, fileReleaseInput())

		require.True(t, env.IsWorkflowCompleted())
		err := env.GetWorkflowError()
		require.Equal(t, "ReleaseFailed", appError(t, err).Type())
		reason := msg + "; rolled back to the last-good package"

		var got []string
		for _, c := range fake.installed() {
			got = append(got, c.In.Instance.Name+" "+c.In.SHA256)
		}
		require.ElementsMatch(t, []string{
			apiName(1) + " " + relNewSHA, apiName(2) + " " + relNewSHA, apiName(3) + " " + relNewSHA, apiName(4) + " " + relNewSHA,
			apiName(1) + " " + relGoodSHA, apiName(2) + " " + relGoodSHA, apiName(3) + " " + relGoodSHA, apiName(4) + " " + relGoodSHA,
		}, got, "every instance touched gets the last-good package back")
		// The rollback goes batch by batch, so the service never leaves
		// rotation as a whole.
		require.Equal(t, []string{
			lbState(lb.StateDrain, 1, 2), lbState(lb.StateReady, 1, 2),
			lbState(lb.StateDrain, 3, 4),
			lbState(lb.StateDrain, 1, 2), lbState(lb.StateReady, 1, 2),
			lbState(lb.StateDrain, 3, 4), lbState(lb.StateReady, 3, 4),
		}, lbStates(rec))
		require.Empty(t, rec.callsOf("StartInstance"))
		require.Empty(t, rec.callsOf("RemoveInstance"))

		require.Equal(t, activities.FinishReleaseInput{ReleaseID: 8, Outcome: berth.ReleaseRolledBack, Reason: reason}, onlyFinishRelease(t, rec))
		fin := rec.onlyFinish(t)
		require.Equal(t, berth.RunFailed, fin.Status)
		require.Equal(t, reason, fin.Error)
		require.Equal(t, []string{"batch 1/2 running", "batch 1/2 done", "batch 2/2 running", "batch 2/2 failed",
			"rollback running", "rollback done"}, rec.stepLog())
	})

	t.Run("nothing to restore", func(t *testing.T) {
		env, rec, fake := newReleaseEnv(t)
		in := fileReleaseInput()
		in.LastGoodPackage = ""
		mockRelease(env, fake, releaseFaults{install: failNew3})

		env.ExecuteWorkflow(ReleaseVersionName, in)

		require.True(t, env.IsWorkflowCompleted())
		require.Equal(t, "ReleaseFailed", appError(t, env.GetWorkflowError()).Type())
		require.Len(t, fake.installed(), 4, "no second install")
		fr := onlyFinishRelease(t, rec)
		require.Equal(t, berth.ReleaseFailed, fr.Outcome)
		require.Contains(t, fr.Reason, msg)
		require.Contains(t, fr.Reason, "no earlier package to restore")
		require.Equal(t, []string{lbState(lb.StateDrain, 1, 2), lbState(lb.StateReady, 1, 2), lbState(lb.StateDrain, 3, 4)},
			lbStates(rec), "the failed batch stays out of rotation")
		require.NotContains(t, rec.stepLog(), "rollback running")
		require.Equal(t, berth.RunFailed, rec.onlyFinish(t).Status)
	})
}

// ---- approval ----

func releaseApproval() *berth.ApprovalRequest {
	return &berth.ApprovalRequest{Step: "approve prod", Roles: []berth.Role{berth.RoleApprover}, Quorum: 1, StartedBy: "dev",
		TenantID: 3, EnvironmentID: 2, Timeout: time.Hour, OnTimeout: berth.OnTimeoutFail, Summary: "api 1 → 2"}
}

func TestReleaseVersionApprovalRejectedTouchesNothing(t *testing.T) {
	for _, kind := range []berth.ReleaseKind{berth.ReleaseImage, berth.ReleaseFile} {
		t.Run(string(kind), func(t *testing.T) {
			env, rec, fake := newReleaseEnv(t)
			in := releaseInput()
			if kind == berth.ReleaseFile {
				in = fileReleaseInput()
			}
			in.Approval = releaseApproval()
			mockRelease(env, fake, releaseFaults{})
			signalAt(env, time.Minute, berth.ApprovalDecision{ApprovalID: 42, State: berth.ApprovalRejected, By: []string{"carol"}, Comment: "not on a Friday"})

			env.ExecuteWorkflow(ReleaseVersionName, in)

			require.True(t, env.IsWorkflowCompleted())
			err := env.GetWorkflowError()
			require.Equal(t, berth.ErrApprovalRejected, appError(t, err).Type())
			for _, a := range []string{"ReadyHosts", "EnsureImage", "PlanDeploy", "StartInstance", "SetServers", "RemoveInstance"} {
				require.Empty(t, rec.callsOf(a), a)
			}
			require.Empty(t, fake.installed())
			reason := "rejected by carol: not on a Friday; no instance was changed"
			fr := onlyFinishRelease(t, rec)
			require.Equal(t, activities.FinishReleaseInput{ReleaseID: 8, Outcome: berth.ReleaseFailed, Reason: reason}, fr)
			fin := rec.onlyFinish(t)
			require.Equal(t, berth.RunFailed, fin.Status)
			require.Equal(t, reason, fin.Error)
			require.Equal(t, []string{"approve prod waiting", "approve prod failed"}, rec.stepLog())
			created := rec.callsOf("CreateApproval")
			require.Len(t, created, 1)
			a := created[0].Arg.(berth.Approval)
			require.Equal(t, uint(31), a.RunID)
			require.Equal(t, "approve prod", a.Step)
		})
	}
}

func TestReleaseVersionApprovedProceeds(t *testing.T) {
	env, rec, _ := newReleaseEnv(t)
	in := releaseInput()
	in.Approval = releaseApproval()
	mockRelease(env, nil, releaseFaults{})
	var during Status
	env.RegisterDelayedCallback(func() { during = scaleStatus(t, env) }, 5*time.Minute)
	signalAt(env, 10*time.Minute, berth.ApprovalDecision{ApprovalID: 42, State: berth.ApprovalApproved, By: []string{"bob"}})

	env.ExecuteWorkflow(ReleaseVersionName, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, "approve prod", during.Step, "the status shows the run waits for its approval")
	require.Less(t, rec.index("CreateApproval"), rec.index("ReadyHosts"), "nothing is touched before the approval")
	require.ElementsMatch(t, apiNames(5, 6, 7, 8), startedNames(rec))
	require.Equal(t, berth.ReleaseSucceeded, onlyFinishRelease(t, rec).Outcome)
	require.Equal(t, berth.RunSucceeded, rec.onlyFinish(t).Status)
	steps := rec.stepLog()
	require.Equal(t, []string{"approve prod waiting", "approve prod done", "prefetch running"}, steps[:3])
	require.Equal(t, "batch 2/2 done", steps[len(steps)-1])
}

// ---- reported bugs (see the report); drop the Skip once fixed ----

// The progress deadline's timer starts before the approval wait, so a
// release approved later than ProgressDeadline after its start fails at once.
func TestReleaseVersionApprovalWaitDoesNotCountAgainstTheProgressDeadline(t *testing.T) {
	env, rec, _ := newReleaseEnv(t)
	in := releaseInput()
	in.Approval = releaseApproval()
	in.ProgressDeadline = 10 * time.Minute
	mockRelease(env, nil, releaseFaults{})
	signalAt(env, 30*time.Minute, berth.ApprovalDecision{ApprovalID: 42, State: berth.ApprovalApproved, By: []string{"bob"}})

	env.ExecuteWorkflow(ReleaseVersionName, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, berth.ReleaseSucceeded, onlyFinishRelease(t, rec).Outcome)
}

// When a batch's new instances serve but removing its old instances fails,
// the batch is not counted as released: the outcome says nothing changed and
// the new instances are not rolled back.
func TestReleaseVersionOldRemovalFailureIsNotNothingChanged(t *testing.T) {
	env, rec, _ := newReleaseEnv(t)
	in := releaseInput()
	env.OnActivity(dk.RemoveInstance, mock.Anything, mock.MatchedBy(func(in activities.RemoveInstanceInput) bool {
		return in.Name == apiName(1)
	})).Return(temporal.NewNonRetryableApplicationError("stop acme-prod-shop-api-1: permission denied", "test", nil))
	mockRelease(env, nil, releaseFaults{})

	env.ExecuteWorkflow(ReleaseVersionName, in)

	require.True(t, env.IsWorkflowCompleted())
	fr := onlyFinishRelease(t, rec)
	require.NotContains(t, fr.Reason, "no instance was changed", "api-5 and api-6 run the new image and api-1/api-2 left rotation")
}

// A release that replaces instances lost with their host (self-healing's
// recovery) starts and exposes the new ones as any release does, takes the
// old ones out of the load balancer without waiting for their sessions,
// and records them lost instead of removing them: no call reaches their
// host.
func TestReleaseVersionOfLostInstancesRecordsThemLost(t *testing.T) {
	env, rec, _ := newReleaseEnv(t)
	in := releaseInput()
	in.OldLost = true
	mockRelease(env, nil, releaseFaults{})
	var st *activities.Store
	var lost [][]string
	env.OnActivity(st.LoseInstances, mock.Anything, mock.Anything).Return(func(_ context.Context, names []string) error {
		rec.add(func() { lost = append(lost, names) })
		return nil
	})

	env.ExecuteWorkflow(ReleaseVersionName, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, [][]string{apiNames(1, 2), apiNames(3, 4)}, lost)
	require.Empty(t, rec.callsOf("WaitDrained"), "a lost instance has no sessions to wait for")
	require.Empty(t, removals(rec), "nothing reaches the lost instances' host")
	require.Empty(t, rec.releases(), "lost instances keep their ports until their containers are gone")
	removes := rec.callsOf("RemoveServers")
	require.Len(t, removes, 2)
	require.Equal(t, activities.RemoveServersInput{Backend: "acme-prod-shop-api", Names: apiNames(1, 2)}, removes[0].Arg)
	require.Len(t, rec.callsOf("UnexposeDone"), 2)
	require.Equal(t, [][]string{apiNames(5, 6), apiNames(7, 8)}, rec.recorded)
	require.Equal(t, berth.RunSucceeded, rec.onlyFinish(t).Status)
}
