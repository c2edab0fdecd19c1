package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

func (b *browser) form(t *testing.T, path, origin string, v url.Values) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", b.base+path, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	resp, err := b.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestGridPage renders the environment × service grid: versions, states,
// the waiting badge, tenants narrowed to the viewer's, the filter and escaping.
func TestGridPage(t *testing.T) {
	f := newAPI(t)
	ctx := context.Background()
	db := f.st.DB()
	for _, tn := range []string{"shop", "other"} {
		code, _ := f.call("POST", "/api/v1/tenants", f.token, nameRequest{Name: tn}, nil)
		require.Equal(t, http.StatusCreated, code)
	}
	f.user("bob", roleRequest{Tenant: "shop", Role: berth.RoleApprover})
	shop, err := f.st.TenantByName(ctx, "shop")
	require.NoError(t, err)
	other, err := f.st.TenantByName(ctx, "other")
	require.NoError(t, err)
	svc := func(tid uint, env, app, name, image string) *store.Application {
		e, err := f.st.Environment(ctx, map[uint]string{shop.ID: "shop", other.ID: "other"}[tid], env)
		if err != nil {
			e, err = f.st.CreateEnvironment(ctx, tid, env)
			require.NoError(t, err)
		}
		a := &store.Application{EnvironmentID: e.ID, Name: app, State: berth.StateRunning}
		require.NoError(t, db.Where(store.Application{EnvironmentID: e.ID, Name: app}).FirstOrCreate(a).Error)
		require.NoError(t, db.Create(&store.Service{ApplicationID: a.ID, Name: name, Image: image, State: berth.StateRunning}).Error)
		return a
	}
	svc(shop.ID, "dev", "web", "frontend", "registry/web:1.4.2")
	prod := svc(shop.ID, "prod", "web", "frontend", "registry/web:1.4.1")
	svc(shop.ID, "prod", "web", "x<script>alert(1)</script>", "registry/evil:1")
	svc(other.ID, "dev", "secret", "hidden", "registry/hidden:9")
	run := &store.Run{Kind: "release", TenantID: shop.ID, ApplicationID: prod.ID, Status: berth.RunRunning, StartedBy: "dana", Subject: "shop/prod/web"}
	require.NoError(t, f.st.CreateRun(ctx, run, ""))
	_, err = f.st.CreateApproval(ctx, &store.Approval{RunID: run.ID, Step: "approval", TenantID: shop.ID, RoleList: []berth.Role{berth.RoleApprover}, StartedBy: "dana"})
	require.NoError(t, err)

	bob := f.browser("bob")
	code, body := bob.page(t, "/")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `<th scope="col">dev</th><th scope="col">prod</th>`, "dev before prod")
	require.Contains(t, body, ">1.4.2</a>")
	require.Contains(t, body, ">1.4.1</a>")
	require.Contains(t, body, "running</span>", "state as text")
	require.Contains(t, body, "waiting for approval")
	require.Contains(t, body, fmt.Sprintf(`href="/runs/%d"`, run.ID))
	require.Contains(t, body, "by dana")
	require.NotContains(t, body, "registry/hidden", "another tenant's services are not shown")
	require.NotContains(t, body, "<script>alert(1)</script>")
	require.Contains(t, body, "x&lt;script&gt;")
	require.NotContains(t, body, "deploy-form", "an approver may not deploy: no form")

	// A developer gets the deploy form, for the environments of their
	// tenants only.
	f.user("dana", roleRequest{Tenant: "shop", Role: berth.RoleDeveloper})
	_, body = f.browser("dana").page(t, "/")
	require.Contains(t, body, `<form class="run-form deploy-form" method="post" action="/api/v1/tenants/shop/environments/dev/applications"`)
	require.Contains(t, body, `<option value="/api/v1/tenants/shop/environments/dev/applications">shop/dev</option><option value="/api/v1/tenants/shop/environments/prod/applications">shop/prod</option></select>`)
	require.NotContains(t, body, "/tenants/other/", "another tenant's environments are not offered")

	_, body = bob.page(t, "/?q=FRONT")
	require.Contains(t, body, ">1.4.2</a>")
	require.NotContains(t, body, "x&lt;script&gt;", "filtered out")
	_, body = bob.page(t, "/?q=nothing-like-this")
	require.Contains(t, body, "No service matches")

	// Paged by 50 rows.
	for i := 0; i < 60; i++ {
		svc(shop.ID, "dev", "bulk", fmt.Sprintf("s%02d", i), "registry/bulk:1")
	}
	_, body = bob.page(t, "/")
	require.Contains(t, body, "page 1 of 2")
	require.Contains(t, body, `rel="next"`)
	_, body = bob.page(t, "/?page=2")
	require.Contains(t, body, "page 2 of 2")
	require.Contains(t, body, `rel="prev"`)

	// Signed out, the home page asks to sign in and comes back.
	resp, err := http.Get(f.srv.URL + "/")
	require.NoError(t, err)
	resp.Body.Close()
	require.Contains(t, resp.Request.URL.String(), "/login?next=%2F")
}

// TestAdminPages: hosts and environments are for platform admins; the
// register form checks its CSRF token, origin and input.
func TestAdminPages(t *testing.T) {
	f := newAPI(t)
	ctx := context.Background()
	code, _ := f.call("POST", "/api/v1/tenants", f.token, nameRequest{Name: "shop"}, nil)
	require.Equal(t, http.StatusCreated, code)
	code, _ = f.call("POST", "/api/v1/tenants/shop/environments", f.token, map[string]any{"name": "prod"}, nil)
	require.Equal(t, http.StatusCreated, code)
	f.user("bob", roleRequest{Tenant: "shop", Role: berth.RoleAdmin})
	h := &store.Host{Name: "h1", Region: "local", Endpoint: "unix:///var/run/docker.sock", IP: "10.0.0.1", VolumeRoot: "/v"}
	require.NoError(t, f.st.CreateHost(ctx, h))
	require.NoError(t, f.st.DB().Model(h).Updates(map[string]any{"state": berth.HostDown, "reason": "engine <b>gone</b>", "engine_version": "27.1.0", "cpus": 4, "memory_bytes": int64(8 << 30)}).Error)

	bob := f.browser("bob")
	for _, p := range []string{"/admin/hosts", "/admin/environments"} {
		code, body := bob.page(t, p)
		require.Equal(t, http.StatusForbidden, code, "a tenant's admin is not a platform admin: %s", p)
		require.Contains(t, body, "needs role admin platform-wide")
	}
	code, _ = bob.form(t, "/admin/hosts", f.srv.URL, url.Values{"csrf": {bob.csrf(t)}, "name": {"h2"}, "endpoint": {"unix:///x.sock"}, "ip": {"10.0.0.2"}})
	require.Equal(t, http.StatusForbidden, code)

	admin := f.browser("admin")
	code, body := admin.page(t, "/admin/hosts")
	require.Equal(t, http.StatusOK, code)
	for _, want := range []string{"h1", "down", "engine &lt;b&gt;gone&lt;/b&gt;", "Docker 27.1.0", "8.0 GiB", `<td data-label="CPUs">4</td>`} {
		require.Contains(t, body, want)
	}
	csrf := admin.csrf(t)
	code, _ = admin.form(t, "/admin/hosts", "http://evil.example", url.Values{"csrf": {csrf}, "name": {"h2"}, "endpoint": {"unix:///x.sock"}, "ip": {"10.0.0.2"}})
	require.Equal(t, http.StatusForbidden, code, "foreign origin")
	code, _ = admin.form(t, "/admin/hosts", f.srv.URL, url.Values{"name": {"h2"}, "endpoint": {"unix:///x.sock"}, "ip": {"10.0.0.2"}})
	require.Equal(t, http.StatusForbidden, code, "no CSRF token")
	code, body = admin.form(t, "/admin/hosts", f.srv.URL, url.Values{"csrf": {csrf}, "name": {"H 2"}, "endpoint": {"unix:///x.sock"}, "ip": {"10.0.0.2"}})
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, "host name &#34;H 2&#34; must be")
	require.Contains(t, body, `value="H 2"`, "the form keeps what was typed")
	code, body = admin.form(t, "/admin/hosts", f.srv.URL, url.Values{"csrf": {csrf}, "name": {"h1"}, "endpoint": {"unix:///x.sock"}, "ip": {"10.0.0.2"}})
	require.Equal(t, http.StatusConflict, code, body)

	code, body = admin.page(t, "/admin/environments")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "releases wait for an approver", "prod's default policy")
	require.Contains(t, body, "the starter may not approve")
	require.Contains(t, body, "none: deploys here fail")
	require.Contains(t, body, "packages 0 bytes, no quota")
	code, _ = f.call("PUT", "/api/v1/tenants/shop/environments/prod/quota", f.token, map[string]any{"maxPackageBytes": 1 << 20}, nil)
	require.Equal(t, http.StatusOK, code)
	_, body = admin.page(t, "/admin/environments")
	require.Contains(t, body, `aria-label="packages of the quota"></meter> packages 0 of 1MiB`)
	code, _ = f.call("PUT", "/api/v1/tenants/shop/environments/prod/quota", f.token, map[string]any{"maxPackageBytes": -1}, nil)
	require.Equal(t, http.StatusBadRequest, code, "a negative quota is refused")
	_, body = admin.page(t, "/inbox")
	require.Contains(t, body, `href="/admin/hosts"`, "admins see the admin pages in the header")
}
