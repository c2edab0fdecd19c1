package workflows

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/activities"
	"github.com/berth-dev/berth/compose"
)

// Nil receivers, as in the workflows: only the method names matter to the
// mocks, and a mock that is missing panics instead of reaching a real engine.
var (
	dk *activities.Docker
	st *activities.Store
)

var (
	hostEU = berth.HostRef{ID: 1, Name: "h1", Region: "eu", Endpoint: "tcp://10.0.0.1:2376", IP: "10.0.0.1"}
	hostUS = berth.HostRef{ID: 2, Name: "h2", Region: "us", Endpoint: "tcp://10.0.0.2:2376", IP: "10.0.0.2"}
)

// started is one activity attempt as the test env's listener saw it, before
// any mock ran, so attempts that a mock keeps blocked are seen too.
type started struct {
	Activity string
	Queue    string
	Attempt  int32
	// Timeouts the attempt was scheduled with.
	Heartbeat       time.Duration
	ScheduleToClose time.Duration
	Start           activities.StartInstanceInput
	Image           activities.EnsureImageInput
	Remove          activities.RemoveInstanceInput
	Probe           berth.HostRef
	Mesh            activities.SyncMeshInput
}

// recorder collects what the workflow asked of its activities. Mocks run on
// the test env's activity goroutines, hence the lock.
type recorder struct {
	mu       sync.Mutex
	started  []started
	steps    []string
	details  []string
	recorded [][]string
	released [][]string
	finishes []activities.FinishInput

	// Faults of the store's bookkeeping, set before the run starts.
	stepErr, recordErr, finishErr error
}

func (r *recorder) add(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f()
}

// of returns the attempts of one activity type, in start order.
func (r *recorder) of(name string) []started {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []started
	for _, s := range r.started {
		if s.Activity == name {
			out = append(out, s)
		}
	}
	return out
}

// startedAll returns every activity attempt, in start order.
func (r *recorder) startedAll() []started {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]started(nil), r.started...)
}

func (r *recorder) stepLog() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.steps...)
}

func (r *recorder) onlyFinish(t *testing.T) activities.FinishInput {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Len(t, r.finishes, 1, "a run is closed exactly once")
	return r.finishes[0]
}

func (r *recorder) releases() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]string(nil), r.released...)
}

// newTestEnv returns a test env with the workflows under their registered
// names and the real activity structs registered, as the worker does.
func newTestEnv() *testsuite.TestWorkflowEnvironment {
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	// The machine is shared; the default idle timeout of 3s is too tight
	// under -race for the runs that retry for 15 minutes of workflow time.
	env.SetTestTimeout(time.Minute)
	env.RegisterWorkflowWithOptions(DeployStack, workflow.RegisterOptions{Name: DeployStackName})
	env.RegisterWorkflowWithOptions(DeleteStack, workflow.RegisterOptions{Name: DeleteStackName})
	env.RegisterWorkflowWithOptions(ProvisionHost, workflow.RegisterOptions{Name: ProvisionHostName})
	env.RegisterWorkflowWithOptions(ScaleService, workflow.RegisterOptions{Name: ScaleServiceName})
	env.RegisterWorkflowWithOptions(PoolStats, workflow.RegisterOptions{Name: PoolStatsName})
	env.RegisterWorkflowWithOptions(CMDBSync, workflow.RegisterOptions{Name: CMDBSyncName})
	env.RegisterActivity(&activities.Docker{})
	env.RegisterActivity(&activities.Store{})
	env.RegisterActivity(&activities.LB{})
	env.RegisterActivity(&activities.Firewall{})
	env.RegisterActivity(&activities.CMDB{})
	env.RegisterActivity(&activities.Reconcile{})
	return env
}

// newEnv returns a test env with the workflows and the real activity structs
// registered, as the worker does, and the store's bookkeeping activities
// mocked to record what they were given.
func newEnv(t *testing.T) (*testsuite.TestWorkflowEnvironment, *recorder) {
	t.Helper()
	env := newTestEnv()
	r := &recorder{}
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, args converter.EncodedValues) {
		s := started{Activity: info.ActivityType.Name, Queue: info.TaskQueue, Attempt: info.Attempt,
			Heartbeat: info.HeartbeatTimeout, ScheduleToClose: info.ScheduleToCloseTimeout}
		var err error
		switch s.Activity {
		case "StartInstance":
			err = args.Get(&s.Start)
		case "EnsureImage":
			err = args.Get(&s.Image)
		case "RemoveInstance":
			err = args.Get(&s.Remove)
		case "ProbeHost":
			err = args.Get(&s.Probe)
		case "SyncMesh":
			err = args.Get(&s.Mesh)
		}
		require.NoError(t, err)
		r.add(func() { r.started = append(r.started, s) })
	})

	env.OnActivity(st.RecordStep, mock.Anything, mock.Anything).Return(func(_ context.Context, ev berth.StepEvent) error {
		var err error
		r.add(func() {
			r.steps, err = append(r.steps, ev.Name+" "+string(ev.State)), r.stepErr
			if ev.Detail != "" {
				r.details = append(r.details, ev.Name+": "+ev.Detail)
			}
		})
		return err
	})
	env.OnActivity(st.RecordInstances, mock.Anything, mock.Anything).Return(func(_ context.Context, rs []activities.InstanceResult) error {
		var err error
		r.add(func() { r.recorded, err = append(r.recorded, resultNames(rs)), r.recordErr })
		return err
	})
	env.OnActivity(st.ReleaseInstances, mock.Anything, mock.Anything).Return(func(_ context.Context, names []string) error {
		r.add(func() { r.released = append(r.released, names) })
		return nil
	})
	// Exposure has nothing to do unless a test says otherwise (expose_test.go).
	env.OnActivity(st.PlanExpose, mock.Anything, mock.Anything).Return(&activities.ExposePlan{}, nil).Maybe()
	env.OnActivity(st.PlanUnexpose, mock.Anything, mock.Anything).Return(&activities.UnexposePlan{}, nil).Maybe()
	env.OnActivity(st.UnexposeDone, mock.Anything, mock.Anything).Return([]string{}, nil).Maybe()
	env.OnActivity(st.Finish, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.FinishInput) error {
		var err error
		r.add(func() { r.finishes, err = append(r.finishes, in), r.finishErr })
		return err
	})
	return env, r
}

func resultNames(rs []activities.InstanceResult) []string {
	names := []string{}
	for _, r := range rs {
		names = append(names, r.Name)
	}
	return names
}

func appError(t *testing.T, err error) *temporal.ApplicationError {
	t.Helper()
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	return appErr
}

// twoTier is web depending on api, two replicas each. api is spread over
// both regions; both web replicas share h1 so that its image is needed once.
func twoTier() (DeployStackInput, berth.Plan) {
	spec := compose.Spec{Project: "shop", Services: []compose.ServiceSpec{
		{Name: "api", Image: "reg.local/api:1", Replicas: 2, Ports: []compose.PortSpec{{ContainerPort: 8080, Protocol: "tcp"}}},
		{Name: "web", Image: "reg.local/web:1", Replicas: 2, DependsOn: []string{"api"},
			Ports: []compose.PortSpec{{ContainerPort: 80, Protocol: "tcp"}}},
	}}
	in := DeployStackInput{RunID: 7, ApplicationID: 3, EnvironmentID: 2, Tenant: "acme", Env: "prod", App: "shop",
		Spec: spec, PortMin: 20000, PortMax: 20100, HealthTimeout: time.Minute}
	inst := func(id uint, svc string, ord int, h berth.HostRef, cport, hport int) berth.PlannedInstance {
		name := "acme-prod-shop-" + svc + "-" + string(rune('0'+ord))
		return berth.PlannedInstance{InstanceID: id, Name: name, UID: "uid-" + name, Service: svc, Ordinal: ord, Host: h,
			Ports: []berth.PortMapping{{HostIP: h.IP, HostPort: hport, ContainerPort: cport, Protocol: "tcp"}}}
	}
	plan := berth.Plan{Instances: []berth.PlannedInstance{
		inst(11, "api", 1, hostEU, 8080, 20000),
		inst(12, "api", 2, hostUS, 8080, 20000),
		inst(13, "web", 1, hostEU, 80, 20001),
		inst(14, "web", 2, hostEU, 80, 20002),
	}}
	return in, plan
}

func planNames(plan berth.Plan) []string {
	var names []string
	for _, pi := range plan.Instances {
		names = append(names, pi.Name)
	}
	return names
}

func reversed(s []string) []string {
	out := make([]string, 0, len(s))
	for i := len(s) - 1; i >= 0; i-- {
		out = append(out, s[i])
	}
	return out
}

// deployFaults decide each mocked activity's outcome; nil means success.
type deployFaults struct {
	plan   func(berth.PlanRequest) error
	image  func(activities.EnsureImageInput) error
	start  func(activity.Info, activities.StartInstanceInput) error
	remove func(activities.RemoveInstanceInput) error
	mesh   func(activities.SyncMeshInput) error
}

// mockDeploy mocks PlanDeploy and the host activities of a deploy. Tests
// that need a more specific expectation register it first: the first
// matching expectation wins.
func mockDeploy(env *testsuite.TestWorkflowEnvironment, plan berth.Plan, f deployFaults) {
	env.OnActivity(st.PlanDeploy, mock.Anything, mock.Anything).Return(func(_ context.Context, req berth.PlanRequest) (*berth.Plan, error) {
		if f.plan != nil {
			if err := f.plan(req); err != nil {
				return nil, err
			}
		}
		p := plan
		return &p, nil
	})
	env.OnActivity(dk.EnsureImage, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.EnsureImageInput) error {
		if f.image != nil {
			return f.image(in)
		}
		return nil
	})
	env.OnActivity(dk.StartInstance, mock.Anything, mock.Anything).Return(startResult(f.start))
	env.OnActivity(dk.RemoveInstance, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.RemoveInstanceInput) error {
		if f.remove != nil {
			return f.remove(in)
		}
		return nil
	})
	env.OnActivity(dk.SyncMesh, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.SyncMeshInput) (*activities.SyncMeshResult, error) {
		if f.mesh != nil {
			if err := f.mesh(in); err != nil {
				return nil, err
			}
		}
		return &activities.SyncMeshResult{}, nil
	})
}

func startResult(fault func(activity.Info, activities.StartInstanceInput) error) func(context.Context, activities.StartInstanceInput) (*activities.InstanceResult, error) {
	return func(ctx context.Context, in activities.StartInstanceInput) (*activities.InstanceResult, error) {
		if fault != nil {
			if err := fault(activity.GetInfo(ctx), in); err != nil {
				return nil, err
			}
		}
		return &activities.InstanceResult{Name: in.Instance.Name, ContainerID: "c-" + in.Instance.Name, IP: "172.18.0.2"}, nil
	}
}

// failInstance fails one instance's start, so the others show what a
// partial level leaves behind.
func failInstance(name string, err error) func(activity.Info, activities.StartInstanceInput) error {
	return func(_ activity.Info, in activities.StartInstanceInput) error {
		if in.Instance.Name == name {
			return err
		}
		return nil
	}
}
