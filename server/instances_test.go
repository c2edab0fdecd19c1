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

// TestInstanceReads: stats and logs go through a workflow in the
// instance's region; a region without a worker, a gone container and bad
// parameters each get an answer that says what to do; reads are scoped.
func TestInstanceReads(t *testing.T) {
	f := newAPI(t)
	ctx := context.Background()
	db := f.st.DB()
	code, _ := f.call("POST", "/api/v1/tenants", f.token, nameRequest{Name: "shop"}, nil)
	require.Equal(t, http.StatusCreated, code)
	code, _ = f.call("POST", "/api/v1/tenants/shop/environments", f.token, environmentRequest{Name: "dev"}, nil)
	require.Equal(t, http.StatusCreated, code)
	dev := f.user("dana", roleRequest{Tenant: "shop", Role: berth.RoleDeveloper})
	outsider := f.user("eve")
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
