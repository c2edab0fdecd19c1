package server

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/berth-dev/berth"
	"github.com/berth-dev/berth/store"
)

// TestServicePageUpdateForm: a developer gets the "Change the application"
// form with the running file, escaped; a reader and a developer of an
// application that is not running get the reason instead of the form.
func TestServicePageUpdateForm(t *testing.T) {
	f := newAPI(t)
	ctx := context.Background()
	code, _ := f.call("POST", "/api/v1/tenants", f.token, nameRequest{Name: "shop"}, nil)
	require.Equal(t, http.StatusCreated, code)
	code, _ = f.call("POST", "/api/v1/tenants/shop/environments", f.token, environmentRequest{Name: "dev"}, nil)
	require.Equal(t, http.StatusCreated, code)
	f.user("dana", roleRequest{Tenant: "shop", Role: berth.RoleDeveloper})
	f.user("rm", roleRequest{Tenant: "shop", Role: berth.RoleReleaseManager})
	env, err := f.st.Environment(ctx, "shop", "dev")
	require.NoError(t, err)
	db := f.st.DB()
	file := "services:\n  web:\n    image: r/web:1\n    environment: {GREETING: \"</textarea><script>x()</script>\"}\n"
	app := &store.Application{EnvironmentID: env.ID, Name: "shop-app", State: berth.StateRunning, Compose: file}
	require.NoError(t, db.Create(app).Error)
	web := &store.Service{ApplicationID: app.ID, Name: "web", Image: "r/web:1", State: berth.StateRunning}
	require.NoError(t, db.Create(web).Error)
	page := fmt.Sprintf("/services/%d", web.ID)

	code, body := f.browser("dana").page(t, page)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `<form class="update-form" method="post" action="/api/v1/tenants/shop/environments/dev/applications/shop-app"`)
	require.Contains(t, body, `{GREETING: &#34;&lt;/textarea&gt;&lt;script&gt;x()&lt;/script&gt;&#34;}`, "the file is escaped into the textarea")
	require.NotContains(t, body, "<script>x()")

	code, body = f.browser("rm").page(t, page)
	require.Equal(t, http.StatusOK, code)
	require.NotContains(t, body, "update-form")
	require.Contains(t, body, "Changing the application needs role developer or admin on tenant shop.")

	require.NoError(t, db.Model(app).Update("state", berth.StateDeploying).Error)
	_, body = f.browser("dana").page(t, page)
	require.NotContains(t, body, "update-form")
	require.Contains(t, body, "The application is deploying; only a running application can be changed.")
}
