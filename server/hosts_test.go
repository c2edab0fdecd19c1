package server

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// Hosts belong to the platform: a tenant's admin can neither read them nor
// authorise one for their environment; a platform admin can.
func TestHostsArePlatformBusiness(t *testing.T) {
	f := newAPI(t)
	ctx := context.Background()
	code, _ := f.call("POST", "/api/v1/tenants", f.token, nameRequest{Name: "shop"}, nil)
	require.Equal(t, http.StatusCreated, code)
	code, _ = f.call("POST", "/api/v1/tenants/shop/environments", f.token, environmentRequest{Name: "dev"}, nil)
	require.Equal(t, http.StatusCreated, code)
	h := &store.Host{Name: "h1", Region: "local", Endpoint: "unix:///var/run/x.sock", IP: "127.0.0.1"}
	require.NoError(t, f.st.CreateHost(ctx, h))
	require.NoError(t, f.st.SetHostFacts(ctx, h.ID, berth.HostFacts{State: berth.HostReady}))
	tenantAdmin := f.user("tam", roleRequest{Tenant: "shop", Role: berth.RoleAdmin})

	code, eb := f.call("POST", "/api/v1/tenants/shop/environments/dev/hosts", tenantAdmin, map[string][]string{"hosts": {"h1"}}, nil)
	require.Equal(t, http.StatusForbidden, code, "a tenant admin does not pick platform hosts")
	require.Contains(t, eb.Error.Message, "platform-wide")
	for _, path := range []string{"/api/v1/hosts", "/api/v1/hosts/h1"} {
		code, _ = f.call("GET", path, tenantAdmin, nil, nil)
		require.Equal(t, http.StatusForbidden, code, path)
		code, _ = f.call("GET", path, f.token, nil, nil)
		require.Equal(t, http.StatusOK, code, path)
	}
	code, eb = f.call("POST", "/api/v1/tenants/shop/environments/dev/hosts", f.token, map[string][]string{"hosts": {"h1"}}, nil)
	require.Equal(t, http.StatusOK, code, eb.Error.Message)
}

// A region's load balancer is set by a platform admin; bad addresses and
// windows are refused with the reason, and nothing is recorded.
func TestRegionLBSettings(t *testing.T) {
	f := newAPI(t)
	ctx := context.Background()
	code, _ := f.call("POST", "/api/v1/tenants", f.token, nameRequest{Name: "shop"}, nil)
	require.Equal(t, http.StatusCreated, code)
	tenantAdmin := f.user("tam", roleRequest{Tenant: "shop", Role: berth.RoleAdmin})
	good := regionLBRequest{ListenIP: "10.1.0.5", PortMin: 31000, PortMax: 31099}

	code, _ = f.call("PUT", "/api/v1/regions/eu-2/lb", tenantAdmin, good, nil)
	require.Equal(t, http.StatusForbidden, code)
	for _, bad := range []struct {
		path string
		body regionLBRequest
		says string
	}{
		{"/api/v1/regions/EU_2/lb", good, "region must be"},
		{"/api/v1/regions/eu-2/lb", regionLBRequest{ListenIP: "lb.example", PortMin: 31000, PortMax: 31099}, "listenIP"},
		{"/api/v1/regions/eu-2/lb", regionLBRequest{ListenIP: "10.1.0.5", PortMin: 80, PortMax: 31099}, "window"},
		{"/api/v1/regions/eu-2/lb", regionLBRequest{ListenIP: "10.1.0.5", PortMin: 31100, PortMax: 31099}, "window"},
		{"/api/v1/regions/eu-2/lb", regionLBRequest{ListenIP: "10.1.0.5", PortMin: 31000, PortMax: 70000}, "window"},
	} {
		code, eb := f.call("PUT", bad.path, f.token, bad.body, nil)
		require.Equal(t, http.StatusBadRequest, code, "%+v", bad)
		require.Contains(t, eb.Error.Message, bad.says)
	}
	rs, err := f.st.Regions(ctx)
	require.NoError(t, err)
	require.Empty(t, rs, "nothing recorded by refused requests")

	var got store.Region
	code, eb := f.call("PUT", "/api/v1/regions/eu-2/lb", f.token, good, &got)
	require.Equal(t, http.StatusOK, code, eb.Error.Message)
	require.Equal(t, store.Region{Name: "eu-2", LBListenIP: "10.1.0.5", LBPortMin: 31000, LBPortMax: 31099, CreatedAt: got.CreatedAt}, got)
	// A host of the region made afterwards keeps the settings.
	require.NoError(t, f.st.CreateHost(ctx, &store.Host{Name: "h2", Region: "eu-2", Endpoint: "unix:///var/run/x.sock", IP: "127.0.0.1"}))
	var list struct{ Regions []store.Region }
	code, _ = f.call("GET", "/api/v1/regions", f.token, nil, &list)
	require.Equal(t, http.StatusOK, code)
	require.Len(t, list.Regions, 1)
	require.Equal(t, 31000, list.Regions[0].LBPortMin)

	// New pools of the region come from its window and address.
	p, err := f.st.EnsurePool(ctx, berth.LBPool{ServiceID: 1, Region: "eu-2", ListenIP: "127.0.0.1"}, 29000, 29099)
	require.NoError(t, err)
	require.Equal(t, "10.1.0.5", p.ListenIP)
	require.Equal(t, 31000, p.ListenPort)
	p, err = f.st.EnsurePool(ctx, berth.LBPool{ServiceID: 1, Region: "local", ListenIP: "127.0.0.1"}, 29000, 29099)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1", p.ListenIP, "a region without settings uses the platform's")
	require.Equal(t, 29000, p.ListenPort)
}
