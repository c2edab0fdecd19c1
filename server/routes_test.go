package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

var ginParam = regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)

// openapiPath is a Gin path as OpenAPI writes it: :id is {id}.
func openapiPath(ginPath string) string { return ginParam.ReplaceAllString(ginPath, "{$1}") }

func testServer() *Server {
	return New(Config{}, nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// TestRouteTable: every route has a policy of its own, Gin serves exactly
// the table, and openapi.yaml documents exactly the table's API routes,
// marking the public ones as needing no credentials.
func TestRouteTable(t *testing.T) {
	s := testServer()
	table := map[string]route{}
	for _, rt := range s.routes() {
		key := rt.method + " " + rt.path
		require.NotContains(t, table, key, "%s is in the table twice", key)
		table[key] = rt
		require.NotNil(t, rt.handler, key)
		require.True(t, rt.policy.public != (rt.policy.check != nil), "%s needs a policy: public, or a check (not both)", key)
	}

	// Nothing is registered outside the table.
	engine := s.Handler().(*gin.Engine)
	served := map[string]bool{}
	for _, r := range engine.Routes() {
		served[r.Method+" "+r.Path] = true
	}
	for key := range table {
		require.True(t, served[key], "%s is in the table but not served", key)
	}
	require.Len(t, served, len(table), "Gin serves a route that is not in the table")

	for p := range packageRoutes {
		require.Contains(t, table, "POST "+p, "packageRoutes names %s, which is not a POST route", p)
	}

	var doc openapiFile
	require.NoError(t, yaml.Unmarshal(openapiDoc, &doc))
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if method == "parameters" {
				continue
			}
			documented[strings.ToUpper(method)+" "+path] = true
			sec, ok := op.(map[string]any)["security"]
			noAuth := ok && sec != nil && len(sec.([]any)) == 0
			var rt *route
			for _, r := range table {
				if strings.EqualFold(r.method, method) && openapiPath(r.path) == path {
					rt = &r
					break
				}
			}
			require.NotNil(t, rt, "openapi.yaml documents %s %s, which is not a route", strings.ToUpper(method), path)
			require.Equal(t, rt.policy.public, noAuth, "%s %s: openapi.yaml's security: [] must match the route's public policy", strings.ToUpper(method), path)
		}
	}
	api := 0
	for key, rt := range table {
		if !strings.HasPrefix(rt.path, "/api/v1/") {
			continue
		}
		api++
		require.True(t, documented[rt.method+" "+openapiPath(rt.path)], "route %s is not in server/openapi.yaml", key)
	}
	require.Greater(t, api, 40)
}

// TestPagePolicies: the pages of one run or service are refused, as a page,
// to a viewer without a role on its tenant, saying whose it is; what is not
// there is a 404 and a bad id a 400, before any role is asked about.
func TestPagePolicies(t *testing.T) {
	f := newAPI(t)
	ctx := context.Background()
	code, _ := f.call("POST", "/api/v1/tenants", f.token, nameRequest{Name: "shop"}, nil)
	require.Equal(t, http.StatusCreated, code)
	code, _ = f.call("POST", "/api/v1/tenants/shop/environments", f.token, environmentRequest{Name: "dev"}, nil)
	require.Equal(t, http.StatusCreated, code)
	f.user("ann", roleRequest{Tenant: "shop", Role: berth.RoleApprover})
	f.user("outsider")
	env, err := f.st.Environment(ctx, "shop", "dev")
	require.NoError(t, err)
	app := &store.Application{EnvironmentID: env.ID, Name: "web", State: berth.StateRunning}
	require.NoError(t, f.st.DB().Create(app).Error)
	svc := &store.Service{ApplicationID: app.ID, Name: "web", Image: "r/web:1", State: berth.StateRunning}
	require.NoError(t, f.st.DB().Create(svc).Error)
	run := &store.Run{Kind: berth.KindDeploy, WorkflowID: "deploy/shop/dev/web", TenantID: env.TenantID, EnvironmentID: env.ID,
		ApplicationID: app.ID, Subject: "shop/dev/web", StartedBy: "dana", Status: berth.RunSucceeded}
	require.NoError(t, f.st.CreateRun(ctx, run, ""))

	pages := map[string]string{
		fmt.Sprintf("/runs/%d", run.ID):             fmt.Sprintf("run %d belongs to a tenant you hold no role on", run.ID),
		fmt.Sprintf("/runs/%d/history", run.ID):     fmt.Sprintf("run %d belongs to a tenant you hold no role on", run.ID),
		fmt.Sprintf("/services/%d", svc.ID):         fmt.Sprintf("service %d belongs to a tenant you hold no role on", svc.ID),
		fmt.Sprintf("/services/%d/history", svc.ID): fmt.Sprintf("service %d belongs to a tenant you hold no role on", svc.ID),
		"/admin/hosts":        "the hosts page needs role admin platform-wide",
		"/admin/environments": "the environments page needs role admin platform-wide",
	}
	outsider, ann := f.browser("outsider"), f.browser("ann")
	for path, refusal := range pages {
		code, body := outsider.page(t, path)
		require.Equal(t, http.StatusForbidden, code, path)
		require.Contains(t, body, refusal, path)
		require.Contains(t, body, "<h1>Forbidden</h1>", "%s: refused with a page", path)
		if strings.HasPrefix(path, "/admin/") {
			continue
		}
		code, body = ann.page(t, path)
		require.Equal(t, http.StatusOK, code, "%s: %s", path, body)
	}
	for path, want := range map[string]int{"/runs/999": http.StatusNotFound, "/services/999": http.StatusNotFound,
		"/runs/x": http.StatusBadRequest, "/services/x/history": http.StatusBadRequest} {
		code, _ := outsider.page(t, path)
		require.Equal(t, want, code, path)
	}
	// Pages that list are open to anyone signed in, narrowed to what they may see.
	for _, path := range []string{"/", "/inbox", "/runs", "/audit"} {
		code, body := outsider.page(t, path)
		require.Equal(t, http.StatusOK, code, path)
		require.NotContains(t, body, "shop/dev/web", path)
	}
}
