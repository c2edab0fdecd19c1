package server

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/mocks"
	"go.temporal.io/sdk/temporal"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/workflows"
)

// instanceWorld is tenant shop, environment dev, application and service
// web with one running instance on host h1, in the records only.
func instanceWorld(t *testing.T) (*apiFixture, *store.Host, *store.Service, *store.Instance) {
	t.Helper()
	f := newAPI(t)
	ctx := context.Background()
	db := f.st.DB()
	code, _ := f.call("POST", "/api/v1/tenants", f.token, nameRequest{Name: "shop"}, nil)
	require.Equal(t, http.StatusCreated, code)
	code, _ = f.call("POST", "/api/v1/tenants/shop/environments", f.token, environmentRequest{Name: "dev"}, nil)
	require.Equal(t, http.StatusCreated, code)
	env, err := f.st.Environment(ctx, "shop", "dev")
	require.NoError(t, err)
	h := &store.Host{Name: "h1", Region: "eu", Endpoint: "unix:///x.sock", IP: "127.0.0.1"}
	require.NoError(t, f.st.CreateHost(ctx, h))
	app := &store.Application{EnvironmentID: env.ID, Name: "web", State: berth.StateRunning}
	require.NoError(t, db.Create(app).Error)
	svc := &store.Service{ApplicationID: app.ID, Name: "web", State: berth.StateRunning}
	require.NoError(t, db.Create(svc).Error)
	inst := &store.Instance{ServiceID: svc.ID, Name: "shop-dev-web-web-1", HostID: h.ID, State: berth.StateRunning}
	require.NoError(t, db.Create(inst).Error)
	return f, h, svc, inst
}

// TestInstanceReads: stats and logs go through a workflow in the
// instance's region; a region without a worker, a gone container and bad
// parameters each get an answer that says what to do; reads are scoped.
func TestInstanceReads(t *testing.T) {
	f, h, _, inst := instanceWorld(t)
	dev := f.user("dana", roleRequest{Tenant: "shop", Role: berth.RoleDeveloper})
	outsider := f.user("eve")
	ref := berth.InstanceRef{Host: h.Ref(), Instance: inst.Name}

	ok := &mocks.WorkflowRun{}
	ok.On("Get", mock.Anything, mock.Anything).Run(func(args mock.Arguments) {
		*(args.Get(1).(*workflows.InstanceStatsResult)) = workflows.InstanceStatsResult{Stats: berth.InstanceStats{Instance: inst.Name, Running: true, MemoryBytes: 42}}
	}).Return(nil)
	f.tc.On("ExecuteWorkflow", mock.Anything, mock.Anything, workflows.InstanceStatsName, workflows.InstanceStatsInput{Instance: ref}).Return(ok, nil).Once()
	var st berth.InstanceStats
	code, eb := f.call("GET", "/api/v1/instances/"+inst.Name+"/stats", dev, nil, &st)
	require.Equal(t, http.StatusOK, code, eb.Error.Message)
	require.EqualValues(t, 42, st.MemoryBytes)

	// No worker serves the region: the read times out waiting to be picked up.
	dead := &mocks.WorkflowRun{}
	dead.On("Get", mock.Anything, mock.Anything).Return(temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil))
	f.tc.On("ExecuteWorkflow", mock.Anything, mock.Anything, workflows.InstanceStatsName, mock.Anything).Return(dead, nil).Once()
	code, eb = f.call("GET", "/api/v1/instances/"+inst.Name+"/stats", dev, nil, nil)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, eb.Error.Message, "the worker for region eu does not answer")

	gone := &mocks.WorkflowRun{}
	gone.On("Get", mock.Anything, mock.Anything).Return(temporal.NewNonRetryableApplicationError("no container", string(berth.ENotFound), nil))
	f.tc.On("ExecuteWorkflow", mock.Anything, mock.Anything, workflows.InstanceLogsName, mock.MatchedBy(func(in workflows.InstanceLogsInput) bool {
		return in.Tail == 20 && in.Since.Year() == 2025 && in.Instance == ref
	})).Return(gone, nil).Once()
	code, eb = f.call("GET", "/api/v1/instances/"+inst.Name+"/logs?tail=20&since=2025-01-02T03:04:05.5Z", dev, nil, nil)
	require.Equal(t, http.StatusNotFound, code)
	require.Contains(t, eb.Error.Message, "has no container on host h1")

	for _, q := range []string{"tail=0", "tail=501", "since=yesterday"} {
		code, _ = f.call("GET", "/api/v1/instances/"+inst.Name+"/logs?"+q, dev, nil, nil)
		require.Equal(t, http.StatusBadRequest, code, q)
	}
	code, _ = f.call("GET", fmt.Sprintf("/api/v1/instances/%s/stats", inst.Name), outsider, nil, nil)
	require.Equal(t, http.StatusForbidden, code, "reads are scoped to the caller's tenants")
	code, _ = f.call("GET", "/api/v1/instances/nope/stats", dev, nil, nil)
	require.Equal(t, http.StatusNotFound, code)
	f.tc.AssertNumberOfCalls(t, "ExecuteWorkflow", 3)
}

// TestInstanceActionRefusals: what does not fit an instance's state, or
// would take a service's last running instance out of rotation without a
// release manager's force, is refused before any run starts (the Temporal
// client mock fails the test on any workflow start).
func TestInstanceActionRefusals(t *testing.T) {
	f, h, svc, only := instanceWorld(t)
	db := f.st.DB()
	dev := f.user("dana", roleRequest{Tenant: "shop", Role: berth.RoleDeveloper})
	approver := f.user("abe", roleRequest{Tenant: "shop", Role: berth.RoleApprover})
	outsider := f.user("eve")
	stopped := &store.Instance{ServiceID: svc.ID, Name: "shop-dev-web-web-2", HostID: h.ID, State: berth.StateStopped, Ordinal: 2}
	require.NoError(t, db.Create(stopped).Error)
	planned := &store.Instance{ServiceID: svc.ID, Name: "shop-dev-web-web-3", HostID: h.ID, State: berth.StatePlanned, Ordinal: 3}
	require.NoError(t, db.Create(planned).Error)
	path := func(name, action string) string { return "/api/v1/instances/" + name + "/" + action }

	for _, tc := range []struct {
		who, name, action string
		body              any
		code              int
		says              string
	}{
		{dev, only.Name, "restart", nil, http.StatusConflict, "last running instance"},
		{dev, only.Name, "stop", map[string]bool{"force": false}, http.StatusConflict, "last running instance"},
		{dev, only.Name, "stop", map[string]bool{"force": true}, http.StatusForbidden, "release-manager"},
		{dev, only.Name, "start", nil, http.StatusConflict, "only a stopped instance"},
		{dev, stopped.Name, "stop", nil, http.StatusConflict, "already stopped"},
		{dev, planned.Name, "restart", nil, http.StatusConflict, "wait until its run ends"},
		{dev, "shop-dev-web-web-9", "restart", nil, http.StatusNotFound, "shop-dev-web-web-9"},
		{dev, only.Name, "restart", "not an object", http.StatusBadRequest, "JSON"},
		{approver, only.Name, "restart", nil, http.StatusForbidden, "developer or release-manager"},
		{outsider, stopped.Name, "start", nil, http.StatusForbidden, ""},
	} {
		code, eb := f.call("POST", path(tc.name, tc.action), tc.who, tc.body, nil)
		require.Equal(t, tc.code, code, "%s %s: %s", tc.action, tc.name, eb.Error.Message)
		require.Contains(t, eb.Error.Message, tc.says, "%s %s", tc.action, tc.name)
	}
	var n int64
	require.NoError(t, db.Model(&store.Run{}).Count(&n).Error)
	require.Zero(t, n, "no refusal leaves a run behind")
}
