package server

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/mocks"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/runhistory/historytest"
	"github.com/berth-dev/berth/store"
	"github.com/berth-dev/berth/workflows"
)

func TestRunHistoryInDomainWords(t *testing.T) {
	f := newAPI(t)
	ctx := context.Background()
	code, _ := f.call("POST", "/api/v1/tenants", f.token, nameRequest{Name: "shop"}, nil)
	require.Equal(t, http.StatusCreated, code)
	f.user("rm", roleRequest{Tenant: "shop", Role: berth.RoleReleaseManager})
	shop, err := f.st.TenantByName(ctx, "shop")
	require.NoError(t, err)
	run := &store.Run{Kind: berth.KindDeploy, WorkflowID: "deploy/shop/dev/web", TenantID: shop.ID, Subject: "shop/dev/web", StartedBy: "dana"}
	require.NoError(t, f.st.CreateRun(ctx, run, ""))
	require.NoError(t, f.st.SetRunStarted(ctx, run.ID, "run-1"))

	fh := historytest.InTwoPages(historytest.DeployHistory(t), 4)
	f.tc.On("WorkflowService").Return(fh)

	// Pages of 4: Temporal's pages (4 and 8 events) are cut to the size asked.
	var p1 historyPage
	code, eb := f.call("GET", fmt.Sprintf("/api/v1/runs/%d/history?size=4", run.ID), f.token, nil, &p1)
	require.Equal(t, http.StatusOK, code, eb.Error.Message)
	require.Len(t, p1.Events, 4)
	// The words themselves are runhistory's (TestDescribe); here, that they arrive.
	require.Equal(t, "workflow DeployStack started for dana", p1.Events[0].Text)
	require.True(t, p1.Events[1].Engine)
	require.NotEmpty(t, p1.NextPageToken)
	require.Equal(t, "http://127.0.0.1:8233/namespaces/default/workflows/deploy%2Fshop%2Fdev%2Fweb/run-1/history", p1.TemporalURL)
	require.Equal(t, "default", fh.Asked[0].GetNamespace())
	require.Equal(t, "run-1", fh.Asked[0].GetExecution().GetRunId())
	require.EqualValues(t, 4, fh.Asked[0].GetMaximumPageSize())

	token := p1.NextPageToken
	for i := 0; i < 2; i++ {
		var p historyPage
		code, eb = f.call("GET", fmt.Sprintf("/api/v1/runs/%d/history?size=4&pageToken=%s", run.ID, url.QueryEscape(token)), f.token, nil, &p)
		require.Equal(t, http.StatusOK, code, eb.Error.Message)
		require.Len(t, p.Events, 4)
		if i == 0 {
			// The token came back through the API with what was open on page 1.
			require.Equal(t, "activity StartInstance for instance shop-dev-web-1 on host h1 completed (12 ms), attempt 3", p.Events[0].Text)
		}
		token = p.NextPageToken
		require.Equal(t, i == 0, token != "", "page %d", i+2)
	}
	require.Equal(t, "p2", string(fh.Asked[1].GetNextPageToken()))

	// The default page holds all twelve, read from both of Temporal's pages.
	var all historyPage
	code, _ = f.call("GET", fmt.Sprintf("/api/v1/runs/%d/history", run.ID), f.token, nil, &all)
	require.Equal(t, http.StatusOK, code)
	require.Len(t, all.Events, 12)
	require.Empty(t, all.NextPageToken)

	code, eb = f.call("GET", fmt.Sprintf("/api/v1/runs/%d/history?pageToken=garbage", run.ID), f.token, nil, nil)
	require.Equal(t, http.StatusBadRequest, code, eb.Error.Message)
	code, _ = f.call("GET", fmt.Sprintf("/api/v1/runs/%d/history?size=9999", run.ID), f.token, nil, nil)
	require.Equal(t, http.StatusBadRequest, code)
	code, _ = f.call("GET", "/api/v1/runs/999/history", f.token, nil, nil)
	require.Equal(t, http.StatusNotFound, code)

	// The page: domain words, engine events hidden, markup as text, a link to the Temporal UI.
	rm := f.browser("rm")
	code, body := rm.page(t, fmt.Sprintf("/runs/%d/history?pageToken=%s", run.ID, url.QueryEscape(p1.NextPageToken)))
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "completed (12 ms), attempt 3")
	require.Contains(t, body, "&lt;script&gt;window.x=1&lt;/script&gt;")
	require.NotContains(t, body, "<script>window.x=1")
	require.Contains(t, body, `href="http://127.0.0.1:8233/namespaces/default/workflows/deploy%2Fshop%2Fdev%2Fweb/run-1/history"`)
	require.Contains(t, body, "First page")
	code, body = rm.page(t, fmt.Sprintf("/runs/%d/history", run.ID))
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "1 engine event(s) hidden")
	require.Contains(t, body, "End of the history")
	code, body = rm.page(t, fmt.Sprintf("/runs/%d", run.ID))
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, fmt.Sprintf(`href="/runs/%d/history"`, run.ID), "the run page links its history")

	// A run whose workflow has not started says so.
	pending := &store.Run{Kind: berth.KindDeploy, WorkflowID: "deploy/shop/dev/api", TenantID: shop.ID, Subject: "shop/dev/api", StartedBy: "dana"}
	require.NoError(t, f.st.CreateRun(ctx, pending, ""))
	code, eb = f.call("GET", fmt.Sprintf("/api/v1/runs/%d/history", pending.ID), f.token, nil, nil)
	require.Equal(t, http.StatusConflict, code)
	require.Equal(t, "no_workflow", eb.Error.Code)
	require.Contains(t, eb.Error.Message, "has no workflow yet")
	code, body = rm.page(t, fmt.Sprintf("/runs/%d/history", pending.ID))
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "No history yet")

	// Reads are scoped to the caller's tenants.
	other := f.user("outsider")
	code, _ = f.call("GET", fmt.Sprintf("/api/v1/runs/%d/history", run.ID), other, nil, nil)
	require.Equal(t, http.StatusForbidden, code)
}

// TestRetry: a failed deploy is started again with the same request by its
// retry, which records the run it retries; what cannot be retried says why.
func TestRetry(t *testing.T) {
	f := newAPI(t)
	ctx := context.Background()
	code, _ := f.call("POST", "/api/v1/tenants", f.token, nameRequest{Name: "shop"}, nil)
	require.Equal(t, http.StatusCreated, code)
	code, _ = f.call("POST", "/api/v1/tenants/shop/environments", f.token, environmentRequest{Name: "dev"}, nil)
	require.Equal(t, http.StatusCreated, code)
	h := &store.Host{Name: "h1", Region: "local", Endpoint: "unix:///var/run/x.sock", IP: "127.0.0.1"}
	require.NoError(t, f.st.CreateHost(ctx, h))
	require.NoError(t, f.st.SetHostFacts(ctx, h.ID, berth.HostFacts{State: berth.HostReady}))
	code, eb := f.call("POST", "/api/v1/tenants/shop/environments/dev/hosts", f.token, map[string][]string{"hosts": {"h1"}}, nil)
	require.Equal(t, http.StatusOK, code, eb.Error.Message)
	dev := f.user("dana", roleRequest{Tenant: "shop", Role: berth.RoleDeveloper})
	approver := f.user("bob", roleRequest{Tenant: "shop", Role: berth.RoleApprover})

	wr := &mocks.WorkflowRun{}
	wr.On("GetRunID").Return("temporal-run")
	var inputs []workflows.DeployStackInput
	f.tc.On("ExecuteWorkflow", mock.Anything, mock.Anything, workflows.DeployStackName, mock.Anything).
		Run(func(args mock.Arguments) { inputs = append(inputs, args.Get(3).(workflows.DeployStackInput)) }).Return(wr, nil)

	compose := "services:\n  web:\n    image: registry.local/web:1\n"
	var first runStarted
	code, eb = f.call("POST", "/api/v1/tenants/shop/environments/dev/applications", dev, deployRequest{Name: "web", Compose: compose}, &first)
	require.Equal(t, http.StatusAccepted, code, eb.Error.Message)

	retry := fmt.Sprintf("/api/v1/runs/%d/retry", first.RunID)
	code, eb = f.call("POST", retry, dev, nil, nil)
	require.Equal(t, http.StatusConflict, code, "a running run is not retried")
	require.Contains(t, eb.Error.Message, "only a failed or cancelled run can be retried")

	// The deploy fails (as a workflow would record it).
	run, err := f.st.Run(ctx, first.RunID)
	require.NoError(t, err)
	require.NoError(t, f.st.FinishRun(ctx, run.ID, berth.RunFailed, "instance web-1 did not become healthy"))
	require.NoError(t, f.st.SetApplicationState(ctx, run.ApplicationID, berth.StateFailed))

	code, eb = f.call("POST", retry, approver, nil, nil)
	require.Equal(t, http.StatusForbidden, code, "retrying needs the role starting needs")
	require.Contains(t, eb.Error.Message, "needs role developer")

	var again runStarted
	code, eb = f.call("POST", retry, dev, nil, &again)
	require.Equal(t, http.StatusAccepted, code, eb.Error.Message)
	require.NotEqual(t, first.RunID, again.RunID)
	got, err := f.st.Run(ctx, again.RunID)
	require.NoError(t, err)
	require.Equal(t, first.RunID, got.RetryOf)
	require.Equal(t, "dana", got.StartedBy)
	require.Equal(t, run.RequestHash, got.RequestHash, "the same request")
	require.Equal(t, berth.RunRunning, got.Status)
	require.Len(t, inputs, 2)
	require.Equal(t, inputs[0].Spec, inputs[1].Spec)
	require.Equal(t, again.RunID, inputs[1].RunID)

	// The run page shows the retry, and the new run says what it retries.
	dana := f.browser("dana")
	code, body := dana.page(t, fmt.Sprintf("/runs/%d", first.RunID))
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, retry)
	code, body = dana.page(t, fmt.Sprintf("/runs/%d", again.RunID))
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, fmt.Sprintf(`retry of <a href="/runs/%d" class="retry-of">run #%d</a>`, first.RunID, first.RunID))
	// A browser's retry needs the CSRF token, like every unsafe request.
	require.Equal(t, http.StatusForbidden, dana.post(t, retry, f.srv.URL, "", "{}"))

	// A gate cannot be retried; the reason is given.
	shop, err := f.st.TenantByName(ctx, "shop")
	require.NoError(t, err)
	gate := &store.Run{Kind: "gate", WorkflowID: "gate/shop/dev/x", TenantID: shop.ID, Subject: "shop/dev/x", StartedBy: "dana"}
	require.NoError(t, f.st.CreateRun(ctx, gate, ""))
	require.NoError(t, f.st.FinishRun(ctx, gate.ID, berth.RunFailed, "rejected"))
	code, eb = f.call("POST", fmt.Sprintf("/api/v1/runs/%d/retry", gate.ID), dev, nil, nil)
	require.Equal(t, http.StatusConflict, code)
	require.Equal(t, "not_retryable", eb.Error.Code)
	require.Contains(t, eb.Error.Message, "open a new approval gate instead")
	_, body = dana.page(t, fmt.Sprintf("/runs/%d", gate.ID))
	require.Contains(t, body, "open a new approval gate instead")
}

// TestServiceHistory lists a service's releases and the runs that touched
// it, and nothing of another service.
func TestServiceHistory(t *testing.T) {
	f := newAPI(t)
	ctx := context.Background()
	db := f.st.DB()
	code, _ := f.call("POST", "/api/v1/tenants", f.token, nameRequest{Name: "shop"}, nil)
	require.Equal(t, http.StatusCreated, code)
	code, _ = f.call("POST", "/api/v1/tenants/shop/environments", f.token, environmentRequest{Name: "dev"}, nil)
	require.Equal(t, http.StatusCreated, code)
	f.user("rm", roleRequest{Tenant: "shop", Role: berth.RoleReleaseManager})
	env, err := f.st.Environment(ctx, "shop", "dev")
	require.NoError(t, err)
	app := &store.Application{EnvironmentID: env.ID, Name: "shop-app", State: berth.StateRunning}
	require.NoError(t, db.Create(app).Error)
	web := &store.Service{ApplicationID: app.ID, Name: "web", Image: "r/web:1", State: berth.StateRunning}
	api := &store.Service{ApplicationID: app.ID, Name: "api", Image: "r/api:1", State: berth.StateRunning}
	require.NoError(t, db.Create(web).Error)
	require.NoError(t, db.Create(api).Error)
	mk := func(kind berth.RunKind, subject string) uint {
		r := &store.Run{Kind: kind, WorkflowID: string(kind) + "/" + subject, TenantID: env.TenantID, EnvironmentID: env.ID, ApplicationID: app.ID,
			Subject: subject, StartedBy: "dana", Status: berth.RunSucceeded}
		require.NoError(t, f.st.CreateRun(ctx, r, ""))
		return r.ID
	}
	deploy := mk("deploy", "shop/dev/shop-app")
	scaleWeb := mk("scale", "shop/dev/shop-app/web")
	mk("scale", "shop/dev/shop-app/api")
	commitWeb := mk("commit", "shop/dev/shop-app/web/shop-dev-shop-app-web-1")
	done := time.Now().UTC()
	rel := &store.Release{ServiceID: web.ID, Kind: berth.ReleaseImage, Version: "2.0<b>", Image: "r/web:2", Strategy: berth.StrategyRolling,
		StartedBy: "dana", RunID: scaleWeb, Outcome: berth.ReleaseRolledBack, Reason: "instance 2 unhealthy", FinishedAt: &done}
	require.NoError(t, db.Create(rel).Error)
	require.NoError(t, db.Create(&store.Release{ServiceID: api.ID, Kind: berth.ReleaseImage, Version: "9.9", Outcome: berth.ReleaseSucceeded}).Error)

	var out struct {
		Releases      []releaseView `json:"releases"`
		ReleasesTotal int64         `json:"releasesTotal"`
		Runs          []store.Run   `json:"runs"`
		RunsTotal     int64         `json:"runsTotal"`
	}
	code, eb := f.call("GET", fmt.Sprintf("/api/v1/services/%d/history", web.ID), f.token, nil, &out)
	require.Equal(t, http.StatusOK, code, eb.Error.Message)
	require.EqualValues(t, 1, out.ReleasesTotal)
	require.Equal(t, "2.0<b>", out.Releases[0].Version)
	require.NotEqual(t, "running", out.Releases[0].Took)
	ids := []uint{}
	for _, r := range out.Runs {
		ids = append(ids, r.ID)
	}
	require.Equal(t, []uint{commitWeb, scaleWeb, deploy}, ids, "newest first; the api service's scale is not here")
	code, _ = f.call("GET", fmt.Sprintf("/api/v1/services/%d/history?runOffset=-1", web.ID), f.token, nil, nil)
	require.Equal(t, http.StatusBadRequest, code)

	rm := f.browser("rm")
	code, body := rm.page(t, fmt.Sprintf("/services/%d/history", web.ID))
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "2.0&lt;b&gt;")
	require.Contains(t, body, "instance 2 unhealthy")
	require.Contains(t, body, fmt.Sprintf(`href="/runs/%d"`, deploy))
	require.NotContains(t, body, "9.9")
	require.True(t, strings.Contains(body, "rolled-back") || strings.Contains(body, "rolled back"))
}
