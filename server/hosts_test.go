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
