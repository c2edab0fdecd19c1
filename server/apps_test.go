package server

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/berth-dev/berth/store"
	"github.com/stretchr/testify/require"
)

// Names that compose accepts but that would not fit a load balancer's server
// name or a firewall opening's id are refused before anything starts, not
// half-way through the deploy.
func TestDeployRefusesNamesTooLongForTheDrivers(t *testing.T) {
	f := newAPI(t)
	code, eb := f.call("POST", "/api/v1/tenants", f.token, nameRequest{Name: "acme"}, nil)
	require.Equal(t, http.StatusCreated, code, eb.Error.Message)
	code, eb = f.call("POST", "/api/v1/tenants/acme/environments", f.token, environmentRequest{Name: "prod"}, nil)
	require.Equal(t, http.StatusCreated, code, eb.Error.Message)

	app, svc := strings.Repeat("a", 31), strings.Repeat("s", 60)
	code, eb = f.call("POST", "/api/v1/tenants/acme/environments/prod/applications", f.token,
		deployRequest{Name: app, Compose: "services:\n  " + svc + ":\n    image: web:1\n"}, nil)
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, eb.Error.Message, `service "`+svc+`"`)
	require.Contains(t, eb.Error.Message, "shorten")
	runs, _, err := f.st.Runs(context.Background(), store.RunFilter{})
	require.NoError(t, err)
	require.Empty(t, runs, "nothing started")
}
